"""Search requests against a profile worker on the embedded default: latency by kind of query, one
client at a time and under concurrent clients.

    .venv/bin/python bench/search.py [--items 10000] [--pictures 24] [--users 500] [--requests 300]
                                     [--clients 4] [--seconds 15] [--out bench/out/search]

Starts the embedded stack (Tansu, served milvus-lite, encoder and profile worker; text and image
modalities), publishes ``--items`` text items and ``--pictures`` picture items, gives ``--users``
users five interactions each, then asks the worker's ``/search`` over HTTP: ``--requests`` of each
kind one after another (words; words for a user; "more like this" for a user; a picture upload for a
user), then words for a user from ``--clients`` concurrent clients for ``--seconds``. Every query's
words are new (none is answered from the query-vector cache), so each request runs the text model.
Latency is measured at the client, from request to parsed answer. Writes ``search.json`` and
``search.png`` (latency percentiles by kind) under ``--out``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).parent))
from stream import WORDS, pct, publish_catalogue

from fusionrec.schemas import Interaction, Item, MediaKind, MediaRef, SearchResults
from fusionrec.streams import EmbeddedStack, Publisher, Settings
from fusionrec.streams.embedded.processes import free_port
from fusionrec.testing.media import other_photo, photo

VOCAB = sorted({w for phrase in WORDS for w in phrase.split()} | {"red", "blue", "vintage", "new", "small", "cheap",
                                                                    "classic", "modern", "kids", "travel"})


def pictures(count: int, folder: Path) -> list[tuple[Path, bytes]]:
    """``count`` JPEGs: crops and tints of two real photographs."""
    from PIL import Image, ImageEnhance

    rng = np.random.default_rng(1)
    sources = [Image.open(io.BytesIO(photo())).convert("RGB"), Image.open(io.BytesIO(other_photo())).convert("RGB")]
    out = []
    for n in range(count):
        img = sources[n % 2]
        w, h = img.size
        x, y = rng.uniform(0, 0.3, 2)
        part = img.crop((int(x * w), int(y * h), int((x + 0.7) * w), int((y + 0.7) * h))).resize((160, 160))
        part = ImageEnhance.Color(part).enhance(float(rng.uniform(0.3, 1.7)))
        buf = io.BytesIO()
        part.save(buf, "JPEG", quality=85)
        path = folder / f"picture-{n}.jpg"
        path.write_bytes(buf.getvalue())
        out.append((path, buf.getvalue()))
    return out


def words(rng: np.random.Generator, n: int) -> str:
    """Words never asked before: a few from the vocabulary and a number."""
    return " ".join(rng.choice(VOCAB, size=int(rng.integers(2, 4)), replace=False)) + f" {n}"


def timed(client: httpx.Client, method: str, params: dict, body: bytes | None = None) -> float:
    started = time.perf_counter()
    resp = client.request(method, "/search", params=params, content=body)
    if resp.status_code != 200:
        raise RuntimeError(f"/search answered {resp.status_code}: {resp.text[:200]}")
    SearchResults.model_validate_json(resp.content)
    return (time.perf_counter() - started) * 1000


def summary(latencies: list[float]) -> dict:
    return {"n": len(latencies), "p50_ms": pct(latencies, 50), "p95_ms": pct(latencies, 95),
            "p99_ms": pct(latencies, 99), "max_ms": max(latencies)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--pictures", type=int, default=24)
    ap.add_argument("--users", type=int, default=500)
    ap.add_argument("--requests", type=int, default=300, help="requests of each kind, one after another")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--out", type=Path, default=Path("bench/out/search"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.out.mkdir(parents=True, exist_ok=True)
    media = args.out / "media"
    media.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    settings = Settings(data_dir=args.out / "data", web_port=free_port(), partitions=4, modalities=["text", "image"],
                        media_root=media.resolve())
    result: dict = {"items": args.items, "pictures": args.pictures, "users": args.users, "cpus": os.cpu_count(),
                    "kinds": {}}
    with EmbeddedStack(settings) as stack:
        s = stack.settings
        shots = pictures(args.pictures, media.resolve())
        items = [Item(id=f"it{n}", title=f"{WORDS[n % len(WORDS)]} number {n}", category=WORDS[n % len(WORDS)])
                 for n in range(args.items)]
        items += [Item(id=f"pic{n}", title=f"picture {n}", category="pictures",
                       media={MediaKind.IMAGE: MediaRef(uri=path.as_uri())}) for n, (path, _) in enumerate(shots)]
        result["catalogue_s"] = publish_catalogue(s, items)
        users = [f"u{n}" for n in range(args.users)]
        now = datetime.now(UTC)
        with Publisher(s) as pub:
            pub.publish_many(Interaction(event_id=uuid.uuid4().hex, user_id=u, item_id=f"it{rng.integers(args.items)}",
                                         type="view", timestamp=now) for u in users for _ in range(5))
        client = httpx.Client(base_url=s.worker_url, timeout=30)
        # Until every profile is in: the last user's five events answered.
        deadline = time.monotonic() + 120
        while client.get(f"/profile/{users[-1]}/").json()["n_events"] < 5:
            if time.monotonic() > deadline:
                raise TimeoutError("the profiles were not built in time")
            time.sleep(0.5)
        kinds = {
            "words": lambda n: ("GET", {"q": words(rng, n)}, None),
            "words, for a user": lambda n: ("GET", {"q": words(rng, n), "user": users[n % len(users)]}, None),
            "more like this, for a user": lambda n: ("GET", {"like": f"it{rng.integers(args.items)}",
                                                            "user": users[n % len(users)]}, None),
            "picture upload, for a user": lambda n: ("POST", {"user": users[n % len(users)]}, shots[n % len(shots)][1]),
        }
        for kind, make in kinds.items():
            for n in range(10):  # warm-up: models load at the first query of their kind
                timed(client, *make(n))
            latencies = [timed(client, *make(n)) for n in tqdm(range(args.requests), desc=kind, unit="request")]
            result["kinds"][kind] = summary(latencies)
        result["concurrent"] = concurrent(s.worker_url, args, users)
        client.close()
    write(args, result)


def concurrent(url: str, args: argparse.Namespace, users: list[str]) -> dict:
    """Words for a user from ``args.clients`` clients at once, for ``args.seconds``."""
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + args.seconds

    def run(seed: int) -> None:
        rng = np.random.default_rng(100 + seed)
        with httpx.Client(base_url=url, timeout=30) as client:
            n = 0
            while time.monotonic() < stop:
                took = timed(client, "GET", {"q": words(rng, 10_000 * seed + n), "user": users[n % len(users)]})
                with lock:
                    latencies.append(took)
                n += 1

    threads = [threading.Thread(target=run, args=(c,)) for c in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {**summary(latencies), "clients": args.clients, "requests_per_s": len(latencies) / args.seconds}


def write(args: argparse.Namespace, result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (args.out / "search.json").write_text(json.dumps(result, indent=1))
    rows = {**result["kinds"], f"words, for a user, {result['concurrent']['clients']} clients": result["concurrent"]}
    fig, ax = plt.subplots(figsize=(9, 4))
    ys = np.arange(len(rows))
    for q, colour in (("p50_ms", "tab:blue"), ("p95_ms", "tab:orange"), ("p99_ms", "tab:red")):
        ax.scatter([r[q] for r in rows.values()], ys, color=colour, label=q.split("_")[0], zorder=3)
    ax.set_yticks(ys, list(rows))
    ax.set_xlabel("request -> answer at the client (ms)")
    ax.grid(axis="x", linewidth=0.3)
    ax.legend()
    ax.set_title(f"bench/search.py: {result['items']:,} items, {result['users']} users, {result['cpus']} CPUs, "
                 "embedded default")
    fig.tight_layout()
    fig.savefig(args.out / "search.png", dpi=110)
    print(f"{'kind':42} {'n':>5} {'p50':>7} {'p95':>7} {'p99':>7}")
    for kind, r in rows.items():
        print(f"{kind:42} {r['n']:5d} {r['p50_ms']:6.1f}  {r['p95_ms']:6.1f}  {r['p99_ms']:6.1f}  ms")
    print(f"concurrent: {result['concurrent']['requests_per_s']:.0f} requests/s; "
          f"catalogue encoded in {result['catalogue_s']:.0f} s")
    print(f"wrote {args.out / 'search.json'} and {args.out / 'search.png'}")


if __name__ == "__main__":
    main()
