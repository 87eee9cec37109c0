"""Decoding sound into mono 16 kHz clips: libsndfile, dr_flac and PyAV, windows spread over long clips."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fusionrec.encoders.media.base import (
    SAMPLE_RATE,
    Clip,
    MediaLimits,
    Source,
    as_file,
    undecodable,
)
from fusionrec.schemas import MediaKind

if TYPE_CHECKING:
    pass


def _average(channels: Sequence[np.ndarray]) -> np.ndarray:
    """The mean of equally long channels, added as whole arrays: numpy's mean over the short axis
    of a time x channels array takes twenty times as long for stereo.

    >>> _average([np.array([1.0, 2.0], np.float32), np.array([3.0, 0.0], np.float32)]).tolist()
    [2.0, 1.0]
    """
    return channels[0] if len(channels) == 1 else sum(channels[1:], channels[0]) / np.float32(len(channels))


def to_mono(samples: np.ndarray, rate: int, max_s: float) -> np.ndarray:
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


def windows_clip(windows: Sequence[np.ndarray], seconds: float) -> Clip:
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


class TrackReader:
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
        # Channels are averaged and the rate brought to 16 kHz afterwards, once, on mono (to_mono):
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
        return to_mono(mono, self.rate, self.max_s)


def sound_stream(container: Any, video: Any = None) -> Any:
    """The audio stream a player would play (with ``video``, the one that goes with it), or None.

    FFmpeg's pick passes over a track flagged for the hearing or visually impaired (an audio
    description: a narrator describing the picture) and prefers the one flagged default, where the
    first track can be either of those, or a director's commentary.
    """
    return container.streams.best("audio", related=video) if container.streams.audio else None


def read_track(container: Any, sound: Any, max_s: float, start: float | None = None) -> np.ndarray | None:
    track = TrackReader(max_s, start)
    for frame in container.decode(sound):
        track.add(frame)
        if track.full:
            break
    return track.samples()


# After a seek, an AAC decoder's first frame lacks the one before it, which it overlaps with (Opus asks
# for 80 ms): decoding starts this much earlier and what comes before the window is dropped.
PREROLL_S = 0.1


def stream_duration(container: Any, stream: Any) -> float | None:
    """How long ``stream`` says it is (else the container), in seconds; None where neither says."""
    if stream.duration:
        return float(stream.duration * stream.time_base)
    return container.duration / 1_000_000 if container.duration else None  # AV_TIME_BASE


def stream_origin(stream: Any) -> float:
    """When ``stream`` starts, in seconds: an MPEG-TS clock, or a cut clip's, need not start at 0."""
    return float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0


def seek_to(container: Any, stream: Any, t: float) -> None:
    """Moves ``container`` to ``stream``'s last keyframe at or before ``t`` (seconds, stream time), the
    other streams left out of demuxing from then on: an MP4 demuxer then does not even read their
    packets, which lie between the stream's (a window of sound is not read with the video beside it)."""
    from av.stream import Discard

    for other in container.streams:
        other.discard = Discard.default if other is stream else Discard.all
    container.seek(int(t / stream.time_base), stream=stream)
    stream.codec_context.flush_buffers()


def decode_av_audio(container: Any, sound: Any, limits: MediaLimits, *, rewind: bool = False) -> Clip | None:
    """The audio of ``sound`` in an open PyAV container: read from where the container stands
    (from its start, having moved, with ``rewind``), or where it is longer than ``limits.max_audio_s``
    in windows spread over all of it (:func:`audio_windows`)."""
    duration = stream_duration(container, sound) or 0.0
    origin = stream_origin(sound)
    if limits.audio_windows < 2 or duration <= limits.max_audio_s:
        if not rewind:
            samples = read_track(container, sound, limits.max_audio_s)
        else:  # an AAC track's priming frame lies before its start, and is needed as any other pre-roll
            seek_to(container, sound, origin - PREROLL_S)
            samples = read_track(container, sound, limits.max_audio_s, origin)
        return Clip(samples) if samples is not None else None
    seconds = limits.max_audio_s / limits.audio_windows
    windows = []
    for start in audio_windows(duration, limits.max_audio_s, limits.audio_windows):
        seek_to(container, sound, origin + start - PREROLL_S)
        samples = read_track(container, sound, seconds, origin + start)
        windows.append(samples if samples is not None else np.zeros(0, np.float32))
    return windows_clip(windows, seconds)


def flac_clip(data: bytes, frames: int, rate: int, channels: int, max_s: float) -> Clip | None:
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
        return Clip(to_mono(out, rate, max_s))
    finally:
        lib.ma_dr_flac_close(flac)


def decode_audio(data: Source, limits: MediaLimits = MediaLimits()) -> Clip:
    """WAV/FLAC/OGG/MP3 through libsndfile (FLAC in memory read by dr_flac, :func:`flac_clip`); anything
    else libsndfile refuses (AAC, M4A, Opus in WebM) through FFmpeg. A clip longer than
    ``limits.max_audio_s`` is read in windows (:func:`audio_windows`)."""
    import soundfile

    try:
        with soundfile.SoundFile(as_file(data)) as f:
            if f.frames <= 0:
                raise ValueError("no audio frames")
            rate, max_s, n = f.samplerate, limits.max_audio_s, limits.audio_windows
            whole = f.frames <= max_s * rate
            if whole and f.format == "FLAC" and isinstance(data, bytes):
                clip = flac_clip(data, f.frames, rate, f.channels, max_s)
                if clip is not None:
                    return clip
            if n < 2 or whole or not f.seekable():
                return Clip(to_mono(f.read(min(f.frames, int(max_s * rate)), dtype="float32", always_2d=True), rate, max_s))
            windows = []
            for start in audio_windows(f.frames / rate, max_s, n):
                f.seek(round(start * rate))
                samples = f.read(int(max_s / n * rate), dtype="float32", always_2d=True)
                windows.append(to_mono(samples, rate, max_s) if len(samples) else np.zeros(0, np.float32))
            return windows_clip(windows, max_s / n)
    except soundfile.LibsndfileError:
        pass
    except Exception as exc:
        raise undecodable(MediaKind.AUDIO, exc) from exc
    import av

    try:
        with av.open(as_file(data)) as container:
            sound = sound_stream(container)
            clip = decode_av_audio(container, sound, limits) if sound is not None else None
            if clip is None:
                raise ValueError("no audio stream")
            return clip
    except Exception as exc:
        raise undecodable(MediaKind.AUDIO, exc) from exc

