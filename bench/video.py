"""What a video item costs the encoder worker's CPU by its length: one up to `FUSIONREC_MAX_VIDEO_S`
(60) is read through from its start; a longer one's frames and sound windows are reached by seeking.

    .venv/bin/python bench/video.py [--seconds 20 60 61 300 1200] [--repeat 5]

The videos are what phones and sites serve (`bench/encode.py --hd-video`'s): 1280 x 720 H.264 at
30 fps with a keyframe every 2 s and a 48 kHz AAC track of speech, in MP4; and the longest once more
keyframed only once a minute, as a screen recording may be. The longer ones loop a 60 s recording
by copying its packets (so a 20-minute file takes a second to make, not ten minutes to encode).
"CPU ms bytes" is the CPU time (every thread) of `decode_video` on the file's bytes with the worker's
limits (8 frames, scaled for a 224 px model; 30 s of sound), best of --repeat rounds, the lengths
taking turns. Up to 60 s, the longer the video, the more is demuxed and the more sound decoded;
past it, what is decoded no longer grows with the length, nor with how far apart its keyframes are.
Before frames were spread over a long video, its first 60 s were read: the 60 s row is what any
longer video cost then.

Each video is also fetched as the worker fetches one, with its fetcher: as a `file://` path read in
place ("CPU ms in place": fetching and decoding, timed the same way), and from an HTTP server on a
loopback port that serves byte ranges, in the default blocks. "MB read" is how much of the file each
way reads, next to its size ("MB"), with the HTTP requests made (one round: these do not vary).
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from encode import make_video, photo_sources  # bench/encode.py's videos
from tqdm import tqdm

from fusionrec.encoders.media import MediaLimits, Video, decode_media, decode_video
from fusionrec.encoders.media.fetch import MediaPolicy, PartReader, PolicyMediaFetcher
from fusionrec.schemas import MediaKind, MediaRef
from fusionrec.testing.http_server import MediaServer

HERE = Path(__file__).parent

LIMITS = MediaLimits(frame_size=224)


def looped(data: bytes, seconds: int) -> bytes:
    """``data`` (a 60 s MP4) repeated, by copying its packets with their times shifted, to ``seconds``."""
    import av

    out = io.BytesIO()
    with av.open(io.BytesIO(data)) as source, av.open(out, "w", format="mp4") as sink:
        streams = {s.index: sink.add_stream_from_template(s) for s in (source.streams.video[0], source.streams.audio[0])}
        length = float(source.duration / av.time_base)
        for lap in range(-(-seconds // round(length))):
            source.seek(0)
            for packet in source.demux(*source.streams):
                if packet.dts is None or packet.stream.index not in streams:
                    continue
                shift = round(lap * length / packet.time_base)
                if packet.pts is not None and (packet.pts * packet.time_base + lap * length) >= seconds:
                    continue
                packet.pts = packet.pts + shift if packet.pts is not None else None
                packet.dts += shift
                packet.stream = streams[packet.stream.index]
                sink.mux(packet)
    return out.getvalue()


def main() -> None:
    import soundfile

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, nargs="+", default=[20, 60, 61, 300, 1200])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    voice = np.concatenate([soundfile.read(p, dtype="float32")[0]
                            for p in sorted((HERE.parent / "tests" / "fixtures").glob("*.flac"))])
    picture, longest = photo_sources()[0], max(args.seconds)
    with tqdm(total=3, desc="making videos") as bar:
        minute = make_video(picture, voice, 60, hd=True)
        bar.update()
        videos = {(s, 2): minute if s == 60 else make_video(picture, voice, s, hd=True) if s < 60 else looped(minute, s)
                  for s in args.seconds}
        bar.update()
        # keyframed once a minute (a screen recording is keyframed as rarely): each middle is far from one
        videos[longest, 60] = looped(make_video(picture, voice, 60, hd=True, keyframe_s=60), longest)
        bar.update()
    with tempfile.TemporaryDirectory(prefix="fusionrec-video-") as name:
        folder = Path(name)
        paths = {case: folder / f"{case[0]}s-{case[1]}.mp4" for case in videos}
        for case, data in videos.items():
            paths[case].write_bytes(data)
        with PolicyMediaFetcher(MediaPolicy(media_root=folder, allow_private_hosts=True)) as fetcher:
            report(args, videos, paths, fetcher)


def fetched(fetcher: PolicyMediaFetcher, uri: str) -> tuple[Video, int]:
    """The video at ``uri`` as the worker fetches and decodes it, and the bytes read of it."""
    source = fetcher.fetch(MediaKind.VIDEO, MediaRef(uri=uri))
    try:
        return decode_media(MediaKind.VIDEO, source, LIMITS), source.fetched if isinstance(source, PartReader) else len(source)
    finally:
        if isinstance(source, PartReader):
            source.close()


def report(args: argparse.Namespace, videos: dict[tuple[int, int], bytes], paths: dict[tuple[int, int], Path],
           fetcher: PolicyMediaFetcher) -> None:
    best = {(case, how): float("inf") for case in videos for how in ("bytes", "file")}
    for _ in tqdm(range(args.repeat), desc="rounds"):
        for case, data in videos.items():
            start = time.process_time()
            decoded = decode_video(data, LIMITS)
            best[case, "bytes"] = min(best[case, "bytes"], (time.process_time() - start) * 1000)
            assert len(decoded.frames) == LIMITS.video_frames and decoded.audio is not None
            start = time.process_time()
            in_place, _ = fetched(fetcher, paths[case].as_uri())
            best[case, "file"] = min(best[case, "file"], (time.process_time() - start) * 1000)
            assert all(a.shape == b.shape and (a == b).all() for a, b in zip(in_place.frames, decoded.frames, strict=True))
    read: dict[tuple[int, int], tuple[int, int, int]] = {}
    with MediaServer() as server:
        for case, data in videos.items():
            server.reset()
            server.files["/video.mp4"] = data
            _, in_place = fetched(fetcher, paths[case].as_uri())
            _, over_http = fetched(fetcher, server.url("/video.mp4"))
            assert over_http == server.sent
            read[case] = in_place, over_http, len(server.requests)
    print(f"decode_video CPU ms per 720p H.264 + AAC video, best of {args.repeat} "
          f"({LIMITS.video_frames} frames, {LIMITS.max_audio_s:.0f} s of sound); what is read of it, fetched as the "
          "worker does")
    print(f"{'':>38} {'CPU ms':>8} {'CPU ms':>9} {'MB read':>9} {'MB read':>10}")
    print(f"{'seconds':>8} {'keyframes':>10} {'MB':>6} {'read':>11} {'bytes':>8} {'in place':>9} "
          f"{'in place':>9} {'over HTTP':>10} {'requests':>9}")
    for (seconds, keyframe_s), data in videos.items():
        case = seconds, keyframe_s
        how = "through" if seconds <= LIMITS.max_video_s else "by seeking"
        in_place, over_http, requests = read[case]
        print(f"{seconds:>8} {f'every {keyframe_s} s':>10} {len(data) / 2**20:>6.1f} {how:>11} {best[case, 'bytes']:>8.1f} "
              f"{best[case, 'file']:>9.1f} {in_place / 2**20:>9.1f} {over_http / 2**20:>10.1f} {requests:>9}")


if __name__ == "__main__":
    main()
