"""What the media decoders share: limits, the decoded types, reading a source, errors."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

import numpy as np

from fusionrec.schemas import ErrorCode, EventError, MediaKind

if TYPE_CHECKING:
    pass


MAX_IMAGE_PIXELS = 64_000_000  # refuse decompression bombs
SAMPLE_RATE = 16_000  # every clip is resampled to this before feature extraction
IMAGE_DRAFT = 320  # JPEGs decode straight at about this size: models look at 224 pixels

# Media as fetched: its bytes, or a seekable binary file of them, of which the decoders read what they
# sample (a long video's segments, a long clip's windows) and no more.
Source = bytes | IO[bytes]


def as_file(source: Source) -> IO[bytes]:
    """``source`` as a file at its start."""
    if isinstance(source, bytes):
        return io.BytesIO(source)
    source.seek(0)
    return source


def head_bytes(source: Source, n: int = 8) -> bytes:
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


def undecodable(kind: MediaKind, exc: Exception) -> EventError:
    return EventError(ErrorCode.MEDIA_UNDECODABLE, f"{kind} does not decode: {type(exc).__name__}: {exc}"[:500])



def upright(frame: np.ndarray, rotation: float) -> np.ndarray:
    """``frame`` turned ``rotation`` degrees counter-clockwise, as its stream's display matrix says
    to show it (FFmpeg's convention, and PyAV's ``VideoFrame.rotation``): a phone filming upright
    stores landscape frames and a matrix that turns them 90 degrees clockwise (-90).

    >>> upright(np.array([[1, 2], [3, 4]]), -90).tolist(), upright(np.array([[1, 2]]), 90).tolist()
    ([[3, 1], [4, 2]], [[2], [1]])
    """
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(frame, turns)) if turns else frame

