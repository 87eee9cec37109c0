"""Decoding checks for item media: does this image, audio clip or video actually decode?

Each check opens the bytes with the decoder the encoders use (Pillow, libsndfile via soundfile,
FFmpeg via PyAV) and reads a little of the content, so corrupt or mislabelled media is refused with
one clear reason before it reaches a model.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from fusionrec.schemas import ErrorCode, EventError, MediaKind

MAX_IMAGE_PIXELS = 64_000_000  # refuse decompression bombs


@dataclass(frozen=True)
class MediaInfo:
    kind: MediaKind
    detail: str  # "640x480 RGB", "44100 Hz x 2, 3.2 s", "h264 320x240"


def _undecodable(kind: MediaKind, exc: Exception) -> EventError:
    return EventError(ErrorCode.MEDIA_UNDECODABLE, f"{kind} does not decode: {type(exc).__name__}: {exc}"[:500])


def check_image(data: bytes) -> MediaInfo:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise ValueError(f"{img.width}x{img.height} is more than {MAX_IMAGE_PIXELS} pixels")
            img.load()
            return MediaInfo(MediaKind.IMAGE, f"{img.width}x{img.height} {img.mode}")
    except Exception as exc:  # Pillow raises many types for bad bytes
        raise _undecodable(MediaKind.IMAGE, exc) from exc


def check_audio(data: bytes) -> MediaInfo:
    import soundfile

    try:
        with soundfile.SoundFile(io.BytesIO(data)) as f:
            if f.frames <= 0:
                raise ValueError("no audio frames")
            f.read(min(f.frames, f.samplerate), dtype="float32")
            return MediaInfo(MediaKind.AUDIO, f"{f.samplerate} Hz x {f.channels}, {f.frames / f.samplerate:.1f} s")
    except Exception as exc:
        raise _undecodable(MediaKind.AUDIO, exc) from exc


def check_video(data: bytes) -> MediaInfo:
    import av

    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.video:
                raise ValueError("no video stream")
            stream = container.streams.video[0]
            frame = next(container.decode(stream), None)
            if frame is None:
                raise ValueError("no decodable video frame")
            return MediaInfo(MediaKind.VIDEO, f"{stream.codec_context.name} {frame.width}x{frame.height}")
    except Exception as exc:
        raise _undecodable(MediaKind.VIDEO, exc) from exc


_CHECKS = {MediaKind.IMAGE: check_image, MediaKind.AUDIO: check_audio, MediaKind.VIDEO: check_video}


def check_media(kind: MediaKind, data: bytes) -> MediaInfo:
    """Raise :class:`EventError` (``media_undecodable``) unless ``data`` decodes as ``kind``."""
    return _CHECKS[kind](data)
