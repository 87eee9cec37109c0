"""End to end through the real broker on the embedded default: how many interactions per second one
(and two) profile workers answer, and how fast, next to a Faust agent that only passes events on.

    .venv/bin/python bench/stream.py [--items 10000] [--users 5000] [--rates 50,100,200,300,400,500,1000,2000]
                                     [--seconds 10] [--width text|multimodal] [--out bench/out/stream]

Starts the embedded stack (Tansu, served milvus-lite, encoder and profile worker, 4 partitions),
publishes the catalogue (text items encoded by MiniLM, or with ``--width multimodal`` ready-made
3,362-d vectors: the width of text+image+audio+video fused), then offers interactions at each rate
for ``--seconds`` and reads the lists back with a plain consumer. Per rate: the rate achieved (lists
per second over the step), the share of events answered, event->list latency p50/p95/p99 (from
each list's ``trigger_timestamp``) and the CPU of every process (% of one core). A step is
*sustained* when at least 95% of its offered rate came back as lists with every event answered;
the ramp stops after the first step that is not. Scenarios, in one run on one broker:

1. one profile worker, every list emitted (no coalescing): the headline;
2. the Faust passthrough (bench/passthrough.py) on its own topics: the ceiling, and the ratio;
3. two profile workers (two partitions each);
4. one profile worker with the default emission policy (``--skip-default-policy`` leaves it out):
   it coalesces a user's burst into one list, so its throughput is the events the worker handled
   (its /metrics page) rather than the lists.

Writes ``stream.json`` and ``stream.png`` (latency percentiles against offered rate, the
passthrough's sustained rate marked) under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
from confluent_kafka import Consumer, Producer, TopicPartition
from tqdm import tqdm

from fusionrec.schemas import Item
from fusionrec.streams import EmbeddedStack, Publisher, Settings, kafka_config, open_index
from fusionrec.streams.embedded.processes import WorkerProcess, free_port, stop_process
from fusionrec.streams.kafka.topics import TopicSpec, create_topics

WORDS = ["jazz trumpet", "mountain bike", "sourdough bread", "chess set", "garden roses", "space opera",
         "football boots", "tax planning", "ghost story", "hiking boots", "vinyl records", "yoga mat"]
MULTIMODAL_DIM = 3362
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError):
        return float("nan")


def pct(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


@dataclass
class Reader:
    """Reads a topic from its end in a thread: when each event id came back, and its latency."""

    settings: Settings
    topic: str
    id_field: str
    ts_field: str
    seen: dict[str, tuple[float, float]] = field(default_factory=dict)  # event id -> (received at, latency s)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self.consumer = Consumer({**kafka_config(self.settings, consumer=True), "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                                  "enable.auto.commit": False, "auto.offset.reset": "latest"})
        meta = self.consumer.list_topics(self.topic, timeout=10).topics[self.topic]
        ends = {p: self.consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)[1] for p in meta.partitions}
        self.consumer.assign([TopicPartition(self.topic, p, max(0, o)) for p, o in ends.items()])
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in self.consumer.consume(500, timeout=0.1):
                if msg.error() is not None:
                    continue
                now = time.time()
                doc = json.loads(msg.value())
                event_id, ts = doc.get(self.id_field), doc.get(self.ts_field)
                if event_id and ts:
                    self.seen.setdefault(event_id, (now, now - datetime.fromisoformat(ts).timestamp()))

    def close(self) -> None:
        self._stop.set()
        self.thread.join()
        self.consumer.close()


def interaction(event_id: str, user: str, item: str) -> bytes:
    ts = datetime.now(UTC).isoformat()
    return (f'{{"event_id":"{event_id}","user_id":"{user}","item_id":"{item}","type":"view",'
            f'"timestamp":"{ts}"}}').encode()


def step(settings: Settings, topic: str, reader: Reader, rate: float, seconds: float, users: int, items: int,
         pids: dict[str, int], rng: np.random.Generator, drain_s: float, count: Callable[[], float] | None) -> dict:
    """Offer ``rate`` events/s on ``topic`` for ``seconds``; what came back and what it cost.

    With ``count`` (events the workers handled, for an emission policy that coalesces lists, so
    not every event gets its own), throughput and the share handled come from it instead of the lists.
    """
    before = count() if count else 0.0
    producer = Producer({**kafka_config(settings), "partitioner": "murmur2_random", "linger.ms": 5})
    sent: list[str] = []
    cpu0 = {k: cpu_s(p) for k, p in pids.items()}
    start = time.monotonic()
    t0 = time.time()
    n = 0
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * rate) + 1
        while n < due:
            user = int(rng.integers(users))
            taste = user % len(WORDS)
            pick = int(rng.integers(items // len(WORDS))) * len(WORDS) + taste if rng.random() < 0.8 else int(rng.integers(items))
            event_id = f"b{uuid.uuid4().hex[:12]}"
            producer.produce(topic, key=f"u{user}".encode(), value=interaction(event_id, f"u{user}", f"it{min(pick, items - 1)}"))
            sent.append(event_id)
            n += 1
        producer.poll(0)
        time.sleep(0.002)
    producer.flush(30)
    end_send = time.time()
    at_end = count() if count else 0.0
    deadline = time.monotonic() + drain_s
    while time.monotonic() < deadline and (count() - before if count else sum(1 for e in sent if e in reader.seen)) < len(sent):
        time.sleep(0.05)
    wall = time.monotonic() - start
    cpu = {k: 100 * (cpu_s(p) - cpu0[k]) / wall for k, p in pids.items()}
    got = [reader.seen[e] for e in sent if e in reader.seen]
    latencies = [lat * 1000 for _, lat in got]
    # Lists per second while the load was offered: answers received from the first send to the last
    # send plus the p50 latency (what the stream keeps up with; a backlog shows as a lower rate).
    window_end = end_send + (statistics.median(latencies) / 1000 if latencies else 0.0)
    achieved = sum(1 for at, _ in got if at <= window_end) / max(1e-9, window_end - t0)
    answered = len(got) / len(sent)
    if count:
        answered = (count() - before) / len(sent)
        achieved = (at_end - before) / max(1e-9, end_send - t0)
    return {"offered": rate, "sent": len(sent), "achieved": achieved, "answered": answered, "lists": len(got),
            "p50_ms": pct(latencies, 50), "p95_ms": pct(latencies, 95), "p99_ms": pct(latencies, 99),
            "cpu_pct": cpu, "sustained": answered >= 1.0 and achieved >= 0.95 * rate}


def ramp(name: str, settings: Settings, topic: str, reader: Reader, args: argparse.Namespace, pids: dict[str, int],
         rng: np.random.Generator, count: Callable[[], float] | None = None) -> dict:
    steps = []
    for rate in tqdm(args.rates, desc=name, unit="rate"):
        s = step(settings, topic, reader, rate, args.seconds, args.users, args.items, pids, rng, args.drain, count)
        steps.append(s)
        tqdm.write(f"  {name}: offered {rate:6.0f}/s achieved {s['achieved']:7.1f}/s answered {100 * s['answered']:5.1f}% "
                   f"p50 {s['p50_ms']:7.1f} p95 {s['p95_ms']:7.1f} p99 {s['p99_ms']:7.1f} ms  cpu "
                   + ", ".join(f"{k} {v:.0f}%" for k, v in s["cpu_pct"].items()))
        if not s["sustained"]:
            break
    ok = [s for s in steps if s["sustained"]]
    return {"steps": steps, "sustained": max((s["offered"] for s in ok), default=0.0),
            "capacity": max(s["achieved"] for s in steps)}


def catalogue(args: argparse.Namespace, rng: np.random.Generator) -> list[Item]:
    if args.width == "text":
        return [Item(id=f"it{n}", title=f"{WORDS[n % len(WORDS)]} number {n}", category=WORDS[n % len(WORDS)])
                for n in range(args.items)]
    centres = rng.standard_normal((len(WORDS), MULTIMODAL_DIM)).astype(np.float32)
    out = []
    for n in range(args.items):
        v = centres[n % len(WORDS)] + rng.standard_normal(MULTIMODAL_DIM).astype(np.float32)
        out.append(Item(id=f"it{n}", category=WORDS[n % len(WORDS)],
                        vectors={"fused": [round(float(x), 3) for x in v / np.linalg.norm(v)]}))
    return out


def publish_catalogue(settings: Settings, items: list[Item]) -> float:
    """Publish ``items`` and wait until the encoder worker has stored them all; the seconds it took."""
    started = time.monotonic()
    with Publisher(settings) as pub:
        pub.publish_many(items)
    index = open_index(settings.require_milvus_uri(), settings.collection)
    with tqdm(total=len(items), desc="encoding the catalogue", unit="item") as bar:
        while (n := index.count()) < len(items):
            bar.update(n - bar.n)
            time.sleep(1.0)
        bar.update(n - bar.n)
    index.close()
    return time.monotonic() - started


def processes(stack: EmbeddedStack, extra: dict[str, int]) -> dict[str, int]:
    out = {"bench": os.getpid()}
    if stack.broker and stack.broker.process:
        out["tansu"] = stack.broker.process.pid
    if stack.milvus and stack.milvus.process:
        out["milvus-lite"] = stack.milvus.process.pid
    profiles = 0
    for w in stack.workers:
        if w.process:
            profiles += w.role == "profiles"
            out[w.role if w.role != "profiles" or profiles == 1 else f"profiles {profiles}"] = w.process.pid
    return {**out, **extra}


def restart_profiles(stack: EmbeddedStack, settings: Settings, count: int) -> list[str]:
    """Replace the stack's profile workers by ``count`` of them running ``settings``; their URLs."""
    for w in [w for w in stack.workers if w.role == "profiles"]:
        w.stop()
        stack.workers.remove(w)
    urls, fresh = [], []
    for n in range(count):
        own = settings.model_copy(update={"web_port": free_port()})
        w = WorkerProcess("profiles", own.to_env(), log_path=stack.log_dir / f"worker-profiles-{n}-{uuid.uuid4().hex[:4]}.log")
        stack.workers.append(w)  # stopped with the stack whatever happens next
        w.start()
        fresh.append(w)
        urls.append(own.worker_url)
    for w in fresh:
        w.wait_ready()
    time.sleep(5)  # let the group settle: a rebalance mid-step would show as latency
    return urls


def settle(urls: list[str], timeout_s: float = 180.0) -> None:
    """Wait until the profile workers have nothing left to read (a previous overload's backlog)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lag = sum(float(line.rsplit(" ", 1)[1]) for url in urls
                  for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines()
                  if line.startswith("fusionrec_consumer_lag_records{"))
        if lag == 0:
            return
        time.sleep(1.0)
    raise TimeoutError(f"the profile workers still have a backlog after {timeout_s:.0f} s")


def handled(urls: list[str]) -> float:
    """Events the profile workers have handled (every outcome but a redelivery), from their /metrics pages."""
    total = 0.0
    for url in urls:
        for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
            # Redeliveries after a restart are recognised, not handled again: they do not count.
            if line.startswith("fusionrec_events_total{") and 'outcome="duplicate"' not in line:
                total += float(line.rsplit(" ", 1)[1])
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--users", type=int, default=5_000)
    ap.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")], default=[50, 100, 200, 300, 400, 500, 1000, 2000])
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each rate step")
    ap.add_argument("--drain", type=float, default=10.0, help="longest wait for the last answers after a step")
    ap.add_argument("--width", choices=["text", "multimodal"], default="text")
    ap.add_argument("--skip-two-workers", action="store_true")
    ap.add_argument("--skip-default-policy", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("bench/out/stream"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    every = {"emit_min_interval_s": 0.0, "emit_only_changed": False}
    base = Settings(data_dir=args.out / f"data-{args.width}", web_port=free_port(), partitions=4,
                    modalities=["text"], **every,
                    **({"vector_dims": {"fused": MULTIMODAL_DIM}} if args.width == "multimodal" else {}))
    result: dict = {"items": args.items, "users": args.users, "width": args.width, "seconds": args.seconds,
                    "cpus": os.cpu_count(), "scenarios": {}}
    with EmbeddedStack(base) as stack:
        s = stack.settings
        result["catalogue_s"] = publish_catalogue(s, catalogue(args, rng))
        reader = Reader(s, s.recommendations_topic, "trigger_event_id", "trigger_timestamp")
        try:
            warm = {**vars(args), "rates": [50.0], "seconds": 4.0}
            ramp("warm-up", s, s.interactions_topic, reader, argparse.Namespace(**warm), processes(stack, {}), rng)
            result["scenarios"]["one worker, every list"] = ramp(
                "one worker", s, s.interactions_topic, reader, args, processes(stack, {}), rng)
        finally:
            reader.close()

        source, sink = f"bench.passthrough-in-{uuid.uuid4().hex[:6]}", f"bench.passthrough-out-{uuid.uuid4().hex[:6]}"
        create_topics(kafka_config(s), [TopicSpec(source, s.partitions), TopicSpec(sink, s.partitions)])
        log = (stack.log_dir / "passthrough.log").open("wb")
        passthrough = subprocess.Popen([sys.executable, str(Path(__file__).with_name("passthrough.py")), source, sink],
                                       env={**os.environ, **s.to_env()}, stdout=log, stderr=subprocess.STDOUT)
        reader = Reader(s, sink, "event_id", "timestamp")
        try:
            time.sleep(8)  # joins its group
            pids = processes(stack, {"passthrough": passthrough.pid})
            ramp("warm-up", s, source, reader, argparse.Namespace(**{**vars(args), "rates": [50.0], "seconds": 4.0}),
                 pids, rng)
            result["scenarios"]["faust passthrough"] = ramp("passthrough", s, source, reader, args, pids, rng)
        finally:
            reader.close()
            stop_process(passthrough, "passthrough")
            log.close()

        runs = [] if args.skip_two_workers else [("two workers, every list", 2, s, False)]
        if not args.skip_default_policy:
            defaults = Settings.model_fields
            runs.append(("one worker, default emission", 1, s.model_copy(update={
                k: defaults[k].default for k in every}), True))
        for name, workers, settings, coalesced in runs:
            urls = restart_profiles(stack, settings, workers)
            settle(urls)
            reader = Reader(s, s.recommendations_topic, "trigger_event_id", "trigger_timestamp")
            try:
                result["scenarios"][name] = ramp(name, s, s.interactions_topic, reader, args, processes(stack, {}), rng,
                                                 (lambda u=urls: handled(u)) if coalesced else None)
            finally:
                reader.close()
    write(args, result)


def write(args: argparse.Namespace, result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scen = result["scenarios"]
    ceiling = scen.get("faust passthrough", {}).get("sustained", 0.0)
    for r in scen.values():
        r["ratio_to_passthrough"] = r["sustained"] / ceiling if ceiling else None
    (args.out / "stream.json").write_text(json.dumps(result, indent=1))
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for (name, r), colour in zip(scen.items(), ["tab:blue", "tab:grey", "tab:green", "tab:orange"], strict=False):
        offered = [x["offered"] for x in r["steps"]]
        style = "--" if name == "faust passthrough" else "-"
        for q, marker in (("p50_ms", "o"), ("p99_ms", "^")):
            axes[0].plot(offered, [x[q] for x in r["steps"]], style, marker=marker, color=colour,
                         label=f"{name} {q.split('_')[0]}")
        axes[1].plot(offered, [x["achieved"] for x in r["steps"]], style, marker="o", color=colour, label=name)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("offered interactions/s")
        if ceiling:
            ax.axvline(ceiling, color="black", linestyle=":", label=f"passthrough sustains {ceiling:.0f}/s")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("event -> list latency (ms)")
    axes[0].axhline(150, color="red", linestyle=":", label="150 ms")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("achieved lists/s")
    lim = max(max(x["offered"] for x in r["steps"]) for r in scen.values())
    axes[1].plot([10, lim], [10, lim], color="lightgrey", linewidth=1)
    for ax in axes:
        ax.legend(fontsize=7)
    fig.suptitle(f"bench/stream.py: {result['items']:,} {result['width']} items, {result['users']:,} users, "
                 f"{result['cpus']} CPUs, embedded default")
    fig.tight_layout()
    fig.savefig(args.out / "stream.png", dpi=110)
    print(f"{'scenario':32} {'sustained/s':>11} {'capacity/s':>10} {'vs passthrough':>14}  p99 at sustained")
    for name, r in scen.items():
        at = [x for x in r["steps"] if x["offered"] == r["sustained"]]
        ratio = f"{r['ratio_to_passthrough']:.2f}x" if r["ratio_to_passthrough"] is not None else "-"
        print(f"{name:32} {r['sustained']:11.0f} {r['capacity']:10.0f} {ratio:>14}  "
              f"{at[0]['p99_ms'] if at else float('nan'):.0f} ms")
    print(f"wrote {args.out / 'stream.json'} and {args.out / 'stream.png'}")


if __name__ == "__main__":
    main()
