"""Soak: a steady mixed load on the embedded default for a long time; does memory level off?

    .venv/bin/python bench/soak.py [--minutes 30] [--rate 8] [--out bench/out/soak]

Starts the embedded stack (Tansu, served milvus-lite, encoder and profile workers, real MiniLM),
publishes a catalogue, then for ``--minutes`` sends interactions at ``--rate`` per second from a
rotating population of users, a new item every two seconds and one malformed record in a hundred
(each must come back as a dead letter). Every ``--sample`` seconds it records each process's
resident memory (from /proc), the profile group's consumer lag, and the event->list latency of the
lists that arrived since the last sample. Writes ``soak.json`` and ``soak.png`` (RSS, lag and
latency over time) and prints, per process, RSS at the end of warm-up and at the end, and the
slope of a line fitted to the RSS after warm-up (MB per hour): memory has levelled off when that
slope is small next to the process's size.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from confluent_kafka import Producer
from tqdm import tqdm

from fusionrec.schemas import Interaction, Item
from fusionrec.streams import EmbeddedStack, Publisher, RecommendationConsumer, Settings, kafka_config, open_index
from fusionrec.streams.embedded.processes import free_port
from fusionrec.streams.ops.deadletters import read_dead_letters
from fusionrec.streams.ops.status import collect

WORDS = ["jazz trumpet", "mountain bike", "sourdough bread", "chess set", "garden roses", "space opera",
         "football boots", "tax planning", "ghost story", "hiking boots"]


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def processes(stack: EmbeddedStack) -> dict[str, int]:
    """The stack's processes by name (workers looked up each time: a restarted one has a new PID)."""
    out = {"bench (this process)": os.getpid()}
    if stack.broker and stack.broker.process:
        out["tansu broker"] = stack.broker.process.pid
    if stack.milvus and stack.milvus.process:
        out["milvus-lite"] = stack.milvus.process.pid
    for w in stack.workers:
        if w.process:
            out[f"worker {w.role}"] = w.process.pid
    return out


def slope_mb_per_h(t_s: list[float], mb: list[float]) -> float:
    ok = [(t, m) for t, m in zip(t_s, mb, strict=True) if m == m]
    if len(ok) < 3:
        return float("nan")
    t, m = np.array(ok).T
    return float(np.polyfit(t / 3600, m, 1)[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=8.0, help="interactions per second")
    ap.add_argument("--items", type=int, default=400, help="catalogue published before the load")
    ap.add_argument("--users", type=int, default=2000, help="user population the load rotates through")
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=0.2, help="share of the run left out of the RSS slope")
    ap.add_argument("--out", type=Path, default=Path("bench/out/soak"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.out.mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=args.out / "data", modalities=["text"], web_port=free_port())
    rng = np.random.default_rng(0)
    with EmbeddedStack(settings) as stack:
        s = stack.settings
        items = [Item(id=f"soak-{n}", title=f"{WORDS[n % len(WORDS)]} {n}", category=WORDS[n % len(WORDS)])
                 for n in range(args.items)]
        with Publisher(s) as pub:
            pub.publish_many(items)
        index = open_index(s.require_milvus_uri(), s.collection)
        while index.count() < len(items):
            time.sleep(0.5)
        index.close()

        latencies: list[float] = []
        lock, stop = threading.Lock(), threading.Event()
        consumer = RecommendationConsumer(s, start="end")

        def read_lists() -> None:
            while not stop.is_set():
                got = consumer.poll(0.2)
                if got is not None and got.recommendation.trigger_timestamp is not None:
                    with lock:
                        latencies.append(time.time() - got.recommendation.trigger_timestamp.timestamp())

        reader = threading.Thread(target=read_lists, daemon=True)
        reader.start()
        samples: list[dict] = []
        sent = {"interactions": 0, "items": 0, "bad": 0}
        duration = args.minutes * 60
        start = time.monotonic()
        next_sample = start
        raw = Producer({**kafka_config(s), "partitioner": "murmur2_random"})
        with Publisher(s) as pub, tqdm(total=int(duration), desc="soak", unit="s") as bar:
            n = 0
            while (now := time.monotonic()) - start < duration:
                user = f"soak-user-{int(rng.integers(args.users))}"
                liked = WORDS[hash(user) % len(WORDS)]
                pick = int(rng.integers(len(items)))
                if rng.random() < 0.8:
                    pick = (pick // len(WORDS)) * len(WORDS) + WORDS.index(liked)
                pub.publish_interaction(Interaction(
                    event_id=uuid.uuid4().hex, user_id=user, item_id=items[min(pick, len(items) - 1)].id,
                    type="view", timestamp=datetime.now(UTC)))
                sent["interactions"] += 1
                if n % int(2 * args.rate) == 0:
                    item = Item(id=f"soak-new-{n}", title=f"{liked} new arrival {n}", category=liked)
                    items.append(item)
                    pub.publish_item(item)
                    sent["items"] += 1
                if n % 100 == 50:
                    raw.produce(s.interactions_topic, key=user.encode(), value=b'{"event_id": ')
                    raw.poll(0)
                    sent["bad"] += 1
                n += 1
                if now >= next_sample:
                    next_sample += args.sample
                    report = collect(s, interval_s=0.5)
                    lag = sum(r.lag for r in report.lag if r.topic == s.interactions_topic)
                    with lock:
                        window, latencies[:] = list(latencies), []
                    q = statistics.quantiles(window, n=20) if len(window) >= 2 else [float("nan")] * 19
                    samples.append({
                        "t_s": now - start, "rss_mb": {k: rss_mb(p) for k, p in processes(stack).items()},
                        "lag": lag, "lists": len(window),
                        "p50_ms": 1000 * (statistics.median(window) if window else float("nan")),
                        "p95_ms": 1000 * q[18], "restarts": sum(w.restarts for w in stack.workers),
                    })
                    stack.keep_alive()
                bar.update(int(now - start) - bar.n)
                time.sleep(max(0.0, start + n / args.rate - time.monotonic()))
        raw.flush(10)
        raw.close()
        stop.set()
        reader.join()
        consumer.close()
        letters = sum(1 for d in read_dead_letters(s, idle_s=2.0) if d.error_code.value == "malformed_json")
    write(args, samples, sent, letters)


def write(args: argparse.Namespace, samples: list[dict], sent: dict[str, int], letters: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(samples[0]["rss_mb"])
    t = [x["t_s"] for x in samples]
    warm = args.warmup * t[-1]
    summary = {}
    for name in names:
        mb = [x["rss_mb"].get(name, float("nan")) for x in samples]
        after = [(ti, m) for ti, m in zip(t, mb, strict=True) if ti >= warm]
        summary[name] = {"rss_after_warmup_mb": after[0][1], "rss_end_mb": after[-1][1], "max_mb": max(m for _, m in after),
                         "slope_mb_per_h": slope_mb_per_h([a for a, _ in after], [b for _, b in after])}
    result = {"minutes": args.minutes, "rate": args.rate, "sent": sent, "dead_letters_malformed": letters,
              "restarts": samples[-1]["restarts"], "summary": summary, "samples": samples}
    (args.out / "soak.json").write_text(json.dumps(result, indent=1))
    fig, axes = plt.subplots(3, 1, figsize=(10, 10), sharex=True)
    minutes = [x / 60 for x in t]
    for name in names:
        axes[0].plot(minutes, [x["rss_mb"].get(name, float("nan")) for x in samples], label=name)
    axes[0].axvline(warm / 60, color="grey", linestyle=":", label="end of warm-up")
    axes[0].set_ylabel("resident memory (MB)")
    axes[0].legend(fontsize=8, loc="upper left")
    axes[1].plot(minutes, [x["lag"] for x in samples], color="tab:red")
    axes[1].set_ylabel("profile group lag (events)")
    axes[2].plot(minutes, [x["p50_ms"] for x in samples], label="p50")
    axes[2].plot(minutes, [x["p95_ms"] for x in samples], label="p95")
    axes[2].set_ylabel("event -> list (ms)")
    axes[2].set_yscale("log")
    axes[2].legend(fontsize=8)
    axes[2].set_xlabel("minutes")
    fig.suptitle(f"soak: {args.rate:g} interactions/s for {args.minutes:g} min on the embedded default")
    fig.tight_layout()
    fig.savefig(args.out / "soak.png", dpi=110)
    print(f"soak {args.minutes:g} min at {args.rate:g} interactions/s: sent {sent}; malformed dead letters {letters}; "
          f"worker restarts {result['restarts']}; final lag {samples[-1]['lag']}")
    lat = [x for x in samples if x["lists"]]
    if lat:
        print(f"event->list p50 median over samples {statistics.median(x['p50_ms'] for x in lat):.0f} ms, "
              f"worst sample p95 {np.nanmax([x['p95_ms'] for x in lat]):.0f} ms")
    print(f"{'process':24} {'after warm-up MB':>16} {'end MB':>8} {'max MB':>8} {'slope MB/h':>11}")
    for name, v in summary.items():
        print(f"{name:24} {v['rss_after_warmup_mb']:16.0f} {v['rss_end_mb']:8.0f} {v['max_mb']:8.0f} "
              f"{v['slope_mb_per_h']:11.1f}")
    print(f"wrote {args.out / 'soak.json'} and {args.out / 'soak.png'}")


if __name__ == "__main__":
    main()
