"""Text encoding with sentence-transformers, loaded from a local model directory only."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fusionrec.schemas import EncoderError

from .base import l2_normalize

logger = logging.getLogger(__name__)


def resolve_device(requested: str) -> str:
    """``auto`` picks CUDA when torch sees a GPU, else the CPU."""
    if requested != "auto":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class SentenceTransformerEncoder:
    """A sentence-transformers model from a directory on disk; never contacts a model hub."""

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
        self.version = f"{name or model_dir.name}@{self.dim}"
        logger.info("text model %s loaded on %s (%s, dim %d)", self.version, self.device, precision, self.dim)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        try:
            vectors = self._model.encode(
                list(texts), batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
            )
        except Exception as exc:
            raise EncoderError(f"text encoding failed: {exc}") from exc
        return l2_normalize(np.asarray(vectors, dtype=np.float32))
