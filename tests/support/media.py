"""Real media for tests: made on the fly, or small fixtures under tests/fixtures (see its README)."""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

FIXTURES = Path(__file__).parents[1] / "fixtures"


def write(container: Any, stream: Any, frames: Iterable[Any]) -> None:
    """Encodes ``frames`` on ``stream`` into ``container``, then drains the encoder."""
    for frame in [*frames, None]:
        for packet in stream.encode(frame):
            container.mux(packet)


def audio_frames(samples: np.ndarray, rate: int, layout: str) -> Iterator[Any]:
    """``samples`` (channels x time, float32) in AAC-sized frames of 1024."""
    import av

    for start in range(0, samples.shape[1], 1024):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start : start + 1024]), format="fltp",
                                           layout=layout)
        frame.sample_rate = rate
        yield frame


def png(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (32, 24)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def wav(seconds: float = 0.5, rate: int = 8000, freq: float = 440.0) -> bytes:
    import soundfile

    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    soundfile.write(buf, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate, format="WAV")
    return buf.getvalue()


def noise_wav(seconds: float = 2.0, rate: int = 16000, seed: int = 0) -> bytes:
    import soundfile

    samples = np.random.default_rng(seed).normal(0, 0.2, int(seconds * rate)).astype(np.float32)
    buf = io.BytesIO()
    soundfile.write(buf, samples, rate, format="WAV")
    return buf.getvalue()


def audio_file(samples: np.ndarray, rate: int, fmt: str) -> bytes:
    """Mono ``samples`` as a stereo file: ``wav`` (float), ``flac`` or ``ogg`` (Vorbis) through
    libsndfile, ``mp3`` or ``m4a`` (AAC) through FFmpeg."""
    stereo = np.stack([samples, samples]).astype(np.float32)
    buf = io.BytesIO()
    if fmt in ("wav", "flac", "ogg"):
        import soundfile

        subtype = {"wav": "FLOAT", "flac": "PCM_16", "ogg": "VORBIS"}[fmt]
        with soundfile.SoundFile(buf, "w", rate, 2, format=fmt.upper(), subtype=subtype) as f:
            for start in range(0, stereo.shape[1], 8192):  # libsndfile's Vorbis writer crashes on one long write
                f.write(stereo[:, start : start + 8192].T)
        return buf.getvalue()
    import av

    with av.open(buf, "w", format={"mp3": "mp3", "m4a": "ipod"}[fmt]) as container:
        sound = container.add_stream({"mp3": "libmp3lame", "m4a": "aac"}[fmt], rate=rate, layout="stereo")
        sound.bit_rate = 192_000
        write(container, sound, audio_frames(stereo, rate, "stereo"))
    return buf.getvalue()


def speech(name: str = "speech-en-1") -> bytes:
    return (FIXTURES / f"{name}.flac").read_bytes()


def photo() -> bytes:
    """A real photograph that ships with matplotlib (a dependency): Grace Hopper, 512 x 600 JPEG."""
    import matplotlib

    return (Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").read_bytes()


def other_photo() -> bytes:
    """An unrelated real picture from the same place: a wrapped present."""
    import matplotlib

    return (Path(matplotlib.get_data_path()) / "sample_data" / "Minduka_Present_Blue_Pack.png").read_bytes()


def crop(data: bytes, box: tuple[float, float, float, float], fmt: str = "JPEG") -> bytes:
    """The part of an image inside ``box`` (fractions of width and height)."""
    from PIL import Image

    img = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = img.size
    buf = io.BytesIO()
    img.crop((int(box[0] * w), int(box[1] * h), int(box[2] * w), int(box[3] * h))).save(buf, fmt)
    return buf.getvalue()


def mp4(
    frames: int = 8, *, audio: bool = False, size: tuple[int, int] = (64, 48), image: bytes | None = None,
    rate: int = 16000, left_only: bool = False, gop: int | None = None, rotation: int = 0,
    pixel_aspect: tuple[int, int] | None = None, bframes: int = 0,
) -> bytes:
    """An MPEG-4 video at 8 fps: brightening grey frames (or ``image`` panning), with a 330 Hz tone
    track at ``rate`` if ``audio`` (stereo, the tone in both channels or, ``left_only``, in the left);
    a keyframe every ``gop`` frames if given (else the encoder's choice); a display matrix that
    turns the frames ``rotation`` degrees counter-clockwise if given (as phones write); pixels
    ``pixel_aspect`` (width, height) as wide as tall if given (anamorphic video); up to ``bframes``
    B-frames in a row (stored before the frames shown ahead of them, as most web video is)."""
    import av
    from PIL import Image

    w, h = size
    base = Image.open(io.BytesIO(image)).convert("RGB").resize((w + frames, h)) if image else None
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=8, options={"bf": str(bframes)})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if gop is not None:
            stream.codec_context.gop_size = gop
        if rotation:
            stream.set_display_rotation(rotation)
        if pixel_aspect:
            stream.codec_context.sample_aspect_ratio = Fraction(*pixel_aspect)
        sound = container.add_stream("aac", rate=rate, layout="stereo") if audio else None
        pictures = (np.asarray(base)[:, i : i + w] if base else np.full((h, w, 3), i * 25 % 256, np.uint8)
                    for i in range(frames))
        write(container, stream, (av.VideoFrame.from_ndarray(np.ascontiguousarray(p), format="rgb24") for p in pictures))
        if sound is not None:
            t = np.arange(int(frames / 8 * rate)) / rate
            tone = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
            write(container, sound, audio_frames(np.stack([tone, np.zeros_like(tone) if left_only else tone]), rate,
                                                 "stereo"))
    return buf.getvalue()


def two_sound_tracks(fmt: str, *, video: bool, description_first: bool) -> bytes:
    """A 2 s file (``fmt``: matroska, mp4) with two mono AAC tracks: a 330 Hz tone flagged as the
    default, and noise flagged as an audio description (for the visually impaired), first if
    ``description_first``; with a video track before them if ``video``."""
    import av
    from av.stream import Disposition

    rate, n = 16000, 32000
    tone = (0.3 * np.sin(2 * np.pi * 330 * np.arange(n) / rate)).astype(np.float32)
    noise = (0.3 * np.random.default_rng(0).standard_normal(n)).astype(np.float32)
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as container:  # every stream is added before the first packet
        picture = container.add_stream("mpeg4", rate=8) if video else None
        if picture is not None:
            picture.width, picture.height, picture.pix_fmt = 64, 48, "yuv420p"
        tracks = [(noise, Disposition.visual_impaired), (tone, Disposition.default)]
        sounds = []
        for samples, disposition in tracks if description_first else tracks[::-1]:
            sound = container.add_stream("aac", rate=rate, layout="mono")
            sound.disposition = disposition
            sounds.append((sound, samples))
        if picture is not None:
            write(container, picture, (av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 10, np.uint8), format="rgb24")
                                       for i in range(16)))
        for sound, samples in sounds:
            write(container, sound, audio_frames(samples[None], rate, "mono"))
    return buf.getvalue()


def slideshow(spans: list[tuple[bytes, int]], size: tuple[int, int] = (160, 120)) -> bytes:
    """An MPEG-4 video at 2 fps, a keyframe every 2 s, showing each picture of ``spans`` (encoded
    bytes, seconds) for its seconds: a show's opening titles, then what the episode is about."""
    import av
    from PIL import Image

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=2, options={"g": "4"})
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        pictures = [np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize(size)) for data, _ in spans]
        write(container, stream, (av.VideoFrame.from_ndarray(picture, format="rgb24")
                                  for picture, (_, seconds) in zip(pictures, spans, strict=True)
                                  for _ in range(seconds * 2)))
    return buf.getvalue()


def long_video(fmt: str, codec: str, sound_codec: str, seconds: int, sound: np.ndarray | None = None) -> bytes:
    """A ``seconds`` long video (``fmt``, ``codec``) at 4 fps, 32 x 32, a keyframe every 2 s, whose grey
    brightens from 20 to 220 over its length, with ``sound`` (mono, 16 kHz; 48 kHz for Opus) as its
    track: the two muxed second by second, interleaved as real files are."""
    import av
    import soxr

    rate = 48_000 if sound_codec == "libopus" else 16_000
    if sound is not None and rate != 16_000:
        sound = soxr.resample(sound, 16_000, rate).astype(np.float32)
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as container:
        picture = container.add_stream(codec, rate=4, options={"g": "8"})
        picture.width, picture.height, picture.pix_fmt = 32, 32, "yuv420p"
        track = container.add_stream(sound_codec, rate=rate, layout="mono") if sound is not None else None
        for second in range(seconds):
            for i in range(second * 4, second * 4 + 4):
                level = round(20 + 200 * i / (seconds * 4))
                frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), level, np.uint8), format="rgb24")
                for packet in picture.encode(frame):
                    container.mux(packet)
            if track is not None and sound is not None and second * rate < len(sound):
                # PyAV cuts what it is given into the encoder's frame size and sample format
                chunk = np.ascontiguousarray(sound[None, second * rate : (second + 1) * rate])
                frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                frame.sample_rate, frame.pts = rate, second * rate
                for packet in track.encode(frame):
                    container.mux(packet)
        for stream in (picture, track) if track is not None else (picture,):
            for packet in stream.encode(None):
                container.mux(packet)
    return buf.getvalue()


BT709_TO_BT2020 = np.array([[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]])


def hdr_code(light: np.ndarray, transfer: str) -> np.ndarray:
    """Linear BT.709 light (SDR white = 1) as an HDR camera codes it: BT.2020 R'G'B' in [0, 1] on
    the PQ or HLG curve, SDR white at HDR reference white (203 nits; HLG as graded on a 1,000-nit
    display). Written from BT.2100's formulas, in the other direction than the decoder goes."""
    light = np.asarray(light, np.float64) @ BT709_TO_BT2020.T
    if transfer == "pq":
        m1, m2, c1, c2, c3 = 2610 / 16384, 2523 / 32, 3424 / 4096, 2413 / 128, 2392 / 128
        y = (light * 203 / 10000) ** m1
        coded = ((c1 + c2 * y) / (1 + c3 * y)) ** m2
    else:
        display = light * 0.203  # of the 1,000-nit peak; the scene light that a 1.2 system gamma shows so:
        scene_y = np.maximum(display @ np.array([0.2627, 0.6780, 0.0593]), 1e-12) ** (1 / 1.2)
        scene = display / scene_y[..., None] ** 0.2
        a, b, c = 0.17883277, 0.28466892, 0.55991073
        coded = np.where(scene <= 1 / 12, np.sqrt(3 * scene), a * np.log(np.maximum(12 * scene - b, 1e-12)) + c)
    return np.clip(coded, 0, 1)


def srgb_light(pixels: np.ndarray) -> np.ndarray:
    """8-bit sRGB to linear light (white = 1)."""
    srgb = np.asarray(pixels, np.float64) / 255
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def hevc_video(pixels: np.ndarray, transfer: str | None = None, frames: int = 4, *, tagged: bool = True) -> bytes:
    """A lossless HEVC MP4 of the still picture ``pixels`` (8-bit sRGB, even sides): SDR (8-bit
    BT.709) or, with a ``transfer``, HDR as phones record it (Main 10, BT.2020; iPhones: HLG, HDR10
    cameras: PQ), the stream tagged with that curve or (``tagged`` False) mislabelled as SDR BT.709,
    which any reader takes at its word. Lossless, so that what a test sees is the colour conversion,
    not the codec (which loses more on HDR's narrower code range than on SDR at one quality setting)."""
    import av
    from av.video.reformatter import ColorRange, Colorspace, VideoReformatter

    h, w = pixels.shape[:2]
    if transfer is not None:
        signal = hdr_code(srgb_light(pixels), transfer)
        rgb = av.VideoFrame.from_ndarray((signal * 65535 + 0.5).astype(np.uint16), format="rgb48le")

    def picture() -> Any:  # a new frame each time: the encoder stamps the frames it is given
        if transfer is None:
            return av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
        return VideoReformatter().reformat(rgb, format="yuv420p10le", dst_colorspace=Colorspace.BT2020,
                                           dst_color_range=ColorRange.MPEG, threads=1)

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx265", rate=8, options={"x265-params": "log-level=none:lossless=1"})
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p" if transfer is None else "yuv420p10le"
        if transfer is not None:
            context = stream.codec_context  # FFmpeg's numbers: BT.2020's matrix (either way), limited range
            context.colorspace, context.color_range = 9, 1
            context.color_primaries, context.color_trc = (9, {"pq": 16, "hlg": 18}[transfer]) if tagged else (1, 1)
        write(container, stream, (picture() for _ in range(frames)))
    return buf.getvalue()


def p3_profile() -> bytes:
    """An ICC profile of Display P3 (an iPhone's photos): LittleCMS's own sRGB profile with P3's
    primaries (D50-adapted, as Apple's profile has them) in place of sRGB's; both spaces share sRGB's curve."""
    from PIL import ImageCms

    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    tags = {}
    for i in range(struct.unpack(">I", icc[128:132])[0]):
        signature, offset, _ = struct.unpack(">4sII", icc[132 + 12 * i : 144 + 12 * i])
        tags[signature] = offset
    primaries = {b"rXYZ": (0.5151, 0.2412, -0.0011), b"gXYZ": (0.2920, 0.6922, 0.0419), b"bXYZ": (0.1571, 0.0666, 0.7841)}
    for signature, xyz in primaries.items():  # an XYZ tag: "XYZ ", 4 reserved bytes, three s15.16 numbers
        icc[tags[signature] + 8 : tags[signature] + 20] = b"".join(struct.pack(">i", round(v * 65536)) for v in xyz)
    return bytes(icc)


def in_p3(pixels: np.ndarray) -> np.ndarray:
    """8-bit sRGB pixels as the same colours' 8-bit Display P3 numbers (both D65, sRGB's curve)."""
    srgb_to_xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    p3_to_xyz = np.array([[0.4866, 0.2657, 0.1982], [0.2290, 0.6917, 0.0793], [0.0000, 0.0451, 1.0439]])
    light = np.clip(srgb_light(pixels) @ (np.linalg.inv(p3_to_xyz) @ srgb_to_xyz).T, 0, 1)
    coded = np.where(light <= 0.0031308, 12.92 * light, 1.055 * light ** (1 / 2.4) - 0.055)
    return np.round(coded * 255).astype(np.uint8)


D50 = (0.9642, 1.0, 0.8249)  # the ICC profile connection space's white
SRGB_TO_XYZ_D50 = np.array([[0.4361, 0.3851, 0.1431], [0.2225, 0.7169, 0.0606], [0.0139, 0.0971, 0.7142]])
# linear-light reflectance in sRGB's R, G and B of each ink, cyan magenta yellow black, at full coverage
INKS = np.array([[0.02, 0.45, 0.80], [0.85, 0.06, 0.35], [0.95, 0.82, 0.04], [0.03, 0.03, 0.035]])


def icc_profile(device_class: bytes, space: bytes, pcs: bytes, tags: dict[bytes, bytes]) -> bytes:
    """An ICC version 2 profile: its 128-byte header, tag table and tags (each 4-byte aligned)."""
    table, data, start = b"", b"", 128 + 4 + 12 * len(tags)
    for signature, body in tags.items():
        table += struct.pack(">4sII", signature, start + len(data), len(body))
        data += body + b"\0" * (-len(body) % 4)
    header = struct.pack(">I4sI4s4s4s12s4s", start + len(data), b"", 0x02100000, device_class, space, pcs, b"", b"acsp")
    header = header.ljust(68, b"\0") + b"".join(_s15(v) for v in D50)  # the illuminant, after the intent
    return header.ljust(128, b"\0") + struct.pack(">I", len(tags)) + table + data


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _icc_text(text: str) -> bytes:  # textDescriptionType: ASCII, then empty Unicode and ScriptCode parts
    ascii_ = text.encode() + b"\0"
    return b"desc" + bytes(4) + struct.pack(">I", len(ascii_)) + ascii_ + bytes(8) + bytes(3) + bytes(67)


def grey_profile(gamma: float | None) -> bytes:
    """A grey ICC profile whose tone curve is ``gamma`` (Apple's old 1.8, or 2.2) or, with None,
    sRGB's own curve."""
    if gamma is None:  # parametricCurveType 3: sRGB's curve, g a b c d
        params = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
        curve = b"para" + bytes(4) + struct.pack(">HH", 3, 0) + b"".join(_s15(v) for v in params)
    else:
        curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256))
    white = b"XYZ " + bytes(4) + b"".join(_s15(v) for v in D50)
    return icc_profile(b"mntr", b"GRAY", b"XYZ ", {b"desc": _icc_text(f"grey {gamma}"), b"wtpt": white, b"kTRC": curve})


def printed(cmyk: np.ndarray) -> np.ndarray:
    """The 8-bit sRGB colour that 8-bit ink coverages ``cmyk`` (... x 4) print as with :data:`INKS`
    on white paper, their dots spreading as they do on a press (50% prints as 65%)."""
    ink = np.asarray(cmyk, np.float64)[..., None] / 255
    ink = ink + 0.6 * ink * (1 - ink)
    light = np.prod(1 - ink + ink * INKS, axis=-2)
    coded = np.where(light <= 0.0031308, 12.92 * light, 1.055 * light ** (1 / 2.4) - 0.055)
    return np.round(coded * 255).astype(np.uint8)


def cmyk_profile(points: int = 9) -> bytes:
    """A press's ICC profile for :func:`printed`: the CIELAB colour of every mix of inks on a grid of
    ``points`` coverages each (a lut16Type A2B0 table, as real CMYK profiles carry, here 40 KB)."""
    steps = np.round(np.linspace(0, 255, points))
    grid = np.stack(np.meshgrid(steps, steps, steps, steps, indexing="ij"), axis=-1).reshape(-1, 4)
    xyz = srgb_light(printed(grid)) @ SRGB_TO_XYZ_D50.T / D50
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    lab = np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=-1)
    coded = np.stack([lab[:, 0] * 652.8, (lab[:, 1] + 128) * 256, (lab[:, 2] + 128) * 256], axis=-1)  # ICC v2's 16-bit Lab
    identity = struct.pack(">HH", 0, 65535)  # two-entry tables in and out: straight lines
    table = (b"mft2" + bytes(4) + struct.pack(">BBBB", 4, 3, points, 0) + b"".join(_s15(v) for v in np.eye(3).flat)
             + struct.pack(">HH", 2, 2) + identity * 4 + np.clip(np.round(coded), 0, 65535).astype(">u2").tobytes()
             + identity * 3)
    white = b"XYZ " + bytes(4) + b"".join(_s15(v) for v in D50)
    return icc_profile(b"prtr", b"CMYK", b"Lab ", {b"desc": _icc_text("press"), b"wtpt": white, b"A2B0": table})


def separated(pixels: np.ndarray) -> np.ndarray:
    """Ink coverages (8-bit CMYK) for 8-bit RGB ``pixels`` as a simple separation makes them: black
    for half of what the three colours share, the rest in cyan, magenta and yellow."""
    rgb = np.asarray(pixels, np.float64) / 255
    black = (1 - rgb.max(axis=-1, keepdims=True)) / 2
    return np.round(np.concatenate([1 - rgb / (1 - black), black], axis=-1) * 255).astype(np.uint8)


def streamed(fmt: str, codec: str, frames: int = 40) -> bytes:
    """A video at 8 fps of brightening grey frames (frame ``i`` at ``6 i``) written as a browser's
    MediaRecorder or a live capture writes one, to an output it cannot seek back in: a WebM then
    never says how long it is, and an MPEG-TS starts its clock past zero."""
    import av

    class Pipe(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, b: bytes) -> int:  # type: ignore[override]
            self.data += b
            return len(b)

    out = Pipe()
    with av.open(out, "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        write(container, stream, (av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 6, np.uint8), format="rgb24")
                                  for i in range(frames)))
    return bytes(out.data)


# EXIF orientation -> how the stored picture was turned from upright (the inverse of the turn back)
STORED_TURNS = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_90",
                7: "TRANSVERSE", 8: "ROTATE_270"}


def tagged(picture: Any, fmt: str, orientation: int) -> bytes:
    """``picture`` saved as ``fmt`` with an EXIF orientation tag."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    picture.save(buf, fmt, exif=exif)
    return buf.getvalue()


def upright_photo() -> Any:
    """The test photo as an upright, not square Pillow image."""
    from PIL import Image

    return Image.open(io.BytesIO(photo())).convert("RGB").crop((0, 0, 512, 384))


TONES = (300.0, 1000.0, 3000.0)


def three_tones(rate: int, part_s: float = 30.0) -> np.ndarray:
    """Three tones one after another, ``part_s`` seconds each."""
    t = np.arange(int(part_s * rate)) / rate
    return np.concatenate([0.3 * np.sin(2 * np.pi * f * t) for f in TONES]).astype(np.float32)
