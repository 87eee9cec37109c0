"""HDR video as the image model sees it: read as SDR, and converted to SDR (`encoders/color.py`).

    .venv/bin/python bench/hdr.py [--repeat 10]

Real pictures (matplotlib's and scikit-learn's sample photographs) are made into lossless HEVC Main 10
videos in HDR, PQ and HLG, SDR white at HDR reference white (`tests/media.hevc_video`), and decoded
as the encoder worker decodes them. For each: the cosine of EfficientNet-Lite0's vector of a sampled
frame to the vector of the picture itself, when the same video is labelled SDR (what reading HDR as
SDR gives) and when it is labelled as what it is (converted); next to it, the same picture as an
8-bit SDR video, which shows what 4:2:0 chroma and scaling alone cost. Then the CPU per video of
decoding each label (8 frames taken; best of --repeat rounds, the two taking turns), whose
difference is the conversion.
Writes bench/out/hdr.png: each picture, read as SDR and converted, side by side.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))  # the tests' media writers: the bench decodes the very files the tests do

from fusionrec.encoders import load_encoders
from fusionrec.encoders.media import MediaLimits, decode_video
from tests.media import hevc_video

LIMITS = MediaLimits(video_frames=8, frame_size=224)
FRAMES = 16


def pictures() -> dict[str, np.ndarray]:
    import matplotlib
    from PIL import Image
    from sklearn.datasets import load_sample_images

    samples = load_sample_images()
    found = {"grace_hopper": Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")}
    found |= {Path(name).stem: Image.fromarray(image) for name, image in zip(samples.filenames, samples.images, strict=True)}
    # even sides, as 4:2:0 video needs
    return {name: np.asarray(img.convert("RGB").resize((img.width // 2 * 2, img.height // 2 * 2))) for name, img in found.items()}


def cpu_ms(videos: list[bytes], repeat: int) -> list[float]:
    """The least CPU (ms) each video took to decode over ``repeat`` rounds, the videos taking turns
    within a round so that a slow spell of the host falls on all of them."""
    best = [float("inf")] * len(videos)
    for _ in range(repeat):
        for i, video in enumerate(videos):
            cpu = time.process_time()
            decode_video(video, LIMITS)
            best[i] = min(best[i], time.process_time() - cpu)
    return [b * 1000 for b in best]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=10, help="timed decodes of each video (the best counts)")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "hdr.png")
    args = ap.parse_args()

    from PIL import Image

    encoder = load_encoders(["image"], device="cpu")["image"]

    def cosines(picture: np.ndarray, frames: list[np.ndarray]) -> list[float]:
        vectors = encoder.encode([encoder.prepare(Image.fromarray(p)) for p in [picture, *frames]])
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return [float(vectors[0] @ v) for v in vectors[1:]]

    rows, strips = [], []
    cases = [(name, picture, transfer) for name, picture in pictures().items() for transfer in ("pq", "hlg")]
    for name, picture, transfer in tqdm(cases, desc="pictures", leave=False):
        # more frames than are taken, so that each taken frame is converted on its own
        as_sdr, labelled = hevc_video(picture, transfer, FRAMES, tagged=False), hevc_video(picture, transfer, FRAMES)
        read, converted = decode_video(as_sdr, LIMITS).frames[0], decode_video(labelled, LIMITS).frames[0]
        sdr = decode_video(hevc_video(picture, frames=FRAMES), LIMITS).frames[0]
        rows.append((name, transfer, *cosines(picture, [read, converted, sdr]), *cpu_ms([as_sdr, labelled], args.repeat),
                     converted.shape))
        strips.append(np.concatenate([np.asarray(Image.fromarray(picture).resize(read.shape[1::-1])), read, converted], 1))

    print("cosine of a sampled frame's vector to the picture's own (EfficientNet-Lite0); CPU ms per video, 8 frames taken")
    print(f"{'picture':>14} {'curve':>5} {'read as SDR':>11} {'converted':>9} {'SDR video':>9}   {'CPU as SDR':>10} {'converted':>9}  frame")
    for name, transfer, read, converted, sdr, plain_ms, hdr_ms, shape in rows:
        print(f"{name:>14} {transfer:>5} {read:11.4f} {converted:9.4f} {sdr:9.4f}   {plain_ms:10.1f} {hdr_ms:9.1f}  "
              f"{shape[1]}x{shape[0]}: {(hdr_ms - plain_ms) / LIMITS.video_frames:.2f} ms per frame")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    width = max(s.shape[1] for s in strips)
    Image.fromarray(np.concatenate([np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0)), constant_values=255)
                                    for s in strips])).save(args.out)
    print(f"picture, read as SDR, converted, one row per picture and curve: {args.out}")


if __name__ == "__main__":
    main()
