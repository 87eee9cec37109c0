"""Search queries into the fused item space: words through the text encoder, a picture through the
image encoder, each then fused as an item with only that modality would be.

So a query part lands in the blocks of the fused space it can be compared with: words in the text
block, a picture in the image block, and with a CLIP model (text and image towers sharing one space,
hence one block) words reach pictures too. The fusion comes from the collection's own spec, so a
worker that loads only the text and image encoders still queries a space fused from more.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.encoders.base import Encoder, encode_raw
from fusionrec.encoders.fusion import Block, EarlyFusion, Fusion, LateFusion, LearnedFusion
from fusionrec.schemas import ConfigError, EncoderError, QueryError


def fusion_from_spec(spec: Mapping[str, Any], model: Path | None = None) -> Fusion:
    """The fusion a collection records in its ``spec``; a learned one needs its artefact (``model``).

    >>> f = fusion_from_spec(EarlyFusion([Block("text", ("text",), 2), Block("image", ("image",), 3, 0.5)]).spec())
    >>> f.kind, f.dim, [b.modalities for b in f.blocks]
    ('early', 5, [('text',), ('image',)])
    """
    blocks = [Block(b["name"], tuple(b["name"].split("+")), int(b["dim"]), float(b["weight"])) for b in spec["blocks"]]
    kind = spec.get("kind")
    if kind == "learned":
        if model is None:
            raise ConfigError("the collection is fused by a learned fusion: set FUSIONREC_FUSION_MODEL to search it")
        fusion: Fusion = LearnedFusion.load(model)
    elif kind in ("early", "late"):
        fusion = (EarlyFusion if kind == "early" else LateFusion)(blocks)
    else:
        raise ConfigError(f"unknown fusion kind {kind!r} in the collection's spec")
    if fusion.version != spec.get("version"):
        raise ConfigError(f"the collection is fused as {spec.get('version')}, this worker would query it as "
                          f"{fusion.version}")
    return fusion


class QueryEncoder:
    """Encodes query words and pictures into rows of the fused item space a ``spec`` describes.

    Models load on first use (``loaders``: modality -> a function that loads its encoder), so a
    profile worker that is never asked a query never loads one. The words of the last
    ``cache_size`` distinct queries keep their vectors: popular searches repeat.
    """

    def __init__(self, loaders: Mapping[str, Callable[[], Encoder]], *, fusion_model: Path | None = None,
                 cache_size: int = 10_000) -> None:
        self._loaders = dict(loaders)
        self._texts: OrderedDict[str, np.ndarray] = OrderedDict()
        self.cache_size = cache_size
        self._encoders: dict[str, Encoder] = {}
        self._fusions: dict[str, Fusion] = {}
        self._fusion_model = fusion_model
        self._lock = threading.Lock()

    def encoder(self, modality: str) -> Encoder:
        with self._lock:
            if modality not in self._encoders:
                if modality not in self._loaders:
                    raise QueryError(f"this worker encodes no {modality} queries (FUSIONREC_SEARCH_MODALITIES)",
                                     status=422)
                self._encoders[modality] = self._loaders[modality]()
            return self._encoders[modality]

    def _fusion(self, spec: Mapping[str, Any]) -> Fusion:
        version = str(spec.get("version"))
        with self._lock:
            if version not in self._fusions:
                self._fusions = {version: fusion_from_spec(spec, self._fusion_model)}
            return self._fusions[version]

    def encode(self, modality: str, inputs: Sequence[Any], spec: Mapping[str, Any]) -> np.ndarray:
        """One fused row per input (words for ``text``, decoded pictures for ``image``)."""
        if not inputs:
            return np.zeros((0, self._fusion(spec).dim), dtype=np.float32)
        fusion = self._fusion(spec)
        if not any(modality in b.modalities for b in fusion.blocks):
            raise QueryError(f"the catalogue holds no {modality} vectors to compare a {modality} query with",
                             status=422)
        encoder = self.encoder(modality)
        width = next(b.dim for b in fusion.blocks if modality in b.modalities)
        if encoder.dim != width:
            raise EncoderError(f"the {modality} encoder gives {encoder.dim} values, the collection's block has {width}")
        vectors = self._encode_texts(encoder, inputs) if modality == "text" else encode_raw(encoder, list(inputs))
        return fusion.fuse([{modality: v} for v in np.asarray(vectors, dtype=np.float32)])

    def _encode_texts(self, encoder: Encoder, texts: Sequence[str]) -> list[np.ndarray]:
        with self._lock:
            known = {t: self._texts[t] for t in texts if t in self._texts}
        todo = list(dict.fromkeys(t for t in texts if t not in known))
        if todo:
            known.update(zip(todo, encode_raw(encoder, todo), strict=True))
        with self._lock:
            for t in texts:
                self._texts[t] = known[t]
                self._texts.move_to_end(t)
            while len(self._texts) > self.cache_size:
                self._texts.popitem(last=False)
        return [known[t] for t in texts]
