"""Encoding throughput per modality and for the full multimodal item, next to the raw model calls
on the same inputs and batch size, in the same run.

    .venv/bin/python bench/encode.py [--items 256] [--batch 64] [--device auto] [--threads 8] [--workers 1]

"pipeline" is the encoder worker's own path without the broker: `ItemEncoder.decode` (JSON and
validation), media decoding and preparation on the thread pool, the encoder calls, fusion, and the
upsert into an in-memory index. "raw" is the model calls alone, on the same inputs already decoded
and prepared, in the same call sizes: the worker splits each micro-batch into about four model calls
so that decoding the next part overlaps the models (`agents/encode_items.chunk_size`). Raw text is
`SentenceTransformer.encode` itself; raw image, audio and video are the encoders' `encode` on
prepared arrays (the backbone's forward pass, the batched librosa features, frames through the
backbone plus the track's features). After a warm-up pass of each, pipeline and raw passes
alternate (--repeat) and the best of each counts; the ratio is pipeline/raw throughput.

Each row also gives the CPU time (every thread of every worker) per item: of the pipeline and raw
passes, and of "decoding" passes that only fetch, decode and prepare the media (`ItemEncoder.prepare`).
Decoding is the CPU work a GPU host does beside the models, so a host with N cores encodes at most
N * 1000 / (decoding CPU ms) items/s however fast its GPU; pipeline minus raw CPU shows what else
the pipeline spends.

--workers N runs N encoder worker processes on the one device, each with its own models, decoding
threads and share of the items, the way `fusionrec worker --role encoder` scales on a GPU host
(Faust workers are single processes: a host's cores are used by running several). Every pass
starts in all of them at once and lasts as long as the slowest; raw passes run in all N too.

Media are real encoded files made up front (320 px JPEG photos, 2-4 s FLAC speech, 160 px MPEG-4
videos at 8 fps with a keyframe every 1.5 s and a stereo 16 kHz AAC track, or with --hd-video 720p
H.264 at 30 fps with a keyframe every 2 s and a 48 kHz track; 2 s long or --video-seconds), served
from memory so the network is not measured; or with --media file written to a temporary folder and
fetched as `file://` paths by the worker's own fetcher (`PolicyMediaFetcher`), read in place, as a
worker whose media root is a mounted bucket fetches them.
Writes a JSON file and a PNG bar chart under --out.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import platform
import queue
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from fusionrec.agents.encode_items import ItemEncoder, chunk_size
from fusionrec.agents.ports import MediaFetcher
from fusionrec.encoders import load_encoders, make_fusion
from fusionrec.encoders.base import batches
from fusionrec.encoders.media import MediaLimits
from fusionrec.encoders.media.fetch import MediaPolicy, MemoryMediaFetcher, PolicyMediaFetcher
from fusionrec.schemas import Item
from fusionrec.streams.index import MemoryVectorIndex

HERE = Path(__file__).parent
WORDS = [
    "jazz", "trumpet", "piano", "night", "city", "rain", "coffee", "story", "space", "rocket", "garden",
    "bread", "river", "mountain", "summer", "winter", "guitar", "drum", "voice", "film", "dance", "light",
    "dark", "ocean", "forest", "child", "dream", "road", "train", "fire", "gold",
]


def photo_sources() -> list[Any]:
    import matplotlib
    from PIL import Image

    root = Path(matplotlib.get_data_path()) / "sample_data"
    return [Image.open(root / name).convert("RGB") for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")]


def make_video(picture: Any, voice: np.ndarray, seconds: int, hd: bool = False, keyframe_s: int = 2) -> bytes:
    """A video panning across ``picture`` with ``voice`` (16 kHz) looped as its stereo AAC track:
    160 px MPEG-4 at 8 fps with a 16 kHz track, or (``hd``) what phones and sites serve, 1280 x 720
    H.264 at 30 fps with a keyframe every ``keyframe_s`` seconds and a 48 kHz track."""
    import av
    import soxr

    width, height, fps, rate = (1280, 720, 30, 48000) if hd else (160, 160, 8, 16000)
    frames = fps * seconds
    step = 2 if hd else 1
    base = np.asarray(picture.resize((width + frames * step, height)))
    buf = io.BytesIO()
    voice = soxr.resample(voice, 16000, rate) if rate != 16000 else voice
    track = np.tile(voice, -(-seconds * rate // len(voice)))[: seconds * rate].astype(np.float32)[None, :]
    with av.open(buf, "w", format="mp4") as container:
        if hd:
            stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "g": str(keyframe_s * fps),
                                                                          "keyint_min": str(keyframe_s * fps)})
        else:
            stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        sound = container.add_stream("aac", rate=rate)
        sent = 0  # samples of the track muxed so far

        def sound_until(t: float) -> None:
            nonlocal sent
            while sent < track.shape[1] and sent / rate <= t:
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(track[:, sent : sent + 1024]), format="fltp",
                                                layout="mono")
                af.sample_rate = rate
                for packet in sound.encode(af):
                    container.mux(packet)
                sent += 1024

        for i in range(frames):
            # the sound up to each frame's time first: muxed in time order, the two are interleaved as
            # a phone's or FFmpeg's files are (all the picture first would leave the sound at the end)
            sound_until(i / fps)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(base[:, i * step : i * step + width]),
                                               format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        sound_until(seconds)
        for packet in stream.encode():
            container.mux(packet)
        for packet in sound.encode():
            container.mux(packet)
    return buf.getvalue()


def make_media(n: int, seed: int = 0, video_s: int = 2, hd_video: bool = False) -> dict[str, list[bytes]]:
    """``n`` distinct JPEGs (random crops of real photos), speech-like clips and ``video_s``-second videos."""
    import soundfile

    rng = np.random.default_rng(seed)
    sources = photo_sources()
    speech = [soundfile.read(p, dtype="float32")[0] for p in sorted((HERE.parent / "tests" / "fixtures").glob("*.flac"))]
    images, clips, videos = [], [], []
    for k in tqdm(range(n), desc="making media", leave=False):
        src = sources[k % len(sources)]
        w, h = src.size
        x0, y0 = rng.integers(0, w // 4), rng.integers(0, h // 4)
        img = src.crop((x0, y0, x0 + w * 3 // 4, y0 + h * 3 // 4)).resize((320, 320))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        images.append(buf.getvalue())
        voice = speech[k % len(speech)]
        samples = (voice * rng.uniform(0.5, 1.0) + rng.normal(0, 0.005, len(voice))).astype(np.float32)
        buf = io.BytesIO()
        soundfile.write(buf, samples, 16000, format="FLAC")
        clips.append(buf.getvalue())
        videos.append(make_video(src if hd_video else img, samples, video_s, hd=hd_video))
    return {"image": images, "audio": clips, "video": videos}


SUFFIXES = {"image": ".jpg", "audio": ".flac", "video": ".mp4"}


def media_uri(root: Path | None, modality: str, k: int) -> str:
    """Where the worker finds the ``k``-th file of ``modality``: in memory, or under ``root``."""
    return f"mem://{modality}/{k}" if root is None else (root / f"{modality}-{k}{SUFFIXES[modality]}").as_uri()


def make_items(n: int, modalities: Sequence[str], media: dict[str, list[bytes]], seed: int = 0,
               root: Path | None = None) -> list[Item]:
    rng = np.random.default_rng(seed)
    items = []
    for k in range(n):
        title = " ".join(rng.choice(WORDS, 6))
        # media files repeat every len(media[...]) items: decoding them costs the same each time
        refs = {m: {"uri": media_uri(root, m, k % len(media[m]))} for m in ("image", "audio", "video") if m in modalities}
        items.append(Item(id=f"i{k}", title=title if "text" in modalities else "",
                          description=" ".join(rng.choice(WORDS, 20)) if "text" in modalities else "",
                          media=refs))
    return items


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds (every thread's) for ``fn()``."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def raw_calls(encoders: dict[str, Any], modality: str, prepared: list[dict[str, Any]], texts: list[str]) -> Callable[[], None]:
    """The model call alone on prepared inputs (what the ratio is taken against)."""
    enc = encoders[modality]
    size = chunk_size(len(prepared))  # the model-call size the pipeline uses for this micro-batch
    if modality == "text" and hasattr(enc, "_model"):
        model = enc._model
        return lambda: [model.encode(t, batch_size=size, convert_to_numpy=True, show_progress_bar=False)
                        for t in batches(texts, size)]
    inputs = [p[modality] for p in prepared]
    return lambda: [enc.encode(chunk) for chunk in batches(inputs, size)]


def measure(args: argparse.Namespace, media: dict[str, list[bytes]], rank: int = 0, barrier: Any = None) -> dict[str, Any]:
    """One worker's share of every case: its seconds per timed pass, pipeline and raw.

    With several workers each is a process with its own models on the same device, the way encoder
    workers scale on one host; ``barrier`` starts every pass in all of them at once, so a pass's
    time is the slowest worker's."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    workers = args.workers
    modalities = args.modalities.split(",")
    torch_threads = args.torch_threads or (max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None)
    encoders = load_encoders(modalities, text_model=args.text_model, image_model=args.image_model,
                             model_dir=args.model_dir, device=args.device, batch_size=args.batch,
                             threads=torch_threads, compile=args.compile)
    device = next(iter(encoders.values())).device
    fusion = make_fusion("early", encoders)
    limits = MediaLimits(video_frames=args.video_frames)
    root = args.media_root
    fetcher: MediaFetcher = (MemoryMediaFetcher({media_uri(None, m, k): blob for m, blobs in media.items()
                                                 for k, blob in enumerate(blobs)})
                             if root is None else PolicyMediaFetcher(MediaPolicy(media_root=root)))
    cases = ([] if args.full_only else [[m] for m in modalities]) + [modalities]
    processor_inputs: list[dict[str, Any]] = []
    rows = []

    def together(fn: Callable[[], Any]) -> tuple[float, float]:
        if barrier is not None:
            barrier.wait()
        return timed(fn)

    for case in cases:
        name = "+".join(case) if len(case) > 1 else case[0]
        items = make_items(args.items, case, media, root=root)[rank::workers]
        raw_events = [(it.to_bytes(), it.id.encode()) for it in items]
        processor = ItemEncoder(encoders, fusion, MemoryVectorIndex(), fetcher,
                                max_event_bytes=2**20, limits=limits, threads=args.threads)
        groups = batches(raw_events, args.batch)
        # the same inputs, decoded and prepared up front, for the model calls alone
        prepared_groups = []
        for group in groups:
            group_items = [processor.decode(v, k) for v, k in group]
            prepared, failed = processor.prepare(group_items)
            assert not failed
            prepared_groups.append(([prepared[it.id] for it in group_items], [it.text() for it in group_items]))
        calls = [[raw_calls(encoders, m, p, t) for m in case] for p, t in prepared_groups]
        if len(case) == len(modalities):  # the full item carries every modality
            processor_inputs = prepared_groups[0][0][:32]

        def pipeline() -> None:
            for group in tqdm(groups, desc=f"{name} pipeline", unit="batch", leave=False, disable=rank > 0):
                failed = processor.encode_and_store([processor.decode(v, k) for v, k in group])
                assert not failed, failed
            sync(device)

        def raw() -> None:
            for group_calls in tqdm(calls, desc=f"{name} raw", unit="batch", leave=False, disable=rank > 0):
                for call in group_calls:
                    call()
            sync(device)

        def decoding() -> None:
            for group in tqdm(groups, desc=f"{name} decoding", unit="batch", leave=False, disable=rank > 0):
                processor.prepare([processor.decode(v, k) for v, k in group])

        # A warm-up pass of each first: every batch shape the kernels will see gets compiled and
        # cached (oneDNN/cuDNN pick kernels per shape), then alternate.
        kinds = {"decoding": decoding} if args.decoding_only else {"pipeline": pipeline, "raw": raw, "decoding": decoding}
        for fn in kinds.values():
            together(fn)
        passes: dict[str, list[tuple[float, float]]] = {kind: [] for kind in kinds}
        for _ in range(args.repeat):
            for kind, fn in kinds.items():
                passes[kind].append(together(fn))
        row = {"case": name, "items": len(items)}
        for kind, timings in passes.items():
            row[f"{kind}_s"], row[f"{kind}_cpu_s"] = [w for w, _ in timings], [c for _, c in timings]
        rows.append(row)
        if workers == 1:
            print_row(combine([rows[-1]], args.batch))
    agreement = cpu_agreement(args, encoders, processor_inputs) if device.startswith("cuda") and rank == 0 else {}
    return {"device": describe_device(device), "precision": "fp16" if device.startswith("cuda") else "fp32",
            "versions": {m: e.version for m, e in encoders.items()}, "agreement": agreement, "cases": rows}


def best_pass(shares: Sequence[dict[str, Any]], kind: str) -> tuple[float, float]:
    """The fastest pass of ``kind`` over all workers (a pass lasts as long as its slowest worker):
    its wall seconds and the CPU seconds all workers spent in it."""
    walls = [max(w) for w in zip(*(s[f"{kind}_s"] for s in shares), strict=True)]
    cpus = [sum(c) for c in zip(*(s[f"{kind}_cpu_s"] for s in shares), strict=True)]
    k = int(np.argmin(walls))
    return walls[k], cpus[k]


def combine(shares: Sequence[dict[str, Any]], batch: int) -> dict[str, Any]:
    """One case over all workers: throughput of the best pass, and the CPU each item cost in it."""
    items = sum(s["items"] for s in shares)
    cpu_decoding = min(sum(c) for c in zip(*(s["decoding_cpu_s"] for s in shares), strict=True))
    row = {"case": shares[0]["case"], "items": items, "batch": batch, "decoding_cpu_ms": 1000 * cpu_decoding / items}
    if "pipeline_s" in shares[0]:
        (t_pipe, cpu_pipe), (t_raw, cpu_raw) = best_pass(shares, "pipeline"), best_pass(shares, "raw")
        row |= {"pipeline_items_s": items / t_pipe, "raw_items_s": items / t_raw, "ratio": t_raw / t_pipe,
                "pipeline_cpu_ms": 1000 * cpu_pipe / items, "raw_cpu_ms": 1000 * cpu_raw / items}
    return row


def print_row(row: dict[str, Any]) -> None:
    decoding = f"CPU ms/item: decoding {row['decoding_cpu_ms']:5.2f}"
    if "pipeline_items_s" not in row:
        cap = (os.cpu_count() or 1) * 1000 / row["decoding_cpu_ms"]
        print(f"{row['case']:>24}: {decoding}  (this host's {os.cpu_count()} cores decode at most {cap:,.0f} items/s)",
              flush=True)
        return
    print(f"{row['case']:>24}: pipeline {row['pipeline_items_s']:8.1f} items/s   raw {row['raw_items_s']:8.1f} items/s"
          f"   ratio {row['ratio']:4.0%}   {decoding}  pipeline {row['pipeline_cpu_ms']:6.2f}"
          f"  raw {row['raw_cpu_ms']:6.2f}", flush=True)


def _worker(args: argparse.Namespace, media: dict[str, list[bytes]], rank: int, barrier: Any, results: Any) -> None:
    results.put((rank, measure(args, media, rank, barrier)))


def run(args: argparse.Namespace) -> dict[str, Any]:
    print(f"making {args.distinct_media} distinct images, clips and videos ...", flush=True)
    media = make_media(args.distinct_media, video_s=args.video_seconds, hd_video=args.hd_video)
    args.media_root = Path(tempfile.mkdtemp(prefix="fusionrec-bench-")) if args.media == "file" else None
    try:
        if args.media_root is not None:
            for m, blobs in media.items():
                for k, blob in enumerate(blobs):
                    Path(media_uri(args.media_root, m, k).removeprefix("file://")).write_bytes(blob)
        return measure_all(args, media)
    finally:
        if args.media_root is not None:
            shutil.rmtree(args.media_root)


def measure_all(args: argparse.Namespace, media: dict[str, list[bytes]]) -> dict[str, Any]:
    if args.workers == 1:
        shares = [measure(args, media)]
    else:
        # spawn, not fork: each worker sets up its own CUDA context
        ctx = multiprocessing.get_context("spawn")
        barrier, results = ctx.Barrier(args.workers), ctx.Queue()
        procs = [ctx.Process(target=_worker, args=(args, media, rank, barrier, results)) for rank in range(args.workers)]
        for p in procs:
            p.start()
        try:
            by_rank: dict[int, dict[str, Any]] = {}
            while len(by_rank) < len(procs):
                try:
                    rank, share = results.get(timeout=5)
                    by_rank[rank] = share
                except queue.Empty:
                    # a worker that died would leave the others waiting at the barrier for ever
                    dead = [f"worker {n} exited with {p.exitcode}" for n, p in enumerate(procs) if p.exitcode]
                    if dead:
                        raise SystemExit("; ".join(dead)) from None
            shares = [by_rank[n] for n in range(len(procs))]
        except BaseException:
            barrier.abort()  # the others stop waiting for the dead one
            raise
        finally:
            for p in procs:
                p.join(timeout=60)
                if p.is_alive():
                    p.kill()
    rows = [combine(case_shares, args.batch) for case_shares in zip(*(s["cases"] for s in shares), strict=True)]
    if args.workers > 1:
        for row in rows:
            print_row(row)
    first = shares[0]
    return {"device": first["device"], "precision": first["precision"], "fp16_vs_fp32_min_cosine": first["agreement"],
            "batch": args.batch, "workers": args.workers, "threads": args.threads, "video_frames": args.video_frames,
            "video_seconds": args.video_seconds, "hd_video": args.hd_video, "media": args.media,
            "compiled": args.compile and first["precision"] == "fp16",
            "versions": first["versions"], "results": rows}


def cpu_agreement(args: argparse.Namespace, gpu: dict[str, Any], prepared: list[dict[str, Any]]) -> dict[str, float]:
    """The CUDA path (fp16) against the same encoders on the CPU (fp32): the lowest cosine per modality."""
    cpu = load_encoders(list(gpu), text_model=args.text_model, image_model=args.image_model,
                        model_dir=args.model_dir, device="cpu", batch_size=args.batch)
    out = {}
    for m in gpu:
        inputs = [p[m] for p in prepared]
        a, b = gpu[m].encode(inputs), cpu[m].encode(inputs)
        out[m] = float(np.min(np.sum(a * b, axis=1)))
        print(f"{m:>8}: fp16 on CUDA vs fp32 on CPU, lowest cosine over {len(inputs)} items: {out[m]:.4f}")
    return out


def describe_device(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda}, torch {torch.__version__})"
    # what torch's OpenMP threads do between ops (fusionrec.encoders sleeps them) moves CPU figures
    policy = os.environ.get("OMP_WAIT_POLICY") or "libgomp's default"
    return (f"CPU: {os.cpu_count()} cores, {platform.processor() or platform.machine()} (torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, OMP_WAIT_POLICY {policy})")


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["results"]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(8, 4))
    if "pipeline_items_s" in rows[0]:
        ax.bar(x - 0.2, [r["raw_items_s"] for r in rows], 0.4, label="raw model call")
        ax.bar(x + 0.2, [r["pipeline_items_s"] for r in rows], 0.4, label="pipeline")
        for k, r in enumerate(rows):
            ax.annotate(f"{r['ratio']:.0%}", (k + 0.2, r["pipeline_items_s"]), ha="center", va="bottom", fontsize=8)
        ax.set_ylabel("items / s")
        ax.set_yscale("log")
        ax.legend()
    else:
        ax.bar(x, [r["decoding_cpu_ms"] for r in rows], 0.5)
        ax.set_ylabel("decoding CPU ms / item")
    ax.set_xticks(x, [r["case"] for r in rows], rotation=15, fontsize=8)
    ax.set_title(f"encoding, batch {report['batch']}, {report['precision']}, {report['workers']} worker(s)"
                 f"\n{report['device']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=8, help="media decoding threads per worker")
    ap.add_argument("--workers", type=int, default=1,
                    help="encoder worker processes sharing the device, each with its own models and threads")
    ap.add_argument("--torch-threads", type=int, default=None)
    ap.add_argument("--video-frames", type=int, default=8)
    ap.add_argument("--video-seconds", type=int, default=2, help="length of the videos made")
    ap.add_argument("--hd-video", action="store_true",
                    help="1280 x 720 H.264 videos at 30 fps with a 48 kHz track instead of 160 px MPEG-4 at 8 fps")
    ap.add_argument("--repeat", type=int, default=2, help="timed passes of each (the best counts)")
    ap.add_argument("--distinct-media", type=int, default=64, help="media files made (items cycle through them)")
    ap.add_argument("--modalities", default="text,image,audio,video")
    ap.add_argument("--media", choices=["memory", "file"], default="memory",
                    help="served from memory, or file:// paths read in place by the worker's own fetcher")
    ap.add_argument("--full-only", action="store_true", help="only the item with every modality, not each alone")
    ap.add_argument("--decoding-only", action="store_true",
                    help="only the media decoding passes: the CPU an item costs beside the models")
    ap.add_argument("--text-model", default="all-MiniLM-L6-v2")
    ap.add_argument("--image-model", default="efficientnet-lite0")
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                    help="torch.compile the image backbone on CUDA (FUSIONREC_COMPILE_MODELS)")
    ap.add_argument("--out", type=Path, default=HERE / "out")
    args = ap.parse_args()
    report = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    tag = ("decoding-" if args.decoding_only else "") + ("cuda" if report["precision"] == "fp16" else "cpu")
    (args.out / f"encode-{tag}.json").write_text(json.dumps(report, indent=2))
    plot(report, args.out / f"encode-{tag}.png")
    print(f"{report['device']}, batch {report['batch']}, {report['precision']}; wrote {args.out}/encode-{tag}.json/.png")


if __name__ == "__main__":
    main()
