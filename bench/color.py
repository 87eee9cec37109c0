"""Colour as the image model sees it (`encoders/color.py`): pictures with a Display P3, a press's CMYK
or a grey profile, and HDR video, each read as if it were sRGB / SDR and converted.

    .venv/bin/python bench/color.py [--repeat 10]

Real photographs (matplotlib's and scikit-learn's samples) are made into the media phones produce,
from formulas the decoder does not use (`tests/media`): JPEGs in Display P3 with its ICC profile,
CMYK JPEGs separated for a made-up press (its inks and dot gain in `tests/media.printed`) with that
press's profile, grey JPEGs on a gamma of 1.8 with its profile, and lossless HEVC Main 10 videos in
HDR (PQ and HLG, SDR white at HDR reference white). Each is decoded as the encoder worker decodes it,
and EfficientNet-Lite0's vector of the result is compared (cosine) with the vector of what it shows
(the photograph; for CMYK, the photograph as the press prints it; for grey, in sRGB grey): once with
the file's colour labels removed (the JPEG without its profile, the video labelled SDR), which is
what reading it as sRGB / SDR (CMYK: as ideal inks) gives, and once as it is (converted). The same
picture as an sRGB JPEG / an SDR video shows what the format alone costs (JPEG's loss; 4:2:0 chroma
and scaling).

CPU: decoding 12 MP P3 and CMYK JPEGs with and without their profile, and an HDR video (16 frames, 8 taken)
with and without its labels, the two taking turns, best of --repeat rounds; the difference is the
conversion. Writes bench/out/hdr.png: each picture, its video frame read as SDR, and converted.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fusionrec.encoders import load_encoders
from fusionrec.encoders.media import MediaLimits, decode_image, decode_video
from fusionrec.testing.media import cmyk_profile, grey_profile, hevc_video, in_p3, p3_profile, printed, separated, srgb_light

HERE = Path(__file__).parent

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


def jpeg(pixels: np.ndarray, mode: str | None = None, **kw: bytes) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels, mode).save(buf, "JPEG", quality=95, **kw)
    return buf.getvalue()


def on_gamma(grey: np.ndarray, gamma: float) -> np.ndarray:
    """8-bit sRGB grey as the same tones' 8-bit codes on a plain ``gamma`` curve."""
    return np.round(srgb_light(grey) ** (1 / gamma) * 255).astype(np.uint8)


def cpu_ms(decode: Callable[[bytes], object], files: list[bytes], repeat: int) -> list[float]:
    """The least CPU (ms) each file took to decode over ``repeat`` rounds, the files taking turns
    within a round so that a slow spell of the host falls on all of them."""
    best = [float("inf")] * len(files)
    for _ in range(repeat):
        for i, data in enumerate(files):
            cpu = time.process_time()
            decode(data)
            best[i] = min(best[i], time.process_time() - cpu)
    return [b * 1000 for b in best]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=10, help="timed decodes of each file (the best counts)")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "hdr.png")
    args = ap.parse_args()

    from PIL import Image

    encoder = load_encoders(["image"], device="cpu")["image"]

    def cosines(picture: np.ndarray, seen: list[np.ndarray]) -> list[float]:
        vectors = encoder.encode([encoder.prepare(Image.fromarray(np.asarray(p))) for p in [picture, *seen]])
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return [float(vectors[0] @ v) for v in vectors[1:]]

    photos, p3, press, gamma18 = pictures(), p3_profile(), cmyk_profile(), grey_profile(1.8)
    print("cosine of the decoded picture's vector to that of what it shows (EfficientNet-Lite0)")
    print(f"{'picture':>14} {'':>5} {'read as sRGB':>12} {'converted':>9} {'sRGB JPEG':>9}")
    for name, picture in tqdm(photos.items(), desc="pictures", leave=False):
        inks, grey = separated(picture), np.asarray(Image.fromarray(picture).convert("L"))
        cases = {  # what the picture shows, its file without and with its profile
            "P3": (picture, jpeg(in_p3(picture)), jpeg(in_p3(picture), icc_profile=p3)),
            "CMYK": (printed(inks), jpeg(inks, "CMYK"), jpeg(inks, "CMYK", icc_profile=press)),
            "grey": (np.repeat(grey[..., None], 3, axis=-1), jpeg(on_gamma(grey, 1.8)),
                     jpeg(on_gamma(grey, 1.8), icc_profile=gamma18)),
        }
        for space, (shown, plain_file, profiled_file) in cases.items():
            seen = [decode_image(plain_file), decode_image(profiled_file), decode_image(jpeg(shown))]
            row = zip(cosines(shown, seen), (12, 9, 9), strict=True)
            print(f"{name:>14} {space:>5} " + " ".join(f"{c:{w}.4f}" for c, w in row))
    phone = np.asarray(Image.fromarray(photos["china"]).resize((4032, 3024)))
    for space, plain_file, profiled_file in [("P3", jpeg(in_p3(phone)), jpeg(in_p3(phone), icc_profile=p3)),
                                             ("CMYK", jpeg(separated(phone), "CMYK"),
                                              jpeg(separated(phone), "CMYK", icc_profile=press))]:
        plain, managed = cpu_ms(decode_image, [plain_file, profiled_file], args.repeat)
        print(f"  12 MP {space} JPEG (4032x3024, decoded at an eighth): {plain:.1f} CPU ms without its profile, "
              f"{managed:.1f} with it: {managed - plain:.1f} ms the conversion")

    rows, strips = [], []
    cases = [(name, picture, transfer) for name, picture in photos.items() for transfer in ("pq", "hlg")]
    for name, picture, transfer in tqdm(cases, desc="HDR videos", leave=False):
        # more frames than are taken, so that each taken frame is converted on its own
        as_sdr, labelled = hevc_video(picture, transfer, FRAMES, tagged=False), hevc_video(picture, transfer, FRAMES)
        read, converted = decode_video(as_sdr, LIMITS).frames[0], decode_video(labelled, LIMITS).frames[0]
        sdr = decode_video(hevc_video(picture, frames=FRAMES), LIMITS).frames[0]
        rows.append((name, transfer, *cosines(picture, [read, converted, sdr]),
                     *cpu_ms(lambda v: decode_video(v, LIMITS), [as_sdr, labelled], args.repeat), converted.shape))
        strips.append(np.concatenate([np.asarray(Image.fromarray(picture).resize(read.shape[1::-1])), read, converted], 1))
    print(f"{'picture':>14} {'curve':>5} {'read as SDR':>12} {'converted':>9} {'SDR video':>9}   "
          f"CPU ms per video, 8 frames taken: as SDR, converted")
    for name, transfer, read, converted, sdr, plain_ms, hdr_ms, shape in rows:
        print(f"{name:>14} {transfer:>5} {read:12.4f} {converted:9.4f} {sdr:9.4f}   {plain_ms:6.1f} {hdr_ms:6.1f}  "
              f"{shape[1]}x{shape[0]} frames: {(hdr_ms - plain_ms) / LIMITS.video_frames:.2f} ms per frame")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    width = max(s.shape[1] for s in strips)
    Image.fromarray(np.concatenate([np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0)), constant_values=255)
                                    for s in strips])).save(args.out)
    print(f"picture, video frame read as SDR, converted; a row per picture and curve: {args.out}")


if __name__ == "__main__":
    main()
