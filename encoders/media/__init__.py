"""Decoding item media into what the encoders take: images, mono clips, sampled video frames.

Each decoder opens the bytes with the library the encoders rely on (Pillow; libsndfile via
soundfile, dr_flac via miniaudio and PyAV for compressed formats; FFmpeg via PyAV for video) and
refuses corrupt or mislabelled media with one clear reason (``media_undecodable``) before it reaches
a model. Decoding is CPU work done in the encoder worker's thread pool, so it runs beside the model,
not in front of it.
"""

from __future__ import annotations

from typing import Any

from fusionrec.encoders.media.audio import audio_windows, decode_audio
from fusionrec.encoders.media.base import (
    IMAGE_DRAFT,
    MAX_IMAGE_PIXELS,
    SAMPLE_RATE,
    Clip,
    MediaLimits,
    Source,
    Video,
    as_file,
    upright,
)
from fusionrec.encoders.media.image import decode_image
from fusionrec.encoders.media.video import container_format, decode_video, sample_times, scaled_size, segment_time
from fusionrec.schemas import EventError, MediaKind

__all__ = ["IMAGE_DRAFT", "MAX_IMAGE_PIXELS", "SAMPLE_RATE", "Clip", "MediaLimits", "Source", "Video", "audio_windows",
           "container_format", "decode_audio", "decode_image", "decode_media", "decode_video", "sample_times",
           "scaled_size", "segment_time", "upright"]


def decode_media(kind: MediaKind, source: Source, limits: MediaLimits = MediaLimits()) -> Any:
    """Decoded content of ``source`` as ``kind``, or :class:`EventError` (``media_undecodable``).

    A file that stopped short (a fetcher's reader that reached its byte limit or lost the network) says
    why in its ``error`` attribute: that is the reason then, not what the cut-off file looked like, and
    also where the decoder made do with what it got.
    """
    try:
        if kind is MediaKind.IMAGE:
            content: Any = decode_image(source if isinstance(source, bytes) else as_file(source).read())
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
