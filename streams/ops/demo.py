"""``fusionrec demo``: a synthetic shop with latent tastes, run through the whole embedded stream.

Items of eight genres describe themselves in their genre's words; each user prefers two genres and
mostly interacts with those. Nothing tells the workers the genres: if the recommendations match
the users' tastes far above chance, the text encoder, the profiles and the retrieval all work.
"""

from __future__ import annotations

import logging
import random
import statistics
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tqdm import tqdm

from fusionrec.schemas import Interaction, InteractionType, Item
from fusionrec.streams.embedded.processes import free_port
from fusionrec.streams.embedded.stack import EmbeddedStack
from fusionrec.streams.index import open_index
from fusionrec.streams.kafka.client import Publisher, Received, RecommendationConsumer
from fusionrec.streams.settings import Settings

logger = logging.getLogger(__name__)

GENRES: dict[str, tuple[list[str], list[str]]] = {
    "space": (["Starship", "Galaxy", "Nebula", "Orbit", "Comet", "Astronaut"],
              ["interstellar voyage", "alien planet", "rocket launch", "space station", "distant stars"]),
    "cooking": (["Kitchen", "Recipe", "Chef", "Bakery", "Spice", "Feast"],
                ["homemade pasta", "slow roasted vegetables", "baking bread", "spicy curry", "family dinner"]),
    "football": (["Goal", "Striker", "Stadium", "Derby", "Penalty", "League"],
                 ["championship match", "soccer tactics", "goalkeeper saves", "transfer window", "cup final"]),
    "gardening": (["Garden", "Seedling", "Orchard", "Bloom", "Greenhouse", "Compost"],
                  ["growing tomatoes", "pruning roses", "organic soil", "planting bulbs", "herb beds"]),
    "jazz": (["Saxophone", "Swing", "Bebop", "Trumpet", "Blue Note", "Big Band"],
             ["improvised solos", "smoky club", "double bass groove", "piano trio", "brass section"]),
    "finance": (["Portfolio", "Dividend", "Ledger", "Market", "Bond", "Budget"],
                ["stock investing", "retirement savings", "interest rates", "tax planning", "index funds"]),
    "horror": (["Haunted", "Phantom", "Crypt", "Nightmare", "Curse", "Shadow"],
               ["ghost story", "abandoned asylum", "creeping dread", "monster in the dark", "cursed house"]),
    "hiking": (["Trail", "Summit", "Ridge", "Canyon", "Basecamp", "Alpine"],
               ["mountain trekking", "backpacking gear", "wilderness camping", "glacier crossing", "forest path"]),
}
_TEMPLATES = [
    "{title}: a guide to {a} and {b}.",
    "{title} explores {a}, with notes on {b}.",
    "Everything about {a}. {title} also covers {b}.",
]
_POSITIVE = [InteractionType.VIEW, InteractionType.CLICK, InteractionType.LIKE, InteractionType.PURCHASE]


@dataclass(frozen=True)
class DemoConfig:
    users: int = 200
    items: int = 400
    events_per_user: int = 20
    rate: float = 200.0
    seed: int = 7
    taste_share: float = 0.9  # share of a user's events that follow their tastes


@dataclass
class DemoData:
    items: list[Item]
    genre_of: dict[str, str]
    tastes: dict[str, set[str]]
    events: list[Interaction] = field(default_factory=list)


def synthesize(cfg: DemoConfig) -> DemoData:
    """A seeded catalogue, users with two favourite genres each, and their interaction stream."""
    rng = random.Random(cfg.seed)
    names = list(GENRES)
    items, genre_of = [], {}
    for i in range(cfg.items):
        genre = names[i % len(names)]
        nouns, topics = GENRES[genre]
        a, b = rng.sample(topics, 2)
        title = f"{rng.choice(nouns)} {rng.choice(['Stories', 'Notes', 'Handbook', 'Chronicle', 'Journal'])} {i}"
        item = Item(id=f"item-{i:05d}", title=title, description=rng.choice(_TEMPLATES).format(title=title, a=a, b=b),
                    tags=[rng.choice(nouns).lower()], category=genre)
        items.append(item)
        genre_of[item.id] = genre
    by_genre: dict[str, list[str]] = {g: [it.id for it in items if genre_of[it.id] == g] for g in names}
    tastes = {f"user-{u:04d}": set(rng.sample(names, 2)) for u in range(cfg.users)}
    per_user: dict[str, list[tuple[str, InteractionType]]] = {}
    for user, liked in tastes.items():
        picks = []
        for _ in range(cfg.events_per_user):
            pool = by_genre[rng.choice(sorted(liked))] if rng.random() < cfg.taste_share else [it.id for it in items]
            picks.append((rng.choice(pool), rng.choice(_POSITIVE)))
        per_user[user] = picks
    data = DemoData(items, genre_of, tastes)
    # Round-robin over users, as a live app's traffic interleaves them.
    for step in range(cfg.events_per_user):
        for user in tastes:
            item_id, kind = per_user[user][step]
            data.events.append(
                Interaction(event_id=f"{user}-{step}", user_id=user, item_id=item_id, type=kind,
                            timestamp=datetime.now(UTC))
            )
    return data


@dataclass
class DemoResult:
    lists: int
    users: int
    taste_match: float
    random_rate: float
    p50_ms: float
    p95_ms: float
    seen_violations: int
    expected: int
    p99_ms: float = float("nan")
    events_per_s: float = float("nan")  # lists per second from the first event sent to the last list read

    @property
    def ok(self) -> bool:
        return self.lists == self.expected and self.seen_violations == 0

    def summary_line(self) -> str:
        ratio = self.taste_match / self.random_rate if self.random_rate else float("nan")
        return (
            f"demo: {self.lists} recommendation lists for {self.users} users; taste match {self.taste_match:.0%} "
            f"(random {self.random_rate:.0%}, {ratio:.1f}x); seen items re-recommended {self.seen_violations}; "
            f"{self.events_per_s:.0f} events/s sustained; "
            f"event->recommendation p50 {self.p50_ms:.0f} ms, p95 {self.p95_ms:.0f} ms, p99 {self.p99_ms:.0f} ms"
        )


def measure(data: DemoData, received: list[tuple[Received, float]]) -> DemoResult:
    """Score what came back: taste match per list, chance rate from the catalogue, latency, seen leaks."""
    n = len(data.items)
    genre_count: dict[str, int] = {}
    for g in data.genre_of.values():
        genre_count[g] = genre_count.get(g, 0) + 1
    history: dict[str, list[str]] = {}
    position: dict[str, int] = {}
    for e in data.events:
        position[e.event_id] = len(history.setdefault(e.user_id, []))
        history[e.user_id].append(e.item_id)
    matches, chance, latencies = [], [], []
    violations = 0
    for got, arrived in received:
        rec = got.recommendation
        liked = data.tastes[rec.user_id]
        # A user's events are applied in order: everything up to the trigger has been seen.
        seen = set(history[rec.user_id][: position[rec.trigger_event_id or ""] + 1])
        ids = [i.item_id for i in rec.items]
        violations += sum(1 for i in ids if i in seen)
        if ids:
            matches.append(sum(data.genre_of[i] in liked for i in ids) / len(ids))
            chance.append(sum(genre_count[g] for g in liked) / n)
        if rec.trigger_timestamp is not None:
            latencies.append((arrived - rec.trigger_timestamp.timestamp()) * 1000)
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) >= 2 else [float("nan")] * 99
    triggers = [g.recommendation.trigger_timestamp.timestamp() for g, _ in received if g.recommendation.trigger_timestamp]
    span = max(a for _, a in received) - min(triggers) if triggers else 0.0
    return DemoResult(
        lists=len(received),
        users=len({g.recommendation.user_id for g, _ in received}),
        taste_match=statistics.fmean(matches) if matches else 0.0,
        random_rate=statistics.fmean(chance) if chance else 0.0,
        p50_ms=statistics.median(latencies) if latencies else float("nan"),
        p95_ms=q[94],
        seen_violations=violations,
        expected=len(data.events),
        p99_ms=q[98],
        events_per_s=len(received) / span if span > 0 else float("nan"),
    )


def run_demo(settings: Settings, cfg: DemoConfig, *, timeout_s: float = 300.0) -> DemoResult:
    data = synthesize(cfg)
    demo_dir = settings.data_dir / "demo"
    # One list per event (no coalescing, unchanged lists too), so every event's latency is measured.
    update = {"data_dir": demo_dir, "web_port": free_port(), "emit_only_changed": False, "emit_min_interval_s": 0.0}
    if "modalities" not in settings.model_fields_set:
        # The synthetic catalogue is text: a 384-d index instead of the 3,362-d all-modality one, which
        # milvus-lite (a scan in Python) searches about eight times slower.
        update["modalities"] = ["text"]
    demo_settings = settings.model_copy(update=update)
    with EmbeddedStack(demo_settings) as stack:
        s = stack.settings
        index = open_index(s.require_milvus_uri(), s.collection)
        with Publisher(s) as pub:
            for item in tqdm(data.items, desc="publish items", unit="item"):
                pub.publish_item(item)
        _wait_indexed(index, len(data.items), timeout_s)
        index.close()

        received: list[tuple[Received, float]] = []
        stop = threading.Event()
        consumer = RecommendationConsumer(s, start="beginning")

        def consume() -> None:
            while not stop.is_set():
                got = consumer.poll(0.2)
                if got is not None:
                    received.append((got, time.time()))

        reader = threading.Thread(target=consume, name="recommendation-reader", daemon=True)
        reader.start()
        try:
            with Publisher(s) as pub:
                start = time.monotonic()
                for n, event in enumerate(tqdm(data.events, desc="publish interactions", unit="event"), 1):
                    # Stamp at send time: the latency measured is event -> recommendation on the topic.
                    pub.publish_interaction(event.model_copy(update={"timestamp": datetime.now(UTC)}))
                    delay = start + n / cfg.rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
            deadline = time.monotonic() + timeout_s
            with tqdm(total=len(data.events), desc="recommendations", unit="list") as bar:
                while len(received) < len(data.events) and time.monotonic() < deadline:
                    bar.update(len(received) - bar.n)
                    time.sleep(0.1)
                bar.update(len(received) - bar.n)
        finally:
            stop.set()
            reader.join()
            consumer.close()
    return measure(data, received)


def _wait_indexed(index: object, n: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with tqdm(total=n, desc="encode + index", unit="item") as bar:
        while True:
            count = index.count()  # type: ignore[attr-defined]
            bar.update(count - bar.n)
            if count >= n:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {count}/{n} items indexed after {timeout_s} s; see the encoder worker log")
            time.sleep(0.5)
