"""Training a learned fusion from an items file and an interactions file (`fusionrec fusion train`)."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from fusionrec.agents.profile import DEFAULT_EVENT_WEIGHTS
from fusionrec.encoders import EarlyFusion, make_blocks
from fusionrec.encoders.fusion import co_consumption_pairs, pair_hit_rate, train_learned_fusion
from fusionrec.schemas import ConfigError
from fusionrec.streams.ops.catalogue import encode_catalogue
from fusionrec.streams.ops.files import read_rows, validate_rows
from fusionrec.streams.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingReport:
    path: Path
    version: str
    items: int
    refused: int
    pairs: int
    held_out: int
    early_hit_rate: float
    learned_hit_rate: float


def train_from_files(
    settings: Settings, items_path: Path, interactions_path: Path, out: Path, *, dim: int = 256, epochs: int = 20,
    window: int = 3, holdout: float = 0.1, k: int = 10, seed: int = 0,
) -> TrainingReport:
    """Encode the items with the configured encoders, pair items the same users consumed within
    ``window`` steps (positive event types only), train on all but a random ``holdout`` share of the
    pairs, and report hit rate@k on the held-out pairs for early fusion and the learned one."""
    items, bad_items = validate_rows("items", read_rows(items_path))
    events, bad_events = validate_rows("interactions", read_rows(interactions_path))
    for line, reason in [*bad_items, *bad_events][:20]:
        logger.warning("skipped line %d: %s", line, reason)
    encoded = encode_catalogue(settings, [it for _, it in items])
    blocks = make_blocks(encoded.encoders, settings.fusion_weights)
    early = EarlyFusion(blocks)
    parts, refused = encoded.parts, len(encoded.refused)
    weights = {**DEFAULT_EVENT_WEIGHTS, **settings.event_weights}
    pairs = co_consumption_pairs(
        ((e.user_id, e.item_id, e.timestamp.timestamp()) for _, e in events
         if e.item_id is not None and weights.get(e.type, 0) > 0),
        window=window,
    )
    pairs = [(a, b) for a, b in pairs if a in parts and b in parts]
    if len(pairs) < 10:
        raise ConfigError(f"only {len(pairs)} co-consumed pairs of encoded items: not enough to train on")
    random.Random(seed).shuffle(pairs)
    n_test = max(1, int(len(pairs) * holdout))
    test, train = pairs[:n_test], pairs[n_test:]
    bar = tqdm(total=epochs, desc="train fusion", unit="epoch")

    def progress(epoch: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")

    learned = train_learned_fusion(
        blocks, parts, train, dim=dim, epochs=epochs, device=settings.device, seed=seed, progress=progress,
        trained_on=f"{items_path.name} + {interactions_path.name}: {len(parts)} items, {len(train)} pairs",
    )
    bar.close()
    ids = list(parts)
    fused_early = dict(zip(ids, early.fuse([parts[i] for i in ids]), strict=True))
    fused_learned = dict(zip(ids, learned.fuse([parts[i] for i in ids]), strict=True))
    learned.save(out)
    return TrainingReport(out, learned.version, len(parts), refused, len(train), len(test),
                          pair_hit_rate(fused_early, test, k), pair_hit_rate(fused_learned, test, k))
