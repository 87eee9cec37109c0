"""Encoders turn item content into float32 vectors; each declares its dimension and version.

Model-backed encoders (torch, librosa) are imported by :func:`load_encoders` only when enabled.
"""

from .base import Encoder, TextEncoder, encode_raw, l2_normalize
from .fusion import (
    Block,
    EarlyFusion,
    Fusion,
    LateFusion,
    LearnedFusion,
    make_blocks,
    make_fusion,
    query_transform,
)
from .hashing import HashingTextEncoder
from .loading import DEFAULT_TEXT_MODEL, MODALITIES, load_encoders, load_text_encoder, resolve_text_model_dir
from .vectors import VectorPassThrough

__all__ = [
    "DEFAULT_TEXT_MODEL",
    "MODALITIES",
    "Block",
    "EarlyFusion",
    "Encoder",
    "Fusion",
    "HashingTextEncoder",
    "LateFusion",
    "LearnedFusion",
    "TextEncoder",
    "VectorPassThrough",
    "encode_raw",
    "l2_normalize",
    "load_encoders",
    "load_text_encoder",
    "make_blocks",
    "make_fusion",
    "query_transform",
    "resolve_text_model_dir",
]
