"""Decoding video into frames sampled over the clip (and its sound track), through PyAV/FFmpeg."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fusionrec.encoders.media.base import (
    Clip,
    MediaLimits,
    Source,
    Video,
    as_file,
    head_bytes,
    undecodable,
    upright,
)
from fusionrec.encoders.media.color import hdr_to_sdr, hdr_transfer
from fusionrec.schemas import EventError, MediaKind

if TYPE_CHECKING:
    pass
from fusionrec.encoders.media.audio import (
    TrackReader,
    decode_av_audio,
    seek_to,
    sound_stream,
    stream_duration,
    stream_origin,
)


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


def frames_at(codec: Any, packets: Sequence[Any], times: Sequence[float], targets: Sequence[float]) -> list[Any]:
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


def _frames_from_start(container: Any, video: Any, sound: Any, track: TrackReader | None,
                       duration: float | None, limits: MediaLimits) -> list[Any]:
    """The frames to take from a video no longer than ``limits.max_video_s`` (or not saying how long it
    is: its first ``max_video_s``), read through from its start, feeding ``track`` (if given) the
    ``sound`` stream meanwhile.

    Demuxing comes first (cheap: no decoding), so the frames to take are chosen knowing where the
    keyframes are; then only what leads to them is decoded.
    """
    time_base, origin = float(video.time_base), stream_origin(video)
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
    return frames_at(video.codec_context, packets, times, targets)


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
    origin, middle = stream_origin(video), (start + end) / 2
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
    return frames_at(video.codec_context, packets, times, [target])[0]


def _demux_from(container: Any, video: Any, t: float,
                last: Callable[[Any, float, float], bool]) -> tuple[list[Any], list[float]]:
    """``video``'s packets and their times from its last keyframe at or before ``t`` on to the one that
    ``last(packet, its time, the keyframe's time)`` says is the last."""
    seek_to(container, video, t)
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
        with av.open(as_file(data), format=container_format(head_bytes(data))) as container:
            if not container.streams.video:
                raise ValueError("no video stream")
            # FFmpeg's pick, as players make it: a cover picture stored as a one-frame video track can
            # come first (an MKV's cover art), and would be sampled in place of the moving stream.
            video = container.streams.best("video")
            # No frame threading: it buffers a frame per thread before the first comes out, which costs
            # more than it saves when a few frames are taken and many videos decode side by side.
            video.codec_context.thread_count = 1  # the worker decodes many videos side by side already
            sound = sound_stream(container, video)
            duration = stream_duration(container, video)
            sound_windows = sound is not None and limits.audio_windows > 1 and (
                (stream_duration(container, sound) or 0.0) > limits.max_audio_s)
            if duration and duration > limits.max_video_s:
                picked = [f for f in _frames_spread(container, video, duration, limits) if f is not None]
                audio = decode_av_audio(container, sound, limits, rewind=True) if sound is not None else None
            else:
                track = TrackReader(limits.max_audio_s) if sound is not None and not sound_windows else None
                picked = _frames_from_start(container, video, sound, track, duration, limits)
                if sound_windows:  # read after the frames, by seeking
                    audio = decode_av_audio(container, sound, limits)
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
        raise undecodable(MediaKind.VIDEO, exc) from exc

