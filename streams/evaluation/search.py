"""``fusionrec evaluate --task search``: known-item search and personalised search by replay.

* **Known-item search**: a query made from one item must find that item. Words: the second sentence
  of its description (the first when it has one). A picture: the centre of its own picture, cropped
  and scaled as a photo of part of a poster would be. Each kind of query is asked of the index of its
  own modality and of the fused one, and words + picture of the fused one; MRR@100 and Recall@10.
* **Personalised search by replay**: the log replayed in time order; for a sample of the test events,
  the query is the chosen item's genre words and the user's profile is what the events before made
  it. Recall@k of the chosen item, personalised (the settings' weights) against plain search
  (``personalization=0``), with a paired bootstrap over users.

Everything runs through :class:`~fusionrec.agents.search.Searcher` and the engine, as the worker does.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from fusionrec.agents.search import Query, Searcher, SearchRequest
from fusionrec.encoders import Encoder, VectorPassThrough
from fusionrec.encoders.base import batches
from fusionrec.encoders.fusion import Block, EarlyFusion
from fusionrec.encoders.media import decode_media
from fusionrec.encoders.query import QueryEncoder
from fusionrec.schemas import ConfigError, EventError, MediaKind
from fusionrec.streams.build import build_recommender, build_searcher
from fusionrec.streams.evaluation.datasets import Dataset
from fusionrec.streams.evaluation.metrics import Estimate, estimate, ratio_interval, user_bootstrap_weights
from fusionrec.streams.evaluation.models import EngineModel
from fusionrec.streams.evaluation.protocols import temporal_split
from fusionrec.streams.evaluation.run import Table, dataset_settings, item_vectors, vector_tables
from fusionrec.streams.index import ItemVector, MemoryVectorIndex
from fusionrec.streams.settings import Settings

logger = logging.getLogger(__name__)

DEPTH = 100  # results asked per query: MRR counts a rank up to here, curves run to here
GOAL = 1.2  # personalised Recall@20 over plain search's


@dataclass(frozen=True)
class SearchEvalConfig:
    train_share: float = 0.8
    score_share: float = 0.2  # the share of test events searched (a seeded sample; every event is learned)
    crop: float = 0.6  # the query picture: this central share of the item's picture (per side)
    resamples: int = 1000
    seed: int = 0
    batch: int = 256
    cache_dir: Path | None = None


@dataclass
class SearchEvaluation:
    dataset: str
    known: list[dict[str, Any]] = field(default_factory=list)  # one row per (queries, vectors)
    replay: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, list[float]] = field(default_factory=dict)  # recall@1..DEPTH per replay variant
    skipped: list[str] = field(default_factory=list)


def first_sentences(text: str) -> list[str]:
    """
    >>> first_sentences("Led by Woody, toys live. Afraid of losing, Woody plots! Then what?")
    ['Led by Woody, toys live.', 'Afraid of losing, Woody plots!', 'Then what?']
    """
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if len(s.split()) >= 3]


def text_query(description: str) -> str | None:
    sentences = first_sentences(description)
    return sentences[1] if len(sentences) > 1 else sentences[0] if sentences else None


def _single_block(name: str, dim: int) -> dict[str, Any]:
    return EarlyFusion([Block(name, (name,), dim)]).spec()


def _searcher(settings: Settings, dataset: Dataset, table: Table, queries: QueryEncoder) -> Searcher:
    vectors, spec = table
    index = MemoryVectorIndex()
    index.ensure_collection(len(next(iter(vectors.values()))), fusion=spec)
    index.upsert([ItemVector(id=i, vector=v, encoder_version="eval") for i, v in vectors.items()])
    recommender = build_recommender(settings, index, queries=queries)
    for item in dataset.items:
        recommender.views.learn_item(item)
    return build_searcher(settings, recommender)


def _ranks(searcher: Searcher, requests: Sequence[SearchRequest], targets: Sequence[str], batch: int,
           desc: str) -> np.ndarray:
    """The rank (1-based) of each target in its request's results; 0 where it is not in the first DEPTH."""
    out = np.zeros(len(requests), dtype=np.int64)
    with tqdm(total=len(requests), desc=desc, unit="query") as bar:
        for start in range(0, len(requests), batch):
            results = searcher.search_many(requests[start : start + batch])
            for n, res in enumerate(results, start):
                ids = [i.item_id for i in res.items]
                out[n] = ids.index(targets[n]) + 1 if targets[n] in ids else 0
            bar.update(len(results))
    return out


def _picture_queries(dataset: Dataset, image: Encoder, crop: float) -> dict[str, np.ndarray]:
    """Each item's picture, cropped to its centre, through the image encoder (one row per item)."""
    files = {it.id: Path(ref.uri.removeprefix("file://")) for it in dataset.items
             if (ref := it.media.get(MediaKind.IMAGE)) is not None and ref.uri is not None}
    out: dict[str, np.ndarray] = {}
    with tqdm(total=len(files), desc="encoding the query pictures", unit="picture") as bar:
        for chunk in batches(list(files), 32):
            prepared = {}
            for item_id in chunk:
                try:
                    picture = decode_media(MediaKind.IMAGE, files[item_id].read_bytes())
                except (OSError, EventError) as exc:  # an unreadable picture makes no query
                    logger.warning("no query picture for %s: %s", item_id, exc)
                    continue
                w, h = picture.size
                dw, dh = w * (1 - crop) / 2, h * (1 - crop) / 2
                prepared[item_id] = image.prepare(picture.crop((dw, dh, w - dw, h - dh)))
            if prepared:
                out.update(zip(prepared, image.encode(list(prepared.values())), strict=True))
            bar.update(len(chunk))
    return out


def known_item(settings: Settings, dataset: Dataset, encoders: Mapping[str, Encoder], tables: Mapping[str, Table],
               config: SearchEvalConfig, result: SearchEvaluation) -> None:
    texts = {it.id: q for it in dataset.items if (q := text_query(it.description)) is not None}
    pictures = _picture_queries(dataset, encoders["image"], config.crop) if "image" in encoders else {}
    if "image" not in encoders:
        result.skipped.append(f"picture queries: {dataset.name} has no pictures")
    image_dim = encoders["image"].dim if "image" in encoders else 1
    loaders: dict[str, Callable[[], Encoder]] = {"text": lambda: encoders["text"],
                                                 "image": lambda: VectorPassThrough("image", image_dim)}
    queries = QueryEncoder(loaders)
    fused = "fused" if "fused" in tables else None
    runs: list[tuple[str, str, Callable[[str], Query], set[str]]] = [
        ("words", "text", lambda i: Query(text=texts[i]), set(texts)),
        ("words", fused or "", lambda i: Query(text=texts[i]), set(texts)),
        ("picture", "image", lambda i: Query(image=pictures[i]), set(pictures)),
        ("picture", fused or "", lambda i: Query(image=pictures[i]), set(pictures)),
        ("words + picture", fused or "", lambda i: Query(text=texts[i], image=pictures[i]), set(texts) & set(pictures)),
    ]
    for label, table_name, make, have in runs:
        if table_name not in tables or not have:
            continue
        vectors, spec = tables[table_name]
        table = (vectors, spec or _single_block(table_name, len(next(iter(vectors.values())))))
        searcher = _searcher(settings, dataset, table, queries)
        ids = [i for i in vectors if i in have]
        ranks = _ranks(searcher, [SearchRequest(make(i), k=DEPTH, personalization=0.0) for i in ids], ids,
                       config.batch, desc=f"known-item search: {label} on {table_name} vectors")
        weights = user_bootstrap_weights(len(ids), resamples=config.resamples, seed=config.seed)
        each = np.arange(len(ids))
        mrr, _ = estimate(np.where(ranks > 0, 1.0 / np.maximum(ranks, 1), 0.0), each, weights)
        recall, _ = estimate(((ranks > 0) & (ranks <= 10)).astype(float), each, weights)
        result.known.append({"queries": label, "vectors": table_name, "n": len(ids), "mrr@100": mrr, "recall@10": recall})


def personalised(settings: Settings, dataset: Dataset, encoders: Mapping[str, Encoder], tables: Mapping[str, Table],
                 config: SearchEvalConfig, result: SearchEvaluation) -> None:
    name = "fused" if "fused" in tables else next(iter(tables))
    vectors, spec = tables[name]
    table = (vectors, spec or _single_block(name, len(next(iter(vectors.values())))))
    searcher = _searcher(settings, dataset, table, QueryEncoder({"text": lambda: encoders["text"]}))
    model = EngineModel("search", searcher.recommender)
    genres = {it.id: " ".join(it.tags) for it in dataset.items if it.tags}
    split = temporal_split(dataset.events, config.train_share)
    for event in tqdm(split.train, desc="personalised search: learning the training events", unit="event"):
        model.learn_one(event)
    rng = np.random.default_rng(config.seed)
    scored = rng.random(len(split.test)) < config.score_share
    variants = {"plain": {"personalization": 0.0}, "personalised": {},
                "personalised, seen dropped": {"exclude_seen": True}}
    ranks: dict[str, list[int]] = {v: [] for v in variants}
    users: list[str] = []
    for event, score in tqdm(list(zip(split.test, scored, strict=True)), desc="personalised search: replay",
                             unit="event"):
        if score and event.item in genres and event.item in vectors:
            state = model.states.get(event.user)
            requests = [SearchRequest(Query(text=genres[event.item]), user_id=event.user, state=state, k=DEPTH,
                                      **options) for options in variants.values()]
            for v, res in zip(variants, searcher.search_many(requests), strict=True):
                ids = [i.item_id for i in res.items]
                ranks[v].append(ids.index(event.item) + 1 if event.item in ids else 0)
            users.append(event.user)
        model.learn_one(event)
    if not users:
        result.skipped.append("personalised search: no test event names an item with genre words")
        return
    codes = {u: n for n, u in enumerate(dict.fromkeys(users))}
    user_ids = np.array([codes[u] for u in users])
    weights = user_bootstrap_weights(len(codes), resamples=config.resamples, seed=config.seed)
    recall, boot = {}, {}
    for v, r in ranks.items():
        arr = np.array(r)
        recall[v], boot[v] = estimate(((arr > 0) & (arr <= 20)).astype(float), user_ids, weights)
        result.curves[v] = [float(((arr > 0) & (arr <= k)).mean()) for k in range(1, DEPTH + 1)]
    ratio = recall["personalised"].mean / recall["plain"].mean if recall["plain"].mean else float("inf")
    low, high = ratio_interval(boot["personalised"], boot["plain"])
    result.replay = {"vectors": name, "events": len(users), "users": len(codes), "recall@20": recall,
                     "ratio": ratio, "interval": (low, high), "met": ratio >= GOAL and low > 1.0,
                     "weights": asdict(searcher.weights)}


def evaluate_search(settings: Settings, dataset: Dataset, config: SearchEvalConfig) -> SearchEvaluation:
    settings = dataset_settings(settings, dataset)
    if "text" not in dataset.modalities:
        raise ConfigError(f"{dataset.name} has no text to search by words")
    encoders, parts, _ = item_vectors(settings, dataset, config.cache_dir)
    tables = vector_tables(settings, encoders, parts)
    result = SearchEvaluation(dataset.name)
    known_item(settings, dataset, encoders, tables, config, result)
    if dataset.timed:
        personalised(settings, dataset, encoders, tables, config, result)
    else:
        result.skipped.append(f"personalised search: {dataset.name} has no interaction times to replay")
    return result


def _cell(e: Estimate) -> str:
    return f"{e.mean:.3f} [{e.low:.3f}, {e.high:.3f}]"


def markdown(result: SearchEvaluation) -> str:
    lines = [f"# Search: {result.dataset}", "", "## Known-item search", "",
             "| query | vectors | queries | MRR@100 | Recall@10 |", "|---|---|---:|---|---|"]
    lines += [f"| {r['queries']} | {r['vectors']} | {r['n']:,} | {_cell(r['mrr@100'])} | {_cell(r['recall@10'])} |"
              for r in result.known]
    if result.replay:
        rp = result.replay
        lines += ["", "## Personalised search by replay", "",
                  f"Query: the chosen item's genre words; {rp['events']:,} test events of {rp['users']:,} users, "
                  f"{rp['vectors']} vectors.", "", "| search | Recall@20 |", "|---|---|"]
        lines += [f"| {v} | {_cell(e)} |" for v, e in rp["recall@20"].items()]
        low, high = rp["interval"]
        verdict = "met" if rp["met"] else "NOT met"
        lines += ["", f"Personalised / plain Recall@20: {rp['ratio']:.2f}x [{low:.2f}, {high:.2f}] "
                  f"(goal: {GOAL:.1f}x, interval above 1): **{verdict}**"]
    lines += ["", *[f"skipped {s}" for s in result.skipped]] if result.skipped else []
    return "\n".join(lines) + "\n"


def to_json(result: SearchEvaluation) -> dict[str, Any]:
    def plain(x: Any) -> Any:
        if isinstance(x, Estimate):
            return {"mean": x.mean, "low": x.low, "high": x.high, "n": x.n}
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [plain(v) for v in x]
        return x

    return plain({"dataset": result.dataset, "known_item": result.known, "replay": result.replay,
                  "recall_curves": result.curves, "skipped": result.skipped})


def write(result: SearchEvaluation, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "search.md", out / "search.json"]
    paths[0].write_text(markdown(result))
    paths[1].write_text(json.dumps(to_json(result), indent=2))
    if result.curves:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.5, 4))
        ks = np.arange(1, DEPTH + 1)
        for name, curve in result.curves.items():
            ax.plot(ks, curve, label=name)
        ax.axvline(20, color="grey", linewidth=0.5)
        ax.set(xlabel="k", ylabel="Recall@k of the chosen item", xscale="log",
               title=f"{result.dataset}: search by genre words, replayed")
        ax.legend()
        fig.tight_layout()
        paths.append(out / "search-recall.png")
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    return paths
