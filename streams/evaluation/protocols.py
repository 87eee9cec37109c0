"""The two protocols: a global temporal split, and prequential replay (recommend, score, then learn).

Both only call ``learn_one``/``recommend``/``tick`` on the models, in time order, so a model can
never see an event before it is asked about it.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from tqdm import tqdm

from fusionrec.streams.evaluation.datasets import Event
from fusionrec.streams.evaluation.metrics import KS, coverage, score_list
from fusionrec.streams.evaluation.models import Model

COLD = 5  # an item (user) with fewer training interactions than this is cold
SLICES = ("all", "cold_items", "cold_users")


@dataclass(frozen=True)
class Split:
    train: list[Event]
    test: list[Event]

    @property
    def cut(self) -> float:
        """The time the test period starts."""
        return self.test[0].timestamp if self.test else self.train[-1].timestamp


def temporal_split(events: Sequence[Event], train_share: float = 0.8) -> Split:
    """The first ``train_share`` of events by time for training, the rest for testing.

    Events sharing the cut's timestamp all go to training, so every test event is strictly later
    than every training event.
    """
    if not 0 < train_share < 1:
        raise ValueError("train_share must be between 0 and 1")
    ordered = sorted(events, key=lambda e: e.timestamp)
    cut = max(1, int(len(ordered) * train_share))
    while cut < len(ordered) and ordered[cut].timestamp == ordered[cut - 1].timestamp:
        cut += 1
    return Split(ordered[:cut], ordered[cut:])


def labelled_split(events: Sequence[Event], train: Sequence[str], test: Sequence[str]) -> Split:
    """A split the dataset fixes itself (``Event.split``), for logs without times."""
    return Split([e for e in events if e.split in train], [e for e in events if e.split in test])


@dataclass
class Tally:
    """One model's scored records per slice: the user of each record, its metrics, its time."""

    users: dict[str, list[int]] = field(default_factory=lambda: {s: [] for s in SLICES})
    values: dict[str, list[np.ndarray]] = field(default_factory=lambda: {s: [] for s in SLICES})
    times: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in SLICES})
    lists: list[list[str]] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, slice_: str, user: int, values: np.ndarray, when: float) -> None:
        self.users[slice_].append(user)
        self.values[slice_].append(values)
        self.times[slice_].append(when)

    def arrays(self, slice_: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        vals = self.values[slice_]
        return (np.asarray(self.users[slice_], dtype=np.int64),
                np.vstack(vals) if vals else np.zeros((0, 3 * len(KS) + 1)),
                np.asarray(self.times[slice_], dtype=np.float64))


@dataclass
class Outcome:
    protocol: str
    tallies: dict[str, Tally]
    users: list[str]  # bootstrap columns
    n_items: int
    notes: list[str] = field(default_factory=list)

    def coverage(self, name: str, k: int = 20) -> float:
        return coverage(self.tallies[name].lists, self.n_items, k)


Job = Callable[[Callable[[int], None]], Tally]
_DONE: Any = None  # per job: events stepped through, shared with the worker processes


def _share_progress(done: Any) -> None:
    global _DONE
    _DONE = done


def _run_job(n: int, job: Job) -> Tally:
    def progress(steps: int) -> None:
        with _DONE.get_lock():
            _DONE[n] += steps

    return job(progress)


def run_jobs(jobs: Sequence[Job], total: int, *, workers: int, desc: str) -> list[Tally]:
    """Run independent model jobs, ``workers`` at a time in fresh processes (1: in this one), with
    one progress bar over the ``total`` events all jobs step through.

    Processes come from a fork server, not a fork of this process: OpenMP (torch, implicit) hangs
    in a child forked after the parent used it. So jobs must pickle: module-level functions and
    partials of them.
    """
    ctx = multiprocessing.get_context("forkserver")
    done = ctx.Array("q", len(jobs))
    with tqdm(total=total, desc=desc, unit="event", mininterval=1.0) as bar:
        if workers <= 1 or len(jobs) == 1:
            _share_progress(done)
            out = []
            for n, job in enumerate(jobs):
                out.append(_run_job(n, job))
                bar.update(sum(done) - bar.n)
            return out
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_share_progress,
                                 initargs=(done,)) as pool:
            futures = [pool.submit(_run_job, n, job) for n, job in enumerate(jobs)]
            while not all(f.done() for f in futures):
                time.sleep(0.5)
                bar.update(sum(done) - bar.n)
            bar.update(sum(done) - bar.n)
            return [f.result() for f in futures]


def _learn(model: Model, events: Sequence[Event], progress: Callable[[int], None]) -> None:
    for n, e in enumerate(events, 1):
        model.learn_one(e)
        if n % STEP == 0:
            progress(STEP)
    progress(len(events) % STEP)


STEP = 500


@dataclass(frozen=True)
class GlobalPlan:
    split: Split
    users: list[str]
    column: dict[str, int]
    relevant: dict[str, set[str]]
    item_counts: Counter[str]
    user_counts: Counter[str]
    kmax: int


def _global_job(p: GlobalPlan, make: Callable[[], Model], progress: Callable[[int], None]) -> Tally:
    started = time.perf_counter()
    model = make()
    _learn(model, p.split.train, progress)
    model.tick(p.split.cut)
    tally = Tally()
    for u in p.users:
        recs = model.recommend(u, p.kmax, p.split.cut)
        tally.lists.append(recs)
        tally.add("all", p.column[u], score_list(recs, p.relevant[u]), p.split.cut)
        cold = {i for i in p.relevant[u] if p.item_counts[i] < COLD}
        if cold:
            tally.add("cold_items", p.column[u], score_list(recs, cold), p.split.cut)
        if p.user_counts[u] < COLD:
            tally.add("cold_users", p.column[u], score_list(recs, p.relevant[u]), p.split.cut)
    tally.seconds = time.perf_counter() - started
    return tally


@dataclass(frozen=True)
class ReplayPlan:
    split: Split
    plan: list[tuple[bool, bool, bool]]  # per test event: in the sample, scored for the cold-item slice, cold user
    column: dict[str, int]
    kmax: int


def _replay_job(p: ReplayPlan, make: Callable[[], Model], progress: Callable[[int], None]) -> Tally:
    started = time.perf_counter()
    model = make()
    _learn(model, p.split.train, progress)
    tally = Tally()
    for n, (e, (sampled, cold_item, cold_user)) in enumerate(zip(p.split.test, p.plan, strict=True), 1):
        model.tick(e.timestamp)
        if sampled or cold_item:
            recs = model.recommend(e.user, p.kmax, e.timestamp)
            values = score_list(recs, (e.item,))
            if sampled:
                tally.lists.append(recs)
                tally.add("all", p.column[e.user], values, e.timestamp)
                if cold_user:
                    tally.add("cold_users", p.column[e.user], values, e.timestamp)
            if cold_item:
                tally.add("cold_items", p.column[e.user], values, e.timestamp)
        model.learn_one(e)
        if n % STEP == 0:
            progress(STEP)
    progress(len(p.split.test) % STEP)
    tally.seconds = time.perf_counter() - started
    return tally


def global_split(models: Mapping[str, Callable[[], Model]], split: Split, n_items: int, *, kmax: int = max(KS),
                 workers: int = 1, desc: str = "global split") -> Outcome:
    """Train on ``split.train``; then one list per user with training history, at the cut, scored
    against the items the user chose in the test period and had not chosen before."""
    history: dict[str, set[str]] = defaultdict(set)
    for e in split.train:
        history[e.user].add(e.item)
    item_counts = Counter(e.item for e in split.train)
    user_counts = Counter(e.user for e in split.train)
    relevant: dict[str, set[str]] = defaultdict(set)
    for e in split.test:
        if e.user in history and e.item not in history[e.user]:
            relevant[e.user].add(e.item)
    users = sorted(relevant)
    column = {u: n for n, u in enumerate(users)}
    unseen_users = len({e.user for e in split.test} - set(history))
    plan = GlobalPlan(split, users, column, dict(relevant), item_counts, user_counts, kmax)
    done = run_jobs([partial(_global_job, plan, m) for m in models.values()], len(models) * len(split.train),
                    workers=workers, desc=desc)
    tallies = dict(zip(models, done, strict=True))
    notes = [f"{len(users):,} test users with training history scored; {unseen_users:,} test users without any "
             "training event cannot be scored in this protocol"]
    return Outcome("global", tallies, users, n_items, notes)


def prequential(models: Mapping[str, Callable[[], Model]], split: Split, n_items: int, *, kmax: int = max(KS),
                workers: int = 1, score_share: float = 1.0, seed: int = 0, desc: str = "prequential replay") -> Outcome:
    """Train on ``split.train``; then for every test event in time order: ask the model for the
    user's list, score it against the item the user chose, and only then let the model learn the
    event. An item the user had already chosen is learned but not scored (lists never repeat seen
    items). With ``score_share`` < 1 every event is still learned, but only a seeded random share
    of them is asked about and scored (the same events for every model); events on cold items are
    rare, so the cold-item slice scores every one of them, sampled or not."""
    seen: dict[str, set[str]] = defaultdict(set)
    item_counts: Counter[str] = Counter()
    user_counts: Counter[str] = Counter()
    for e in split.train:
        seen[e.user].add(e.item)
        item_counts[e.item] += 1
        user_counts[e.user] += 1
    # Which test events are scored, and their slices, depend only on the log: fix them once.
    repeats = 0
    plan: list[tuple[bool, bool, bool]] = []
    sample = np.random.default_rng(seed).random(len(split.test)) < score_share
    for e, sampled in zip(split.test, sample, strict=True):
        new = e.item not in seen[e.user]
        plan.append((new and bool(sampled), new and item_counts[e.item] < COLD, user_counts[e.user] < COLD))
        repeats += not new
        seen[e.user].add(e.item)
        item_counts[e.item] += 1
        user_counts[e.user] += 1
    users = sorted({e.user for e, p in zip(split.test, plan, strict=True) if p[0] or p[1]})
    column = {u: n for n, u in enumerate(users)}
    pplan = ReplayPlan(split, plan, column, kmax)
    done = run_jobs([partial(_replay_job, pplan, m) for m in models.values()],
                    len(models) * (len(split.train) + len(split.test)), workers=workers, desc=desc)
    tallies = dict(zip(models, done, strict=True))
    scored = sum(1 for p in plan if p[0])
    notes = [f"{len(plan):,} test events replayed in time order, every one learned; {scored:,} of them scored "
             + (f"(a seeded {score_share:.0%} sample; every one of the {sum(1 for p in plan if p[1]):,} events on a "
                f"cold item is scored for that slice) " if score_share < 1 else "") + f"over {len(users):,} users"
             + (f"; {repeats:,} repeat choices learned but never scored" if repeats else "")]
    return Outcome("prequential", tallies, users, n_items, notes)
