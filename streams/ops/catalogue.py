"""Encoding a whole catalogue outside the stream (fusion training, offline evaluation) with the
encoder worker's own code path: fetch and decode media, run each modality's encoder in batches."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from fusionrec.agents.encode_items import ItemEncoder
from fusionrec.encoders import EarlyFusion, Encoder, make_blocks
from fusionrec.encoders.base import batches
from fusionrec.encoders.media.fetch import PolicyMediaFetcher
from fusionrec.schemas import EventError, Item
from fusionrec.streams.build import load_encoders, media_limits, media_policy
from fusionrec.streams.index import MemoryVectorIndex
from fusionrec.streams.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncodedCatalogue:
    encoders: Mapping[str, Encoder]
    parts: dict[str, dict[str, np.ndarray]]  # item id -> modality -> unit vector
    refused: dict[str, EventError]  # items the worker would dead-letter, with why


def encode_catalogue(settings: Settings, items: Sequence[Item], encoders: Mapping[str, Encoder] | None = None,
                     *, desc: str = "encode items") -> EncodedCatalogue:
    encoders = encoders if encoders is not None else load_encoders(settings)
    parts: dict[str, dict[str, np.ndarray]] = {}
    refused: dict[str, EventError] = {}
    with PolicyMediaFetcher(media_policy(settings)) as fetcher, tqdm(total=len(items), desc=desc, unit="item") as bar:
        processor = ItemEncoder(encoders, EarlyFusion(make_blocks(encoders, settings.fusion_weights)), MemoryVectorIndex(),
                                fetcher, max_event_bytes=settings.max_event_bytes, limits=media_limits(settings),
                                threads=settings.media_fetch_threads)
        for group in batches(list(items), settings.encode_batch_size):
            prepared, failed = processor.prepare(group)
            vectors, encode_failed = processor.vectors(prepared)
            parts.update(vectors)
            refused.update(failed)
            refused.update(encode_failed)
            bar.update(len(group))
    for item_id, error in list(refused.items())[:10]:
        logger.warning("item %s not encoded: %s", item_id, error.reason)
    return EncodedCatalogue(encoders, parts, refused)
