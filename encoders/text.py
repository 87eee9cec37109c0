"""Text encoding with sentence-transformers, loaded from a local model directory only."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fusionrec.encoders.base import encode_in_chunks, l2_normalize, resolve_device, to_host
from fusionrec.schemas import EncoderError

logger = logging.getLogger(__name__)


class SentenceTransformerEncoder:
    """A sentence-transformers model from a directory on disk; never contacts a model hub."""

    modality = "text"

    def __init__(
        self, model_dir: Path, *, name: str | None = None, device: str = "auto", batch_size: int = 64,
        threads: int | None = None,
    ) -> None:
        # A hub look-up is never wanted: models come from a directory. Set before the import so
        # huggingface_hub reads it.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        if not (model_dir / "modules.json").is_file() and not (model_dir / "config.json").is_file():
            raise EncoderError(f"{model_dir} is not a sentence-transformers model directory")
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        self.device = resolve_device(device)
        try:
            self._model = SentenceTransformer(str(model_dir), device=self.device, local_files_only=True)
        except Exception as exc:  # the library raises a zoo of types for a bad directory
            raise EncoderError(f"cannot load text model from {model_dir}: {exc}") from exc
        if self.device.startswith("cuda"):
            self._model.half()
        self.dim = int(self._model.get_embedding_dimension())
        self.batch_size = batch_size
        precision = "fp16" if self.device.startswith("cuda") else "fp32"
        self.version = self.space = f"{name or model_dir.name}@{self.dim}"
        logger.info("text model %s loaded on %s (%s, dim %d)", self.version, self.device, precision, self.dim)

    def prepare(self, raw: str) -> str:
        return raw

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        try:
            vectors = to_host(self._model.encode(
                list(texts), batch_size=self.batch_size, convert_to_tensor=True, show_progress_bar=False
            ))
        except Exception as exc:
            raise EncoderError(f"text encoding failed: {exc}") from exc
        return l2_normalize(vectors)


class ClipTextEncoder:
    """The text tower of an OpenCLIP checkpoint: its vectors share a space with that model's images."""

    modality = "text"

    def __init__(self, spec: str, *, model_dir: Path | None = None, device: str = "auto", batch_size: int = 64) -> None:
        import torch

        from fusionrec.encoders.image import clip_space, load_clip, parse_clip_spec

        arch, checkpoint = parse_clip_spec(spec, model_dir)
        self._model, self._tokenizer = load_clip(arch, checkpoint)
        self.device = resolve_device(device)
        self._model = self._model.to(self.device)
        if self.device.startswith("cuda"):
            self._model = self._model.half()
        self.batch_size = batch_size
        with torch.inference_mode():
            self.dim = int(self._model.encode_text(self._tokenizer(["probe"]).to(self.device)).shape[-1])
        self.version = f"open_clip-{arch}-{checkpoint.stem}-text@{self.dim}"
        self.space = clip_space(arch, checkpoint)

    def prepare(self, raw: str) -> str:
        return raw

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return encode_in_chunks(texts, self.batch_size, self.dim, self._embed, "text")

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        return to_host(self._model.encode_text(self._tokenizer(list(texts)).to(self.device)))
