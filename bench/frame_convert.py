"""CPU spent converting sampled video frames to RGB for the image model, by swscale thread count.

    .venv/bin/python bench/frame_convert.py [--videos 16] [--hd-video] [--threads 1,0,16]

Each video's frames go through one converter, as in `encoders.media.decode_video`. swscale's
default (0) is a pool of as many threads as the host has cores, started for each converter and woken
for every frame; the decoder asks for 1 because its callers already decode many videos side by side.
Asking for 16 threads on a smaller host shows what the default costs on a 16-core GPU host: the CPU
spent starting and waking the threads, not the scaling, which is the same work on any count.
Frames are taken as the encoders take them (8 per video, scaled in YUV to at most 224 px on the
short side); CPU time counts every thread.
"""

from __future__ import annotations

import argparse
import io
import os
import time

import numpy as np
from encode import make_media
from tqdm import tqdm

from fusionrec.encoders.media import scaled_size

FRAMES_PER_VIDEO = 8
MODEL_SIZE = 224


def sampled_frames(video: bytes) -> list:
    import av

    with av.open(io.BytesIO(video)) as container:
        frames = list(container.decode(video=0))
    picks = np.linspace(0, len(frames) - 1, FRAMES_PER_VIDEO).round().astype(int)
    return [frames[i] for i in picks]


def cpu_ms_per_frame(videos: list[list], threads: int, repeat: int) -> float:
    from av.video.reformatter import Interpolation, VideoReformatter

    def convert() -> None:
        for frames in videos:
            reformatter = VideoReformatter()
            for frame in frames:
                width, height = scaled_size(frame.width, frame.height, MODEL_SIZE)
                reformatter.reformat(frame, width=width, height=height, format="rgb24",
                                     interpolation=Interpolation.BILINEAR, threads=threads).to_ndarray()

    convert()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        cpu = time.process_time()
        convert()
        best = min(best, time.process_time() - cpu)
    return best * 1000 / sum(len(frames) for frames in videos)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=16)
    ap.add_argument("--hd-video", action="store_true", help="720p H.264 instead of 160 px MPEG-4")
    ap.add_argument("--threads", default="1,0,16", help="swscale thread counts to compare (0: its default)")
    ap.add_argument("--repeat", type=int, default=10, help="timed passes of each (the best counts)")
    args = ap.parse_args()

    media = make_media(args.videos, hd_video=args.hd_video)
    videos = [sampled_frames(v) for v in tqdm(media["video"], desc="decoding", leave=False)]
    counts = [int(t) for t in args.threads.split(",")]
    figures = {t: cpu_ms_per_frame(videos, t, args.repeat) for t in tqdm(counts, desc="converting", leave=False)}
    first = videos[0][0]
    print(f"{args.videos} videos, {first.width}x{first.height} {first.format.name}, {FRAMES_PER_VIDEO} frames each; "
          f"this host has {os.cpu_count()} cores")
    for t, ms in figures.items():
        label = f"{t} (default: {os.cpu_count()} here)" if t == 0 else str(t)
        print(f"  swscale threads {label:>22}: {ms:7.3f} CPU ms/frame  {ms * FRAMES_PER_VIDEO:7.3f} per video"
              f"  {ms / figures[counts[0]]:5.1f}x threads={counts[0]}")


if __name__ == "__main__":
    main()
