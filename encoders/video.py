"""Video encoding: sampled frames through the image encoder, pooled over time, plus the audio track."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fusionrec.encoders.base import Encoder, l2_normalize
from fusionrec.encoders.media import Video


@dataclass(frozen=True)
class PreparedVideo:
    frames: list[Any]
    audio: Any | None


class VideoEncoder:
    """``[mean of the frames' image vectors | the audio track's vector]``, each half unit length.

    A video without sound gets zeros in the audio half, so silent and sounding videos share one
    space. The frames of a whole batch go through the image model together.
    """

    modality = "video"

    def __init__(self, image: Encoder, audio: Encoder) -> None:
        self.image, self.audio = image, audio
        self.device = image.device
        # the image model's input size: the decoder scales larger frames down to it (MediaLimits.frame_size)
        self.frame_size: int | None = getattr(image, "size", None)
        self.dim = image.dim + audio.dim
        self.version = self.space = f"frames-mean({image.version})+audio({audio.version})"

    def prepare(self, raw: Video) -> PreparedVideo:
        if not raw.frames:
            raise ValueError("a video with no frames")
        audio = self.audio.prepare(raw.audio) if raw.audio is not None else None
        return PreparedVideo([self.image.prepare(f) for f in raw.frames], audio)

    def encode(self, batch: Sequence[PreparedVideo]) -> np.ndarray:
        out = np.zeros((len(batch), self.dim), dtype=np.float32)
        if not batch:
            return out
        frames = [f for v in batch for f in v.frames]
        vectors = self.image.encode(frames)
        start = 0
        for row, v in enumerate(batch):
            out[row, : self.image.dim] = vectors[start : start + len(v.frames)].mean(axis=0)
            start += len(v.frames)
        out[:, : self.image.dim] = l2_normalize(out[:, : self.image.dim])
        sounding = [row for row, v in enumerate(batch) if v.audio is not None]
        if sounding:
            out[sounding, self.image.dim :] = self.audio.encode([batch[row].audio for row in sounding])
        return l2_normalize(out)
