"""Per-event cost of the profile path (learn + retrieve + rank) when every search goes to a served
milvus-lite (``FUSIONREC_INDEX_REPLICA=false``), next to the raw Milvus calls it makes, in the same
run. The embedded default searches an in-process copy instead: bench/stream.py measures that.

    .venv/bin/python bench/recommend.py [--items 2000] [--events 200]

Prints p50/p95 per event for the full `Recommender.handle` and for its raw index calls alone
(one `get`, one multi-vector search), and the ratio: how much the pure logic adds on top of Milvus.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fusionrec.agents.engine import Recommender, Views
from fusionrec.agents.profile import ProfileModel, ProfileState
from fusionrec.schemas import Interaction
from fusionrec.streams.embedded.processes import MilvusLiteServer, free_port
from fusionrec.streams.index import ItemVector, open_index


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--dim", type=int, default=384)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    # Items in 8 clusters, users who stick to two of them: the shape of a real catalogue.
    centres = rng.standard_normal((8, args.dim)).astype(np.float32)
    labels = rng.integers(0, 8, args.items)
    vectors = centres[labels] + 0.6 * rng.standard_normal((args.items, args.dim)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        server = MilvusLiteServer(free_port(), Path(tmp) / "milvus", log_path=Path(tmp) / "milvus.log")
        server.start()
        try:
            index = open_index(server.uri, "bench")
            index.ensure_collection(args.dim)
            for start in range(0, args.items, 500):
                index.upsert([ItemVector(f"i{n}", vectors[n], "bench") for n in range(start, min(start + 500, args.items))])
            rec = Recommender(index, ProfileModel(), views=Views(), top_k=10, max_candidates=500, max_event_bytes=2**20)
            states = {u: ProfileState() for u in range(20)}
            tastes = {u: rng.choice(8, 2, replace=False) for u in states}
            full, raw = [], []
            for n in tqdm(range(args.events), desc="events", unit="event"):
                user = n % len(states)
                item = int(rng.choice(np.flatnonzero(np.isin(labels, tastes[user]))))
                ev = Interaction(event_id=f"e{n}", user_id=str(user), item_id=f"i{item}", type="like",
                                 timestamp=datetime.now(UTC))
                t = time.perf_counter()
                updated, _ = rec.handle_many([ev], {str(user): states[user]})
                states[user] = updated[str(user)]
                full.append((time.perf_counter() - t) * 1000)
                queries = [q[1] for q in states[user].queries()]
                t = time.perf_counter()
                index.get([f"i{item}"])
                index.search_many(queries, 50 + len(states[user].seen))
                raw.append((time.perf_counter() - t) * 1000)
            index.close()
        finally:
            server.stop()
    f50, r50 = statistics.median(full), statistics.median(raw)
    print(f"items {args.items} x {args.dim}, events {args.events} (milvus-lite served on loopback)")
    print(f"recommend (learn+retrieve+rank): p50 {f50:.1f} ms, p95 {pct(full, 95):.1f} ms")
    print(f"raw index calls alone:           p50 {r50:.1f} ms, p95 {pct(raw, 95):.1f} ms")
    print(f"ratio full/raw p50: {f50 / r50:.2f}x  (capacity of one profile worker ~{1000 / f50:.0f} events/s)")


if __name__ == "__main__":
    main()
