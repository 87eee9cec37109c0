"""Decoding item media into what the encoders take: images, mono clips, sampled video frames.

Each decoder opens the bytes with the library the encoders rely on (Pillow; libsndfile via
soundfile, dr_flac via miniaudio and PyAV for compressed formats; FFmpeg via PyAV for video) and
refuses corrupt or mislabelled media with one clear reason (``media_undecodable``) before it reaches
a model. Decoding is CPU work done in the encoder worker's thread pool, so it runs beside the model,
not in front of it.
"""

from __future__ import annotations

import functools
import io
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from fusionrec.schemas import ErrorCode, EventError, MediaKind

from fusionrec.encoders.media.color import hdr_to_sdr, hdr_transfer, to_srgb

if TYPE_CHECKING:
    from PIL.Image import Image

MAX_IMAGE_PIXELS = 64_000_000  # refuse decompression bombs
SAMPLE_RATE = 16_000  # every clip is resampled to this before feature extraction
IMAGE_DRAFT = 320  # JPEGs decode straight at about this size: models look at 224 pixels

# Media as fetched: its bytes, or a seekable binary file of them, of which the decoders read what they
# sample (a long video's segments, a long clip's windows) and no more.
Source = bytes | IO[bytes]


def _file(source: Source) -> IO[bytes]:
    """``source`` as a file at its start."""
    if isinstance(source, bytes):
        return io.BytesIO(source)
    source.seek(0)
    return source


def _head(source: Source, n: int = 8) -> bytes:
    if isinstance(source, bytes):
        return source[:n]
    source.seek(0)
    return source.read(n)


@dataclass(frozen=True)
class Clip:
    """Mono audio, float32 in [-1, 1], at :data:`SAMPLE_RATE`: the whole clip (1-D), or for a clip
    longer than :attr:`MediaLimits.max_audio_s`, windows spread over it, one per row."""

    samples: np.ndarray
    sample_rate: int = SAMPLE_RATE

    @property
    def seconds(self) -> float:
        """How much audio it holds (all windows together)."""
        return self.samples.size / self.sample_rate


@dataclass(frozen=True)
class Video:
    """Frames sampled evenly over a video, and its sound track if it has one."""

    frames: list[np.ndarray] = field(default_factory=list)  # H x W x 3 uint8 RGB
    audio: Clip | None = None


@dataclass(frozen=True)
class MediaLimits:
    """How much of a clip or video is looked at: bounds the decode cost of a long file."""

    max_audio_s: float = 30.0
    # A longer clip is heard in this many windows spread over all of it, max_audio_s in all: a song's
    # or a podcast's first half minute is its intro, the same for every episode of a show.
    audio_windows: int = 3
    # A video up to this long is read through from its start, its sound decoded on the way; a longer
    # one's frames and sound windows are reached by seeking, spread over all of it either way.
    max_video_s: float = 60.0
    video_frames: int = 8
    # Short side larger sampled frames are scaled down to by FFmpeg while still in YUV (the image
    # model's input size): one C pass instead of an RGB frame at full size copied and resized again.
    frame_size: int | None = None


def _undecodable(kind: MediaKind, exc: Exception) -> EventError:
    return EventError(ErrorCode.MEDIA_UNDECODABLE, f"{kind} does not decode: {type(exc).__name__}: {exc}"[:500])


def decode_image(data: bytes) -> Image:
    """The picture upright, in 8-bit RGB, as a viewer shows it.

    Upright: a camera stores a picture as its sensor saw it and says in its EXIF orientation tag
    how to turn it (a phone held upright takes a landscape picture tagged "turn 90 degrees
    clockwise"); a model shown it on its side sees something else. Transparent parts are shown on
    white, as shops show cut-out products (dropping the alpha channel would show whatever colour
    the transparent pixels happen to store, often black). 16-bit grey is scaled to 8 bits, where
    Pillow's conversion would clip it (everything above 255 of 65535 white). Colours are sRGB: a
    picture whose ICC profile says otherwise (an iPhone's Display P3, a CMYK JPEG prepared for print,
    grey on another tone curve) is converted (:func:`~fusionrec.encoders.media.color.to_srgb`).
    HEIC/HEIF, an iPhone's default, decodes through pillow-heif.
    """
    from PIL import ExifTags
    from PIL import Image as PILImage

    try:
        img = _open_picture(data)
        if img.width * img.height > MAX_IMAGE_PIXELS:
            raise ValueError(f"{img.width}x{img.height} is more than {MAX_IMAGE_PIXELS} pixels")
        # JPEG (and HEIF with a large enough thumbnail): decode at a fraction of full size
        img.draft("RGB", (IMAGE_DRAFT, IMAGE_DRAFT))
        img.load()  # first: Pillow turns a TIFF upright as it loads it, and then drops its tag
        turn = _exif_turns().get(img.getexif().get(ExifTags.Base.Orientation, 1))
        icc = img.info.get("icc_profile")
        if img.mode.startswith("I;16"):
            img = PILImage.fromarray((np.asarray(img, dtype=np.uint32) >> 8).astype(np.uint8), "L")
        if img.mode in ("LA", "La") or (img.mode == "L" and "transparency" in img.info):
            # on white in grey, which keeps the picture in the mode its profile is for
            la = img.convert("LA")
            img = PILImage.new("L", la.size, 255)
            img.paste(la.getchannel("L"), mask=la.getchannel("A"))
        elif img.mode in ("RGBA", "PA", "RGBa") or "transparency" in img.info:
            rgba = img.convert("RGBA")
            img = PILImage.alpha_composite(PILImage.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
        rgb = to_srgb(img, icc)
        return rgb.transpose(turn) if turn is not None else rgb
    except Exception as exc:  # Pillow raises many types for bad bytes
        raise _undecodable(MediaKind.IMAGE, exc) from exc


def _open_picture(data: bytes) -> Image:
    """Pillow's image of ``data``; HEIF through pillow-heif, whose plugin (and 25 MB of codec
    libraries) is loaded when the first picture in ISO media (``ftyp``) that Pillow cannot open comes."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        return PILImage.open(io.BytesIO(data))
    except UnidentifiedImageError:
        if data[4:8] != b"ftyp":
            raise
    _open_heif_too()
    return PILImage.open(io.BytesIO(data))


@functools.cache
def _open_heif_too() -> None:
    """Lets Pillow open HEIF. libheif applies the file's own turn (its irot/imir boxes, which HEIF
    readers follow instead of EXIF), and pillow-heif then says orientation 1 in the EXIF it hands on,
    so :func:`decode_image` does not turn an iPhone's picture a second time."""
    import pillow_heif

    pillow_heif.register_heif_opener()


@functools.cache
def _exif_turns() -> dict[int, Any]:
    """EXIF orientation (2 to 8) -> the Pillow transpose that makes the picture upright (as
    ``PIL.ImageOps.exif_transpose``, which also copies pictures that need no turn)."""
    from PIL.Image import Transpose as T

    return {2: T.FLIP_LEFT_RIGHT, 3: T.ROTATE_180, 4: T.FLIP_TOP_BOTTOM, 5: T.TRANSPOSE, 6: T.ROTATE_270,
            7: T.TRANSVERSE, 8: T.ROTATE_90}


def _average(channels: Sequence[np.ndarray]) -> np.ndarray:
    """The mean of equally long channels, added as whole arrays: numpy's mean over the short axis
    of a time x channels array takes twenty times as long for stereo.

    >>> _average([np.array([1.0, 2.0], np.float32), np.array([3.0, 0.0], np.float32)]).tolist()
    [2.0, 1.0]
    """
    return channels[0] if len(channels) == 1 else sum(channels[1:], channels[0]) / np.float32(len(channels))


def _mono(samples: np.ndarray, rate: int, max_s: float) -> np.ndarray:
    """At most ``max_s`` seconds of ``samples`` (time x channels, or mono) as mono at :data:`SAMPLE_RATE`."""
    import soxr

    samples = samples[: int(max_s * rate)]
    if samples.ndim == 2:
        samples = _average([samples[:, c] for c in range(samples.shape[1])])
    if rate != SAMPLE_RATE:
        samples = soxr.resample(samples, rate, SAMPLE_RATE)
    if not len(samples) or not np.isfinite(samples).all():
        raise ValueError("no finite audio samples")
    return np.ascontiguousarray(samples, dtype=np.float32)


def _windows_clip(windows: Sequence[np.ndarray], seconds: float) -> Clip:
    """Windows of ``seconds`` of mono audio, one per row, cut to the shortest. Where a file ends before
    its header says (a VBR MP3's estimated length), a window it cut to less than half is left out."""
    whole = [w for w in windows if len(w) >= seconds * SAMPLE_RATE / 2] or [w for w in windows if len(w)]
    if not whole:
        raise ValueError("no audio samples where the file says it has them")
    length = min(len(w) for w in whole)
    return Clip(np.stack([w[:length] for w in whole]))


def audio_windows(duration_s: float, max_s: float, n: int) -> list[float]:
    """Where each of ``n`` windows of ``max_s / n`` seconds starts in a clip of ``duration_s``
    (longer than ``max_s``): one in the middle of each of ``n`` equal parts.

    >>> audio_windows(90.0, 30.0, 3)  # parts [0, 30), [30, 60), [60, 90): their middle 10 s
    [10.0, 40.0, 70.0]
    >>> audio_windows(240.0, 30.0, 3)  # a four-minute song: its opening, middle and ending
    [35.0, 115.0, 195.0]
    """
    length, part = max_s / n, duration_s / n
    return [part * (i + 0.5) - length / 2 for i in range(n)]


class _TrackReader:
    """Collects an audio stream's frames as mono float32, ``max_s`` seconds from ``start`` (stream
    time, seconds; frames before it, decoded to prime the decoder after a seek, are dropped);
    :meth:`samples` resamples to :data:`SAMPLE_RATE`."""

    def __init__(self, max_s: float, start: float | None = None) -> None:
        self.max_s, self.start = max_s, start
        self.rate = 0  # the stream's, from its first frame
        self.need = self.have = 0
        self._resampler: Any = None
        self._sums: list[np.ndarray] = []  # per frame, its channels added up
        self._channels: list[int] = []  # and how many there were

    @property
    def full(self) -> bool:
        return self.rate > 0 and self.have >= self.need

    def add(self, frame: Any) -> None:
        import av

        if not self.rate:
            self.rate, self.need = frame.sample_rate, int(self.max_s * frame.sample_rate)
        if frame.sample_rate == self.rate and frame.format.name in ("flt", "fltp"):  # AAC and MP3 decode to fltp
            self._add(frame)
            return
        # Other sample formats, or a rate that changes part way: to float at the stream's first rate.
        # Channels are averaged and the rate brought to 16 kHz afterwards, once, on mono (_mono):
        # FFmpeg's resampler on every channel costs six times as much.
        if self._resampler is None:
            self._resampler = av.AudioResampler(format="fltp", rate=self.rate)
        for out in self._resampler.resample(frame):
            self._add(out)

    def _add(self, frame: Any) -> None:
        # Each frame's channels are added up as it comes, while its buffers are still in the cache: kept
        # as views and joined at the end, a 20 s 48 kHz stereo track was read back from 15 MB of frames
        # long gone from the cache. The sums are divided once, in samples().
        n, channels = frame.samples, frame.layout.nb_channels
        skip = 0
        if self.start is not None and frame.time is not None:
            skip = min(n, max(0, round((self.start - frame.time) * self.rate)))
        if skip == n:
            return
        if frame.format.is_planar:
            views = [np.frombuffer(plane, np.float32, count=n)[skip:] for plane in frame.planes[:channels]]
        else:
            interleaved = np.frombuffer(frame.planes[0], np.float32, count=n * channels)
            views = [interleaved[skip * channels + c :: channels] for c in range(channels)]
        total = views[0] if channels == 1 else np.add(views[0], views[1])
        for view in views[2:]:
            total += view
        self._sums.append(total)
        self._channels.append(channels)
        self.have += n - skip

    def samples(self) -> np.ndarray | None:
        if not self._sums:
            return None
        if len(set(self._channels)) == 1:
            mono = np.concatenate(self._sums)
            if self._channels[0] > 1:
                mono /= np.float32(self._channels[0])
        else:  # the channel layout changed part way
            mono = np.concatenate([s / np.float32(c) for s, c in zip(self._sums, self._channels, strict=True)])
        return _mono(mono, self.rate, self.max_s)


def _sound(container: Any, video: Any = None) -> Any:
    """The audio stream a player would play (with ``video``, the one that goes with it), or None.

    FFmpeg's pick passes over a track flagged for the hearing or visually impaired (an audio
    description: a narrator describing the picture) and prefers the one flagged default, where the
    first track can be either of those, or a director's commentary.
    """
    return container.streams.best("audio", related=video) if container.streams.audio else None


def _read_track(container: Any, sound: Any, max_s: float, start: float | None = None) -> np.ndarray | None:
    track = _TrackReader(max_s, start)
    for frame in container.decode(sound):
        track.add(frame)
        if track.full:
            break
    return track.samples()


# After a seek, an AAC decoder's first frame lacks the one before it, which it overlaps with (Opus asks
# for 80 ms): decoding starts this much earlier and what comes before the window is dropped.
PREROLL_S = 0.1


def _duration(container: Any, stream: Any) -> float | None:
    """How long ``stream`` says it is (else the container), in seconds; None where neither says."""
    if stream.duration:
        return float(stream.duration * stream.time_base)
    return container.duration / 1_000_000 if container.duration else None  # AV_TIME_BASE


def _origin(stream: Any) -> float:
    """When ``stream`` starts, in seconds: an MPEG-TS clock, or a cut clip's, need not start at 0."""
    return float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0


def _seek(container: Any, stream: Any, t: float) -> None:
    """Moves ``container`` to ``stream``'s last keyframe at or before ``t`` (seconds, stream time), the
    other streams left out of demuxing from then on: an MP4 demuxer then does not even read their
    packets, which lie between the stream's (a window of sound is not read with the video beside it)."""
    from av.stream import Discard

    for other in container.streams:
        other.discard = Discard.default if other is stream else Discard.all
    container.seek(int(t / stream.time_base), stream=stream)
    stream.codec_context.flush_buffers()


def _av_audio(container: Any, sound: Any, limits: MediaLimits, *, rewind: bool = False) -> Clip | None:
    """The audio of ``sound`` in an open PyAV container: read from where the container stands
    (from its start, having moved, with ``rewind``), or where it is longer than ``limits.max_audio_s``
    in windows spread over all of it (:func:`audio_windows`)."""
    duration = _duration(container, sound) or 0.0
    origin = _origin(sound)
    if limits.audio_windows < 2 or duration <= limits.max_audio_s:
        if not rewind:
            samples = _read_track(container, sound, limits.max_audio_s)
        else:  # an AAC track's priming frame lies before its start, and is needed as any other pre-roll
            _seek(container, sound, origin - PREROLL_S)
            samples = _read_track(container, sound, limits.max_audio_s, origin)
        return Clip(samples) if samples is not None else None
    seconds = limits.max_audio_s / limits.audio_windows
    windows = []
    for start in audio_windows(duration, limits.max_audio_s, limits.audio_windows):
        _seek(container, sound, origin + start - PREROLL_S)
        samples = _read_track(container, sound, seconds, origin + start)
        windows.append(samples if samples is not None else np.zeros(0, np.float32))
    return _windows_clip(windows, seconds)


def _flac(data: bytes, frames: int, rate: int, channels: int, max_s: float) -> Clip | None:
    """The FLAC file ``data`` decoded by dr_flac (through miniaudio), where it finds the ``frames``,
    ``rate`` and ``channels`` libsndfile found in its header and reads through to its last frame;
    None otherwise, and libsndfile reads it (and says what is wrong).

    A FLAC file is lossless, so both decoders give the same samples, to the bit (tested), and dr_flac
    takes far less CPU than libsndfile's libFLAC (``bench/audio.py``: a 2-4 s 16 kHz clip read and
    prepared in 0.49 against 0.78 ms, a 30 s 44.1 kHz stereo preview in 16 against 30). It is laxer
    about a damaged header (it reads on where libFLAC refuses), so libsndfile opens the file first.
    """
    # miniaudio's own wrappers copy the samples into an array.array; its compiled module (lib) reads
    # them straight into the array the features are computed on.
    from miniaudio import ffi, lib

    flac = lib.ma_dr_flac_open_memory(data, len(data), ffi.NULL)
    if not flac:
        return None
    try:
        if (flac.totalPCMFrameCount, flac.sampleRate, flac.channels) != (frames, rate, channels):
            return None
        out = np.empty((frames, channels), np.float32)
        if lib.ma_dr_flac_read_pcm_frames_f32(flac, frames, ffi.cast("float *", ffi.from_buffer(out))) != frames:
            return None  # dr_flac passes over a frame that fails its CRC: the file then comes out short
        return Clip(_mono(out, rate, max_s))
    finally:
        lib.ma_dr_flac_close(flac)


def decode_audio(data: Source, limits: MediaLimits = MediaLimits()) -> Clip:
    """WAV/FLAC/OGG/MP3 through libsndfile (FLAC in memory read by dr_flac, :func:`_flac`); anything
    else libsndfile refuses (AAC, M4A, Opus in WebM) through FFmpeg. A clip longer than
    ``limits.max_audio_s`` is read in windows (:func:`audio_windows`)."""
    import soundfile

    try:
        with soundfile.SoundFile(_file(data)) as f:
            if f.frames <= 0:
                raise ValueError("no audio frames")
            rate, max_s, n = f.samplerate, limits.max_audio_s, limits.audio_windows
            whole = f.frames <= max_s * rate
            if whole and f.format == "FLAC" and isinstance(data, bytes):
                clip = _flac(data, f.frames, rate, f.channels, max_s)
                if clip is not None:
                    return clip
            if n < 2 or whole or not f.seekable():
                return Clip(_mono(f.read(min(f.frames, int(max_s * rate)), dtype="float32", always_2d=True), rate, max_s))
            windows = []
            for start in audio_windows(f.frames / rate, max_s, n):
                f.seek(round(start * rate))
                samples = f.read(int(max_s / n * rate), dtype="float32", always_2d=True)
                windows.append(_mono(samples, rate, max_s) if len(samples) else np.zeros(0, np.float32))
            return _windows_clip(windows, max_s / n)
    except soundfile.LibsndfileError:
        pass
    except Exception as exc:
        raise _undecodable(MediaKind.AUDIO, exc) from exc
    import av

    try:
        with av.open(_file(data)) as container:
            sound = _sound(container)
            clip = _av_audio(container, sound, limits) if sound is not None else None
            if clip is None:
                raise ValueError("no audio stream")
            return clip
    except Exception as exc:
        raise _undecodable(MediaKind.AUDIO, exc) from exc


def sample_times(keyframes: Sequence[float], duration_s: float, n: int) -> list[float]:
    """When to take each of ``n`` frames spread over a clip, one per equal segment (see
    :func:`segment_time`).

    >>> sample_times([0.0, 1.5, 3.0, 4.5, 6.0, 7.5], 8.0, 4)  # segments [0, 2), [2, 4), [4, 6), [6, 8)
    [1.5, 3.0, 4.5, 7.5]
    >>> sample_times([0.0], 8.0, 4)  # one keyframe, at the start
    [0.0, 3.0, 5.0, 7.0]
    """
    segment = duration_s / n
    return [segment_time(keyframes, segment * i, segment * (i + 1)) for i in range(n)]


def segment_time(keyframes: Sequence[float], start: float, end: float) -> float:
    """The frame to take for the segment ``[start, end)``: a keyframe inside it if it has one (the one
    nearest its middle), else the middle itself.

    A keyframe decodes alone, a frame between keyframes needs every frame back to the last one: in
    a long video with keyframes every second or two, this decodes one frame per segment, not dozens.
    """
    middle = (start + end) / 2
    inside = [k for k in keyframes if start <= k < end]
    return min(inside, key=lambda k: abs(k - middle)) if inside else middle


def _frames_at(codec: Any, packets: Sequence[Any], times: Sequence[float], targets: Sequence[float]) -> list[Any]:
    """The first frame at or after each target time (ascending), each decoded from the last keyframe
    before it: the packets between one target's frame and the next target's keyframe are skipped.
    Where the stream ends first, its last frame stands in; None where nothing decoded."""
    keys = [i for i, packet in enumerate(packets) if packet.is_keyframe]
    ready: deque[Any] = deque()  # decoded frames not yet passed, in presentation order
    fed, last, picked = -1, None, []
    for target in targets:
        start = max((i for i in keys if times[i] <= target), default=0)
        while True:
            # a microsecond of slack: the frame's time and the packet's are rounded apart
            while ready and (ready[0].time or 0.0) < target - 1e-6:
                last = ready.popleft()
            if ready or fed + 1 >= len(packets):
                break
            if start > fed + 1:  # nothing before this keyframe is needed
                if fed >= 0:
                    codec.flush_buffers()
                fed = start - 1
            fed += 1
            ready.extend(packets[fed].decode())
        if ready:
            last = ready[0]
        picked.append(last)
    return picked


def scaled_size(width: int, height: int, short_side: int | None, pixel_aspect: float = 1.0) -> tuple[int, int]:
    """A frame's size as it is shown, its width stretched by the shape of its pixels (anamorphic
    video: HDV's 1440 x 1080 pixels are each 4/3 as wide as tall), once its short side is at most
    ``short_side`` (unchanged for None). Smaller frames keep their size: the image encoder enlarges
    them on its device for less than FFmpeg's scaler charges the CPU.

    >>> scaled_size(1920, 1080, 224), scaled_size(160, 160, 224), scaled_size(640, 480, None)
    ((398, 224), (160, 160), (640, 480))
    >>> scaled_size(1440, 1080, 224, 4 / 3), scaled_size(48, 48, None, 4 / 3)
    ((398, 224), (64, 48))
    """
    width = max(1, round(width * pixel_aspect))
    if short_side is None or min(width, height) <= short_side:
        return width, height
    scale = short_side / min(width, height)
    return max(short_side, round(width * scale)), max(short_side, round(height * scale))


def upright(frame: np.ndarray, rotation: float) -> np.ndarray:
    """``frame`` turned ``rotation`` degrees counter-clockwise, as its stream's display matrix says
    to show it (FFmpeg's convention, and PyAV's ``VideoFrame.rotation``): a phone filming upright
    stores landscape frames and a matrix that turns them 90 degrees clockwise (-90).

    >>> upright(np.array([[1, 2], [3, 4]]), -90).tolist(), upright(np.array([[1, 2]]), 90).tolist()
    ([[3, 1], [4, 2]], [[2], [1]])
    """
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(frame, turns)) if turns else frame


def container_format(data: bytes) -> str | None:
    """The FFmpeg demuxer for ISO media (MP4, MOV) and Matroska (MKV, WebM) by their first bytes,
    which spares a video the format probe (a third of opening it); None lets FFmpeg probe.

    >>> container_format(b"\\x00\\x00\\x00\\x18ftypmp42"), container_format(b"\\x1a\\x45\\xdf\\xa3"), container_format(b"RIFF")
    ('mp4', 'matroska', None)
    """
    if data[4:8] == b"ftyp":
        return "mp4"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    return None


def _stamp(packet: Any, time_base: float) -> float:
    stamp = packet.pts if packet.pts is not None else packet.dts
    return stamp * time_base if stamp is not None else math.inf  # none: the packet that drains the decoder


def _frames_from_start(container: Any, video: Any, sound: Any, track: _TrackReader | None,
                       duration: float | None, limits: MediaLimits) -> list[Any]:
    """The frames to take from a video no longer than ``limits.max_video_s`` (or not saying how long it
    is: its first ``max_video_s``), read through from its start, feeding ``track`` (if given) the
    ``sound`` stream meanwhile.

    Demuxing comes first (cheap: no decoding), so the frames to take are chosen knowing where the
    keyframes are; then only what leads to them is decoded.
    """
    time_base, origin = float(video.time_base), _origin(video)
    window = min(duration, limits.max_video_s) if duration else limits.max_video_s
    packets: list[Any] = []
    times: list[float] = []
    collecting = True
    for packet in container.demux(*((video, sound) if track is not None else (video,))):
        if packet.stream is not video:
            if not track.full:  # type: ignore[union-attr]
                for frame in packet.decode():
                    track.add(frame)  # type: ignore[union-attr]
        elif collecting:
            t = _stamp(packet, time_base)
            packets.append(packet)
            times.append(t)
            collecting = not (packet.is_keyframe and t - origin >= window)
        if not collecting and (track is None or track.full):
            break
    if not duration:
        # A streamed file (a browser's MediaRecorder WebM) does not say how long it is: the window
        # ends with its last frame, not at max_video_s with the last frame standing in for every
        # sample past it.
        ends = [t + (packet.duration or 0) * time_base for packet, t in zip(packets, times, strict=True)
                if t != math.inf]
        last = max(ends, default=origin) - origin
        if last > 0:
            window = min(window, last)
    keyframes = [t - origin for packet, t in zip(packets, times, strict=True)
                 if packet.is_keyframe and t - origin < window]
    targets = [origin + t for t in sample_times(keyframes, window, limits.video_frames)]
    return _frames_at(video.codec_context, packets, times, targets)


def _frames_spread(container: Any, video: Any, duration: float, limits: MediaLimits) -> list[Any]:
    """The frames to take from a video longer than ``limits.max_video_s``, by the rule of
    :func:`sample_times` over all of it (see :func:`_segment_frame`); None where nothing decoded."""
    n = limits.video_frames
    segment, budget = duration / n, limits.max_video_s / n
    return [_segment_frame(container, video, segment * i, segment * (i + 1), budget) for i in range(n)]


def _segment_frame(container: Any, video: Any, start: float, end: float, budget: float) -> Any:
    """The frame :func:`segment_time` picks for ``[start, end)``, reached by seeking: to the last
    keyframe before the middle, then demuxing on to the first keyframe after it; the one of the two
    nearer the middle is decoded if it lies inside the segment, else the frame at the middle, from
    the one before.

    The seek goes by decoding time: where a keyframe is shown later than it is decoded (B-frames),
    one shown just past a middle can stand for the one before it, as it is the nearer unless the
    delay is half the keyframes' spacing. Where keyframes are far apart (a screen recording may hold
    one), the cost stays what reading through ``max_video_s`` costs at most: a middle is decoded only
    from a keyframe at most ``budget`` seconds before it, else a keyframe inside the segment found by
    a seek to its end, or that keyframe before it, stands in; and demuxing stops ``budget`` seconds
    and a segment past it.
    """
    origin, middle = _origin(video), (start + end) / 2
    packets, times = _demux_from(container, video, origin + middle, lambda packet, t, first: (
        (packet.is_keyframe and t - origin >= middle) or t - origin >= end or t - first > end - start + budget))
    if not packets:
        return None
    keyframes = [t - origin for packet, t in zip(packets, times, strict=True) if packet.is_keyframe]
    target = origin + segment_time(keyframes, start, end)
    if target - times[0] > budget and target - origin not in keyframes:
        if times[-1] - origin < end:  # demuxing stopped short of the segment's end
            later, at = _demux_from(container, video, origin + end, lambda packet, t, first: True)
            if later and middle <= at[0] - origin < end:
                packets, times = later, at
        target = times[0]
    if times[-1] != math.inf:  # not the end of the stream, which drains the decoder itself
        packets, times = [*packets, _Drain(video)], [*times, math.inf]
    return _frames_at(video.codec_context, packets, times, [target])[0]


def _demux_from(container: Any, video: Any, t: float,
                last: Callable[[Any, float, float], bool]) -> tuple[list[Any], list[float]]:
    """``video``'s packets and their times from its last keyframe at or before ``t`` on to the one that
    ``last(packet, its time, the keyframe's time)`` says is the last."""
    _seek(container, video, t)
    time_base = float(video.time_base)
    packets: list[Any] = []
    times: list[float] = []
    for packet in container.demux(video):
        if not packets and not packet.is_keyframe:
            continue  # a seek by bytes (MPEG-TS) can land between keyframes: nothing there decodes
        packets.append(packet)
        times.append(_stamp(packet, time_base))
        if last(packet, times[-1], times[0]):
            break
    return packets, times


class _Drain:
    """Stands for the end of the stream after the last packet demuxed: a decoder holds frames back
    (B-frames), so a keyframe demuxed last comes out only once it is drained."""

    is_keyframe = False

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def decode(self) -> list[Any]:
        import av

        # An empty packet drains the decoder as the demuxer's last one does, and carries the time
        # base the frames' times are read in (a bare decode(None) leaves them without).
        packet = av.Packet()
        packet.time_base = self.stream.time_base
        return self.stream.codec_context.decode(packet)


def decode_video(data: Source, limits: MediaLimits = MediaLimits()) -> Video:
    """``limits.video_frames`` frames spread over a video (see :func:`sample_times`), and its sound
    track as :func:`decode_audio` hears a clip. A video up to ``limits.max_video_s`` long is read
    through from its start, the sound decoded on the way; a longer one is reached by seeking, so a
    film costs about what a short clip does."""
    import av
    from av.video.reformatter import Interpolation, VideoReformatter

    try:
        with av.open(_file(data), format=container_format(_head(data))) as container:
            if not container.streams.video:
                raise ValueError("no video stream")
            # FFmpeg's pick, as players make it: a cover picture stored as a one-frame video track can
            # come first (an MKV's cover art), and would be sampled in place of the moving stream.
            video = container.streams.best("video")
            # No frame threading: it buffers a frame per thread before the first comes out, which costs
            # more than it saves when a few frames are taken and many videos decode side by side.
            video.codec_context.thread_count = 1  # the worker decodes many videos side by side already
            sound = _sound(container, video)
            duration = _duration(container, video)
            sound_windows = sound is not None and limits.audio_windows > 1 and (
                (_duration(container, sound) or 0.0) > limits.max_audio_s)
            if duration and duration > limits.max_video_s:
                picked = [f for f in _frames_spread(container, video, duration, limits) if f is not None]
                audio = _av_audio(container, sound, limits, rewind=True) if sound is not None else None
            else:
                track = _TrackReader(limits.max_audio_s) if sound is not None and not sound_windows else None
                picked = _frames_from_start(container, video, sound, track, duration, limits)
                if sound_windows:  # read after the frames, by seeking
                    audio = _av_audio(container, sound, limits)
                else:
                    samples = track.samples() if track is not None else None
                    audio = Clip(samples) if samples is not None else None
            if not picked or picked[-1] is None:
                raise ValueError("no decodable video frame")
            # One converter for all frames: a frame's own to_image() sets up a new one every call.
            # One thread: by default swscale starts a pool as large as the host's cores for every
            # converter, i.e. every video, then wakes them all to split a small frame.
            reformatter = VideoReformatter()
            pixel_aspect = float(video.sample_aspect_ratio or 1)  # 0/1: not said, square
            converted: dict[int, np.ndarray] = {}  # a frame picked twice (the stream ended early) once
            frames = []
            for frame in picked:
                if id(frame) not in converted:
                    width, height = scaled_size(frame.width, frame.height, limits.frame_size, pixel_aspect)
                    # HDR (PQ, HLG) leaves the converter in 16 bits on its own curve and is brought to SDR here
                    transfer = hdr_transfer(frame.color_trc)
                    rgb = reformatter.reformat(
                        frame, width=width, height=height, format="rgb48le" if transfer else "rgb24",
                        interpolation=Interpolation.BILINEAR, threads=1,
                    ).to_ndarray()
                    if transfer:
                        rgb = hdr_to_sdr(rgb, transfer, frame.color_primaries)
                    converted[id(frame)] = upright(rgb, frame.rotation)
                frames.append(converted[id(frame)])
        return Video(frames=frames, audio=audio)
    except EventError:
        raise
    except Exception as exc:
        raise _undecodable(MediaKind.VIDEO, exc) from exc


def decode_media(kind: MediaKind, source: Source, limits: MediaLimits = MediaLimits()) -> Any:
    """Decoded content of ``source`` as ``kind``, or :class:`EventError` (``media_undecodable``).

    A file that stopped short (a fetcher's reader that reached its byte limit or lost the network) says
    why in its ``error`` attribute: that is the reason then, not what the cut-off file looked like, and
    also where the decoder made do with what it got.
    """
    try:
        if kind is MediaKind.IMAGE:
            content: Any = decode_image(source if isinstance(source, bytes) else _file(source).read())
        elif kind is MediaKind.AUDIO:
            content = decode_audio(source, limits)
        else:
            content = decode_video(source, limits)
    except EventError as exc:
        failure = getattr(source, "error", None)
        if failure is None:
            raise
        raise failure from exc
    if (failure := getattr(source, "error", None)) is not None:
        raise failure
    return content
