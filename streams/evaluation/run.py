"""``fusionrec evaluate``: encode a dataset's catalogue, build every model, run the protocols, report."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fusionrec.agents.profile import DEFAULT_EVENT_WEIGHTS
from fusionrec.agents.ranking import RankWeights
from fusionrec.encoders import EarlyFusion, Encoder, make_blocks
from fusionrec.encoders.fusion import co_consumption_pairs, train_learned_fusion
from fusionrec.schemas import ConfigError
from fusionrec.streams.build import build_recommender, load_encoders, rank_weights
from fusionrec.streams.evaluation.datasets import Dataset, Event
from fusionrec.streams.evaluation.models import ALS, Catalog, EngineModel, ItemKNN, Model, MostPopular, RecentPopular
from fusionrec.streams.evaluation.protocols import Outcome, Split, global_split, labelled_split, prequential, temporal_split
from fusionrec.streams.index import ItemVector, MemoryVectorIndex
from fusionrec.streams.ops.catalogue import encode_catalogue
from fusionrec.streams.settings import Settings

logger = logging.getLogger(__name__)

COLLABORATIVE = ("MostPopular", "RecentPopular", "ItemKNN", "ALS")
ALS_GRID = [{"factors": f, "regularization": r, "alpha": a} for f in (32, 64, 128) for r in (0.01, 0.1) for a in (1.0, 10.0)]

# The hybrid's ranking weights, and engine settings, tried per protocol on its validation split.
# A list made once for the coming weeks (global) rests on what has been popular for days, and on
# what is new and catching on; a list made at each event (prequential) on what the user just did.
DAY = 86_400.0
RANK_GRID = {
    "prequential": [{"content": c, "cooccurrence": o, "diversity": d}
                    for c in (0.3, 1.0) for o in (0.6, 1.2) for d in (0.0, 0.2)],
    "global": [{"content": c, "popularity": p, "trending_half_life_s": t, "newness": n}
               for c in (0.3, 1.0) for p in (0.25, 1.0, 3.0, 10.0)
               for t, n in ((2 * DAY, 0.0), (7 * DAY, 0.0), (7 * DAY, 1.0))],
}
RANK_FIELDS = frozenset(f.name for f in fields(RankWeights))


@dataclass(frozen=True)
class EvalConfig:
    protocols: tuple[str, ...] = ("global", "prequential")
    models: tuple[str, ...] = ()  # names to run; empty = all
    train_share: float = 0.8
    valid_share: float = 0.1  # the end of training held out to tune ALS
    recent_share: float = 0.1  # RecentPopular's window, as a share of the training period
    als_refit_s: float = 86_400.0
    als_grid: tuple[Mapping[str, float], ...] = tuple(ALS_GRID)
    # per protocol, the hybrid's weights (and engine settings) to try; none: the settings'
    rank_grid: Mapping[str, Sequence[Mapping[str, float]]] = field(default_factory=lambda: dict(RANK_GRID))
    tune_events: int = 2000  # validation events replayed per point of rank_grid (a score_share of them scored)
    score_share: float = 0.2  # prequential: the share of test events scored (all are learned)
    resamples: int = 1000
    seed: int = 0
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)  # models evaluated side by side
    cache_dir: Path | None = None


@dataclass
class Evaluation:
    dataset: Dataset
    config: EvalConfig
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    als_params: dict[str, float] = field(default_factory=dict)
    als_validation: list[dict[str, float]] = field(default_factory=list)
    rank_weights: dict[str, dict[str, float]] = field(default_factory=dict)  # per protocol
    rank_validation: dict[str, list[dict[str, float]]] = field(default_factory=dict)  # per protocol
    engine_settings: dict[str, dict[str, object]] = field(default_factory=dict)  # per protocol, as tuned
    skipped: list[str] = field(default_factory=list)
    hybrid_table: str = ""  # the item vectors the hybrid ranks with (see main_table)
    encoders: dict[str, str] = field(default_factory=dict)
    refused_items: int = 0


def dataset_settings(settings: Settings, dataset: Dataset) -> Settings:
    """The user's settings with the dataset's modalities, vector dimensions and media folder."""
    update: dict[str, object] = {
        "modalities": [m for m in dataset.modalities if m not in dataset.vector_dims],
        "vector_dims": {**settings.vector_dims, **dataset.vector_dims},
    }
    if dataset.media_root is not None:
        update["media_root"] = dataset.media_root
    update.update(dataset.settings)
    return settings.model_copy(update=update)


def item_vectors(
    settings: Settings, dataset: Dataset, cache_dir: Path | None
) -> tuple[dict[str, Encoder], dict[str, dict[str, np.ndarray]], int]:
    """Every item's modality vectors from the configured encoders, cached by content and encoder version."""
    encoders = load_encoders(settings)
    key = hashlib.sha256()
    for name, enc in sorted(encoders.items()):
        key.update(f"{name}={enc.version};".encode())
    for it in dataset.items:
        key.update(it.model_dump_json().encode())
    path = cache_dir / f"{dataset.name}-{key.hexdigest()[:16]}.npz" if cache_dir else None
    if path is not None and path.exists():
        with np.load(path) as npz:
            ids = [str(i) for i in npz["ids"]]
            parts: dict[str, dict[str, np.ndarray]] = {i: {} for i in ids}
            for name in encoders:
                mask, rows = npz[f"{name}_mask"], npz[f"{name}_rows"]
                for i, present, row in zip(ids, mask, rows, strict=True):
                    if present:
                        parts[i][name] = row
            refused = int(npz["refused"])
        logger.info("item vectors from %s", path)
        return dict(encoders), parts, refused
    encoded = encode_catalogue(settings, dataset.items, encoders, desc=f"{dataset.name}: encode items")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        ids = list(encoded.parts)
        arrays: dict[str, np.ndarray] = {"ids": np.array(ids), "refused": np.array(len(encoded.refused))}
        for name, enc in encoders.items():
            arrays[f"{name}_mask"] = np.array([name in encoded.parts[i] for i in ids])
            arrays[f"{name}_rows"] = np.stack([encoded.parts[i].get(name, np.zeros(enc.dim, np.float32)) for i in ids])
        np.savez(path, **arrays)
    return dict(encoders), encoded.parts, len(encoded.refused)


def _engine(settings: Settings, dataset: Dataset, name: str, vectors: Mapping[str, np.ndarray],
            fusion_spec: Mapping[str, object] | None, weights: RankWeights | None) -> Model:
    index = MemoryVectorIndex()
    dim = len(next(iter(vectors.values())))
    index.ensure_collection(dim, fusion=fusion_spec)
    index.upsert([ItemVector(id=i, vector=v, encoder_version=name) for i, v in vectors.items()])
    recommender = build_recommender(settings, index, weights=weights)
    for item in dataset.items:
        recommender.views.learn_item(item)
    return EngineModel(name, recommender)


Table = tuple[Mapping[str, np.ndarray], Mapping[str, object] | None]  # item vectors, fusion spec
LEARNED_WINDOW = 3  # items a user chose within this many steps of each other are a training pair


def vector_tables(settings: Settings, encoders: Mapping[str, Encoder],
                  parts: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, Table]:
    """One vector table per modality (zeros where an item lacks it) and, with two or more, the fused one."""
    ids = [i for i in parts if parts[i]]
    tables: dict[str, Table] = {
        m: ({i: parts[i].get(m, np.zeros(enc.dim, np.float32)) for i in ids}, None) for m, enc in encoders.items()
    }
    if len(encoders) > 1:
        fusion = EarlyFusion(make_blocks(encoders, settings.fusion_weights))
        tables["fused"] = (dict(zip(ids, fusion.fuse([parts[i] for i in ids]), strict=True)), fusion.spec())
    return tables


def learned_table(settings: Settings, encoders: Mapping[str, Encoder], parts: Mapping[str, Mapping[str, np.ndarray]],
                  train: Sequence[Event], seed: int, *, timed: bool = True, purpose: str = "test split") -> Table | None:
    """Item vectors through a learned fusion trained on the training events' co-chosen pairs, the
    way ``fusionrec fusion train`` trains one; None when there are too few pairs. Without times
    (``timed=False``) a user's items are paired in a seeded random order, not as the file lists them."""
    weights = {**DEFAULT_EVENT_WEIGHTS, **settings.event_weights}
    times = [e.timestamp for e in train] if timed else np.random.default_rng(seed).permutation(len(train)).tolist()
    pairs = co_consumption_pairs(((e.user, e.item, float(t)) for e, t in zip(train, times, strict=True)
                                  if weights.get(e.kind, 0) > 0), window=LEARNED_WINDOW)
    pairs = [(a, b) for a, b in pairs if parts.get(a) and parts.get(b)]
    if len(pairs) < 10:
        return None
    epochs = 20
    with tqdm(total=epochs, desc=f"training the learned fusion ({purpose})", unit="epoch") as bar:
        fusion = train_learned_fusion(make_blocks(encoders, settings.fusion_weights), parts, pairs, seed=seed,
                                      epochs=epochs, trained_on=f"{len(pairs)} training pairs",
                                      progress=lambda _epoch, loss: (bar.set_postfix(loss=f"{loss:.3f}"), bar.update()))
    ids = [i for i in parts if parts[i]]
    return dict(zip(ids, fusion.fuse([parts[i] for i in ids]), strict=True)), fusion.spec()


def main_table(tables: Mapping[str, Table]) -> str:
    """The hybrid's table: the learned fusion when there was data to train one (as a deployment with
    an interaction log would serve ``FUSIONREC_FUSION=learned``), else early fusion, else the one modality."""
    return next((t for t in ("learned", "fused") if t in tables), next(iter(tables)))


def model_factories(settings: Settings, dataset: Dataset, tables: Mapping[str, Table], split: Split,
                    config: EvalConfig, als_params: Mapping[str, float], rank: RankWeights) -> dict[str, Callable[[], Model]]:
    """Fresh-model makers, by name, in report order; ``rank`` is the hybrid's ranking weights."""
    catalog = Catalog(catalog_ids(dataset))
    span = split.train[-1].timestamp - split.train[0].timestamp
    # Partials, not lambdas: the protocols run each model in a worker process.
    makers: dict[str, Callable[[], Model]] = {"MostPopular": partial(MostPopular, catalog)}
    if dataset.timed:
        makers["RecentPopular"] = partial(RecentPopular, catalog, window_s=config.recent_share * span)
    makers["ItemKNN"] = partial(ItemKNN, catalog)
    makers["ALS"] = partial(ALS, catalog, refit_s=config.als_refit_s, seed=config.seed, **als_params)
    content_only = RankWeights(content=1.0, cooccurrence=0.0, popularity=0.0, freshness=0.0, diversity=0.0)
    for m, (vecs, spec) in tables.items():
        makers[f"content:{m}"] = partial(_engine, settings, dataset, f"content:{m}", vecs, spec, content_only)
    best = main_table(tables)
    makers["hybrid"] = partial(_engine, settings, dataset, "hybrid", *tables[best], rank)
    if len(tables) > 1:
        for m, (vecs, spec) in tables.items():
            if m != best:
                makers[f"hybrid:{m}"] = partial(_engine, settings, dataset, f"hybrid:{m}", vecs, spec, rank)
    makers["hybrid:no-content"] = partial(_engine, settings, dataset, "hybrid:no-content", *tables[best],
                                          replace(rank, content=0.0))
    if rank.new_item_share:
        makers["hybrid:no-new-items"] = partial(_engine, settings, dataset, "hybrid:no-new-items", *tables[best],
                                                replace(rank, new_item_share=0.0))
    if config.models:
        unknown = set(config.models) - set(makers)
        if unknown:
            raise ConfigError(f"unknown models {sorted(unknown)}; this dataset has {', '.join(makers)}")
        makers = {n: f for n, f in makers.items() if n in config.models}
    return makers


def catalog_ids(dataset: Dataset) -> list[str]:
    return [it.id for it in dataset.items] + [e.item for e in dataset.events]


def splits(dataset: Dataset, config: EvalConfig) -> tuple[Split, Split]:
    """(test split, validation split carved from the end of its training part)."""
    if dataset.timed:
        split = temporal_split(dataset.events, config.train_share)
        return split, temporal_split(split.train, 1.0 - config.valid_share)
    return labelled_split(dataset.events, ("train", "valid"), ("test",)), labelled_split(dataset.events, ("train",), ("valid",))


def tune_als(ids: Sequence[str], valid: Split, config: EvalConfig) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Grid search on the validation split (global protocol, Recall@20)."""
    catalog = Catalog(ids)
    makers = {f"ALS {p}": partial(ALS, catalog, refit_s=float("inf"), seed=config.seed, **p) for p in config.als_grid}
    outcome = global_split(makers, valid, len(catalog), workers=config.workers, desc="tuning ALS (validation split)")
    rows = []
    for params, (_, tally) in zip(config.als_grid, outcome.tallies.items(), strict=True):
        _, values, _ = tally.arrays("all")
        rows.append({**params, "recall@20": float(values[:, 3].mean()) if len(values) else 0.0})
    best = max(rows, key=lambda r: r["recall@20"])
    return {k: v for k, v in best.items() if k != "recall@20"}, rows


def tuned_engine(settings: Settings, point: Mapping[str, float]) -> tuple[Settings, RankWeights]:
    """The settings and ranking weights of one grid point (ranking weights, or else engine settings)."""
    weights = replace(rank_weights(settings), **{k: v for k, v in point.items() if k in RANK_FIELDS})
    return settings.model_copy(update={k: v for k, v in point.items() if k not in RANK_FIELDS}), weights


def grid_points(points: Sequence[Mapping[str, float]], *, timed: bool) -> list[Mapping[str, float]]:
    """The grid points that apply to a dataset: without times (events ordered by log position) an
    item has no age, so no point that boosts new items.

    >>> grid_points([{"newness": 0.0}, {"newness": 1.0}, {"content": 1.0}], timed=False)
    [{'newness': 0.0}, {'content': 1.0}]
    """
    return [p for p in points if timed or not p.get("newness")]


def tune_engine(settings: Settings, dataset: Dataset, table: Table, valid: Split, config: EvalConfig,
                protocol: str) -> tuple[dict[str, float], list[dict[str, float]]]:
    """The hybrid's grid point for ``protocol`` by grid search on the validation split, in that
    protocol (prequential replay of its first ``config.tune_events`` events); Recall@20."""
    grid = {str(g): g for g in grid_points(config.rank_grid.get(protocol, ()), timed=dataset.timed)}
    makers = {}
    for key, g in grid.items():
        engine_settings, weights = tuned_engine(settings, g)
        makers[key] = partial(_engine, engine_settings, dataset, "hybrid", *table, weights)
    n_items = len(Catalog(catalog_ids(dataset)))
    if protocol == "prequential":
        outcome = prequential(makers, Split(valid.train, valid.test[: config.tune_events]), n_items,
                              workers=config.workers, score_share=config.score_share, seed=config.seed,
                              desc="tuning the hybrid (prequential, validation split)")
    else:
        outcome = global_split(makers, valid, n_items, workers=config.workers,
                               desc="tuning the hybrid (global, validation split)")
    rows = []
    for key, tally in outcome.tallies.items():
        _, values, _ = tally.arrays("all")
        rows.append({**grid[key], "recall@20": float(values[:, 3].mean()) if len(values) else 0.0})
    best = max(rows, key=lambda r: r["recall@20"])
    return {k: v for k, v in best.items() if k != "recall@20"}, rows


def evaluate(settings: Settings, dataset: Dataset, config: EvalConfig) -> Evaluation:
    settings = dataset_settings(settings, dataset)
    result = Evaluation(dataset, config)
    encoders, parts, result.refused_items = item_vectors(settings, dataset, config.cache_dir)
    result.encoders = {m: e.version for m, e in encoders.items()}
    tables = vector_tables(settings, encoders, parts)
    split, valid = splits(dataset, config)
    if len(encoders) > 1:  # trained on the training events only: nothing of the test period leaks in
        learned = learned_table(settings, encoders, parts, split.train, config.seed, timed=dataset.timed)
        if learned is not None:
            tables["learned"] = learned
    wanted = set(config.models)
    if not wanted or "ALS" in wanted:
        result.als_params, result.als_validation = tune_als(catalog_ids(dataset), valid, config)
        logger.info("ALS tuned on the validation split: %s", result.als_params)
    protocols = [p for p in config.protocols if p != "prequential" or dataset.timed]
    result.skipped += [f"prequential replay: {dataset.name} has no interaction times"
                       for p in config.protocols if p not in protocols]
    n_items = len(Catalog(catalog_ids(dataset)))
    result.hybrid_table = main_table(tables)
    tune_table: Table | None = None
    for protocol in protocols:
        point: dict[str, float] = {}
        if config.rank_grid.get(protocol) and (not wanted or any(m.startswith("hybrid") for m in wanted)):
            if tune_table is None:
                tune_table = tables[result.hybrid_table]
                if result.hybrid_table == "learned":
                    # The test split's learned fusion has seen the validation period: tune on one that has not.
                    tune_table = learned_table(settings, encoders, parts, valid.train, config.seed,
                                               timed=dataset.timed, purpose="validation split") or tune_table
            point, result.rank_validation[protocol] = tune_engine(settings, dataset, tune_table, valid, config, protocol)
            logger.info("%s: hybrid tuned on the validation split: %s", protocol, point)
        engine_settings, rank = tuned_engine(settings, point)
        result.rank_weights[protocol] = {**asdict(rank), **{k: v for k, v in point.items() if k not in RANK_FIELDS}}
        makers = model_factories(engine_settings, dataset, tables, split, config, result.als_params, rank)
        result.engine_settings[protocol] = settings_summary(engine_settings, rank)
        if protocol == "global":
            result.outcomes[protocol] = global_split(makers, split, n_items, workers=config.workers,
                                                     desc="final run: global split")
        else:
            result.outcomes[protocol] = prequential(makers, split, n_items, workers=config.workers,
                                                    score_share=config.score_share, seed=config.seed,
                                                    desc="final run: prequential replay")
    return result


# The settings each ranking weight comes from (see streams/build.rank_weights).
RANK_SETTINGS = {"content": "weight_content", "cooccurrence": "weight_cooccurrence", "popularity": "weight_popularity",
                 "freshness": "weight_freshness", "diversity": "diversity", "new_item_share": "new_item_share",
                 "new_item_interactions": "new_item_interactions", "newness": "weight_newness",
                 "newness_half_life_s": "newness_half_life_s"}


def settings_summary(settings: Settings, rank: RankWeights | None = None) -> dict[str, object]:
    """The engine settings a run used; with ``rank``, the ranking weights as tuned rather than as set."""
    if rank is not None:
        settings = settings.model_copy(update={RANK_SETTINGS[k]: v for k, v in asdict(rank).items() if k in RANK_SETTINGS})
    keys = ("fusion", "fusion_weights", "profile_half_life_s", "short_term_alpha", "max_interests", "max_queries",
            "rating_midpoint", "event_weights", "weight_content", "weight_cooccurrence", "weight_popularity",
            "weight_freshness", "weight_newness", "newness_half_life_s", "diversity", "new_item_share",
            "new_item_interactions", "popularity_half_life_s", "trending_half_life_s", "cooccurrence_window")
    return json.loads(settings.model_dump_json(include=set(keys)))
