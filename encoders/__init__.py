"""Encoders turn item content into float32 vectors; each declares its dimension and version."""

from .base import TextEncoder, l2_normalize
from .hashing import HashingTextEncoder
from .loading import DEFAULT_TEXT_MODEL, load_text_encoder, resolve_text_model_dir

__all__ = [
    "DEFAULT_TEXT_MODEL",
    "HashingTextEncoder",
    "TextEncoder",
    "l2_normalize",
    "load_text_encoder",
    "resolve_text_model_dir",
]
