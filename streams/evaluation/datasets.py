"""Interaction logs and catalogues to evaluate on: MovieLens 100K, Last.fm 2K, or your own files.

Each loader returns a :class:`Dataset`: the catalogue as :class:`~fusionrec.schemas.Item` events (what
an app would publish, so the very encoders and fusion of the workers turn them into vectors) and the
interactions in time order.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from fusionrec.schemas import ConfigError, InteractionType, Item, MediaKind, MediaRef
from fusionrec.streams.ops.files import read_rows, validate_rows

logger = logging.getLogger(__name__)


class Event(NamedTuple):
    """One interaction, as the harness replays it."""

    event_id: str
    user: str
    item: str
    timestamp: float  # epoch seconds; for logs without time, the position in the log
    kind: InteractionType
    value: float | None = None
    split: str = ""  # a split fixed by the dataset itself ("train"/"valid"/"test"), else ""


@dataclass(frozen=True)
class Dataset:
    name: str
    items: list[Item]
    events: list[Event]  # sorted by timestamp (stable)
    timed: bool  # False: the log has no times, so no temporal protocol applies
    modalities: tuple[str, ...]  # what the catalogue carries, e.g. ("text", "image")
    vector_dims: dict[str, int] = field(default_factory=dict)  # ready-made vectors on the items
    media_root: Path | None = None
    settings: dict[str, object] = field(default_factory=dict)  # what the log's events mean to the engine

    def describe(self) -> str:
        users = len({e.user for e in self.events})
        return (f"{self.name}: {len(self.events):,} interactions, {users:,} users, {len(self.items):,} items; "
                f"modalities {', '.join(self.modalities)}")


def _sorted(events: list[Event]) -> list[Event]:
    return sorted(events, key=lambda e: e.timestamp)


def _need(path: Path) -> Path:
    if not path.exists():
        raise ConfigError(f"{path} not found")
    return path


ML_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
             "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")


def load_movielens_100k(data_dir: Path) -> Dataset:
    """``u.data`` and ``u.item`` as GroupLens ships them, plus ``tmdb_overviews.csv`` (overview text)
    and ``posters/<movie id>.jpg`` when present. Every rating is one ``rating`` event; what is
    predicted is which movies a user rates next, so every rating is a positive choice
    (``rating_midpoint`` 0) rather than a like (4-5) or a dislike (1-2)."""
    data_dir = Path(data_dir).resolve()
    overviews: dict[str, str] = {}
    if (data_dir / "tmdb_overviews.csv").exists():
        with open(data_dir / "tmdb_overviews.csv", newline="", encoding="utf-8") as f:
            overviews = {row["movie_id"]: (row.get("overview") or "").strip() for row in csv.DictReader(f)}
    posters = data_dir / "posters"
    items = []
    with open(_need(data_dir / "u.item"), encoding="latin-1") as f:
        for line in f:
            parts = line.rstrip("\n").split("|")
            if len(parts) < 5 + len(ML_GENRES):
                continue
            movie_id, title = parts[0], parts[1]
            genres = [g for g, flag in zip(ML_GENRES, parts[5:], strict=False) if flag == "1" and g != "unknown"]
            poster = posters / f"{movie_id}.jpg"
            items.append(Item(
                id=movie_id, title=title, description=overviews.get(movie_id, "")[:20_000], tags=genres,
                category=genres[0] if genres else None,
                media={MediaKind.IMAGE: MediaRef(uri=poster.as_uri())} if poster.exists() else {},
            ))
    events = []
    with open(_need(data_dir / "u.data"), encoding="latin-1") as f:
        for n, line in enumerate(f):
            user, movie, rating, ts = line.split()
            events.append(Event(f"ml{n}", user, movie, float(ts), InteractionType.RATING, float(rating)))
    modalities = ("text", "image") if posters.is_dir() else ("text",)
    return Dataset("movielens-100k", items, _sorted(events), True, modalities, media_root=data_dir,
                   settings={"rating_midpoint": 0.0})


LASTFM_SPLITS = {"0": "train", "1": "valid", "2": "test"}
LASTFM_VECTORS = ("vggish", "whisper", "all-MiniLM-L6-v2")  # whichever of the published files are there


def load_lastfm_2k(data_dir: Path) -> Dataset:
    """HetRec Last.fm 2K as published with per-artist features: ``lfm2k.inter`` (user, artist, split
    label 0/1/2 = train/valid/test), ``lfm2k_og_ids.inter`` (the same rows with HetRec ids),
    ``lfm2k_text.tsv`` (tags by HetRec artist id) and ``vggish.npy``/``whisper.npy`` (audio) and
    ``all-MiniLM-L6-v2.npy`` (text), one row per artist index, as ready-made vectors. The log has no
    times: events keep file order and the published split."""
    data_dir = Path(data_dir).resolve()
    with open(_need(data_dir / "lfm2k.inter")) as a, open(_need(data_dir / "lfm2k_og_ids.inter")) as b:
        rows = [(x.split("\t"), y.split("\t")) for x, y in zip(a, b, strict=True)][1:]
    original = {r[1]: o[1] for r, o in rows}
    tags: dict[str, str] = {}
    with open(_need(data_dir / "lfm2k_text.tsv"), encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            tags[row["artistID"]] = row["text"] or ""
    matrices = {n: np.load(data_dir / f"{n}.npy") for n in LASTFM_VECTORS if (data_dir / f"{n}.npy").exists()}
    items = []
    for idx in sorted(original, key=int):
        vectors = {n: m[int(idx)].astype(np.float32).tolist() for n, m in matrices.items() if int(idx) < len(m)}
        items.append(Item(id=idx, title=f"artist {original[idx]}",
                          tags=[t[:100] for t in tags.get(original[idx], "").split(",") if t][:100], vectors=vectors))
    events = [
        Event(f"lfm{n}", r[0], r[1], float(n), InteractionType.PLAY, None, LASTFM_SPLITS.get(r[3].strip(), ""))
        for n, (r, _) in enumerate(rows)
    ]
    dims = {n: int(m.shape[1]) for n, m in matrices.items()}
    return Dataset("lastfm-2k", items, events, False, ("text", *dims), vector_dims=dims)


def load_generic(items_path: Path, interactions_path: Path, media_root: Path | None = None, *,
                 name: str = "generic") -> Dataset:
    """Your own data in the formats ``fusionrec publish`` reads (JSONL or CSV): items as the
    ``items`` topic's schema, interactions as the ``interactions`` topic's. Ready-made vectors on
    the items become modalities named after them. Ratings mean what the settings say
    (``FUSIONREC_RATING_MIDPOINT``), unlike MovieLens, whose every rating is a choice. ``search``
    events name no item and are left out."""
    items = [it for _, it in _validated("items", items_path)]
    events = [
        Event(e.event_id, e.user_id, e.item_id, e.timestamp.timestamp(), e.type, e.value)
        for _, e in _validated("interactions", interactions_path) if e.item_id is not None
    ]
    dims: dict[str, int] = {}
    for it in items:
        for name, values in it.vectors.items():
            dims.setdefault(name, len(values))
    modalities = ["text"] if any(it.text() for it in items) else []
    for kind in (MediaKind.IMAGE, MediaKind.AUDIO, MediaKind.VIDEO):
        if any(kind in it.media for it in items):
            modalities.append(kind.value)
    return Dataset(name, items, _sorted(events), True, (*modalities, *dims), vector_dims=dims, media_root=media_root)


def _validated(kind: str, path: Path) -> Sequence:
    good, bad = validate_rows(kind, read_rows(_need(path)))
    for line, reason in bad[:20]:
        logger.warning("%s line %d skipped: %s", path.name, line, reason)
    if bad:
        logger.warning("%s: %d of %d lines skipped", path.name, len(bad), len(bad) + len(good))
    return good


DATASETS = ("movielens-100k", "lastfm-2k", "generic")


def load_dataset(name: str, data_dir: Path | None = None, *, items: Path | None = None,
                 interactions: Path | None = None, generic_name: str = "generic") -> Dataset:
    if name == "movielens-100k":
        return load_movielens_100k(_dir(name, data_dir))
    if name == "lastfm-2k":
        return load_lastfm_2k(_dir(name, data_dir))
    if name == "generic":
        if items is None or interactions is None:
            raise ConfigError("the generic dataset needs --items and --interactions files")
        return load_generic(items, interactions, data_dir, name=generic_name)
    raise ConfigError(f"unknown dataset {name!r}; one of {', '.join(DATASETS)}")


def _dir(name: str, data_dir: Path | None) -> Path:
    if data_dir is None:
        raise ConfigError(f"{name} needs --data-dir (the folder with its files)")
    return data_dir
