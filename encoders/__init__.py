"""Encoders turn item content into float32 vectors; each declares its dimension and version.

Model-backed encoders (torch, librosa) are imported by :func:`load_encoders` only when enabled.
"""

import os

# Torch's OpenMP threads spin after each parallel op by default (libgomp's wait policy; 8-9 ms of
# CPU per op on the 2-core VM), on cores that media decoding, the broker or Milvus could use; and
# when one of those holds a core, every op waits for the thread it descheduled. With one other busy
# process on that VM, sleeping at once encoded 1.5x the image+audio items/s (bench/encode.py:
# 24.7-25.5 -> 36.2-39.0) and 1.3x the audio-only ones (README). libgomp reads this when torch
# loads, which in fusionrec is always after this package (a unit test keeps torch imports in
# encoders/); an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from fusionrec.encoders.base import Encoder, TextEncoder, encode_raw, l2_normalize
from fusionrec.encoders.fusion import (
    Block,
    EarlyFusion,
    Fusion,
    LateFusion,
    LearnedFusion,
    make_blocks,
    make_fusion,
    query_transform,
)
from fusionrec.encoders.hashing import HashingTextEncoder
from fusionrec.encoders.loading import DEFAULT_TEXT_MODEL, MODALITIES, load_encoders, load_text_encoder, resolve_text_model_dir
from fusionrec.encoders.query import QueryEncoder, fusion_from_spec
from fusionrec.encoders.vectors import VectorPassThrough

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
    "QueryEncoder",
    "TextEncoder",
    "VectorPassThrough",
    "encode_raw",
    "fusion_from_spec",
    "l2_normalize",
    "load_encoders",
    "load_text_encoder",
    "make_blocks",
    "make_fusion",
    "query_transform",
    "resolve_text_model_dir",
]
