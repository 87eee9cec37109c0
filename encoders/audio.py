"""Audio encoding: librosa's log-mel and MFCC features pooled over time, or a neural encoder.

:class:`LibrosaAudioEncoder` computes exactly librosa's ``melspectrogram -> power_to_db -> mfcc ->
delta`` chain (its filter bank, DCT and delta filter), but in torch on whole padded batches, so a
GPU worker computes them on the device instead of one clip at a time in Python. A test checks
the figures against librosa itself. :class:`ExportedAudioEncoder` runs a neural audio encoder saved
with ``torch.export`` (waveforms at 16 kHz in, one embedding per clip out).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from fusionrec.encoders.base import encode_in_chunks, resolve_device, to_host
from fusionrec.encoders.media import SAMPLE_RATE, Clip
from fusionrec.schemas import ConfigError, EncoderError

logger = logging.getLogger(__name__)

DEFAULT_AUDIO_MODEL = "librosa"
SILENCE = 1e-4  # peak amplitude under which a clip counts as silent (-80 dBFS)


def _rows(clips: Sequence[np.ndarray], device: str) -> tuple[list[np.ndarray], torch.Tensor]:
    """Every clip's windows (a 2-D clip's rows, a 1-D clip whole) and the clip each came from."""
    rows, owner = [], []
    for i, clip in enumerate(clips):
        for window in clip if clip.ndim == 2 else clip[None]:
            rows.append(window)
            owner.append(i)
    return rows, torch.tensor(owner, device=device)


def _per_clip(values: torch.Tensor, owner: torch.Tensor, clips: int) -> torch.Tensor:
    """The sum of ``values``' rows per clip."""
    return torch.zeros((clips, *values.shape[1:]), dtype=values.dtype, device=values.device).index_add_(0, owner, values)


def _loudest(values: torch.Tensor, owner: torch.Tensor, clips: int) -> torch.Tensor:
    """The largest of ``values`` (one per row) per clip."""
    out = torch.zeros(clips, dtype=values.dtype, device=values.device)
    return out.scatter_reduce_(0, owner, values, "amax", include_self=False)


def _pad(clips: Sequence[np.ndarray], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded ``B x T`` waveforms and each clip's length."""
    lengths = torch.tensor([len(c) for c in clips], device=device)
    out = torch.zeros(len(clips), int(lengths.max()), device=device)
    for i, c in enumerate(clips):
        out[i, : len(c)] = torch.from_numpy(c).to(device, non_blocking=True)
    return out, lengths


class LibrosaAudioEncoder:
    """Pooled spectral shape and dynamics of a clip.

    Per clip: the log-mel spectrum's mean over time (centred across bands, so loudness drops out
    and the spectral shape stays) and its spread over time, the MFCCs' means (without c0, loudness)
    and spreads, and the spreads of their first and second deltas. Each group is scaled to unit
    length before they are joined, so no group outweighs the others by its units.
    """

    modality = "audio"

    def __init__(
        self, *, n_fft: int = 1024, hop_length: int = 320, n_mels: int = 64, n_mfcc: int = 20,
        top_db: float = 80.0, device: str = "auto", batch_size: int = 64, threads: int | None = None,
    ) -> None:
        import librosa
        import scipy.fft

        if threads:
            torch.set_num_threads(threads)
        self.device = resolve_device(device)
        self.n_fft, self.hop_length, self.n_mfcc, self.top_db = n_fft, hop_length, n_mfcc, top_db
        self.batch_size = batch_size
        mel = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=n_fft, n_mels=n_mels)
        self._mel = torch.from_numpy(mel).float().to(self.device)
        # librosa.feature.mfcc: scipy's orthonormal DCT-II of the dB mel spectrum, first n_mfcc rows
        dct = scipy.fft.dct(np.eye(n_mels), type=2, norm="ortho", axis=0)[:n_mfcc]
        self._dct = torch.from_numpy(dct).float().to(self.device)
        # librosa.feature.delta: a Savitzky-Golay derivative filter of width 9
        import scipy.signal

        self._delta = [
            torch.from_numpy(scipy.signal.savgol_coeffs(9, order, deriv=order, use="dot").copy()).float().to(self.device)
            for order in (1, 2)
        ]
        self._window = torch.hann_window(n_fft, periodic=True, device=self.device)
        self.groups = (n_mels, n_mels, n_mfcc - 1, n_mfcc, n_mfcc, n_mfcc)
        self.dim = sum(self.groups)
        # v2: deltas at a clip's end no longer depend on the clips padded beside it
        self.version = self.space = f"librosa-logmel{n_mels}-mfcc{n_mfcc}-fft{n_fft}-hop{hop_length}-v2@{self.dim}"

    def prepare(self, raw: Clip) -> np.ndarray:
        if raw.sample_rate != SAMPLE_RATE:
            raise EncoderError(f"clip at {raw.sample_rate} Hz; decode_audio resamples to {SAMPLE_RATE}")
        return raw.samples

    def features(
        self, waves: torch.Tensor, frames: torch.Tensor | None = None, owner: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """dB mel spectrogram ``B x mels x frames``, MFCCs and their deltas, as librosa computes them
        (``center=True`` with zero padding, power 2, ``ref=1``, ``amin=1e-10``, ``top_db``) for
        waveforms zero-padded to a common length; ``frames``: how many frames cover each one's own
        samples (default: all of them). Rows with the same ``owner`` are windows of one clip: the
        ``top_db`` floor is then set from the loudest of them, as it would be for the whole clip."""
        spec = torch.stft(
            waves, self.n_fft, self.hop_length, window=self._window, center=True, pad_mode="constant",
            return_complex=True,
        ).abs().pow(2)
        mel = torch.matmul(self._mel, spec)
        db = 10.0 * torch.log10(torch.clamp(mel, min=1e-10))
        peak = db.amax(dim=(1, 2))
        if owner is not None:
            peak = _loudest(peak, owner, len(owner))[owner]  # len(owner): enough rows, no device sync
        db = torch.maximum(db, peak[:, None, None] - self.top_db)
        mfcc = torch.matmul(self._dct, db)
        # The delta filter sees four frames past each end: each clip's own edge frame repeated, not
        # the frames of another clip's padding, or a clip's vector would depend on the clips batched
        # with it. (librosa fits the edges instead, mode="interp": the first and last 4 frames differ.)
        last = (torch.tensor([mfcc.shape[-1]], device=mfcc.device) if frames is None else frames)[:, None] - 1
        at = torch.minimum(torch.arange(-4, mfcc.shape[-1] + 4, device=mfcc.device).clamp(min=0)[None, :], last)
        padded = torch.gather(mfcc, 2, at[:, None, :].expand(mfcc.shape[0], mfcc.shape[1], -1))
        deltas = [
            torch.nn.functional.conv1d(
                padded.reshape(-1, 1, padded.shape[-1]), k.view(1, 1, -1)
            ).reshape(mfcc.shape)
            for k in self._delta
        ]
        return db, mfcc, deltas

    def encode(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        return encode_in_chunks(batch, self.batch_size, self.dim, self._pooled, "audio")

    def _pooled(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        if any(c.size == 0 for c in clips):
            raise EncoderError("an audio clip has no samples")
        # A clip's windows are rows of their own (no made-up join between them), pooled together.
        rows, owner = _rows(clips, self.device)
        waves, lengths = _pad(rows, self.device)
        frames = 1 + lengths // self.hop_length  # frames that cover real samples (center=True)
        db, mfcc, (d1, d2) = self.features(waves, frames, owner)
        mask = (torch.arange(db.shape[-1], device=self.device)[None, :] < frames[:, None]).float()[:, None, :]
        count = _per_clip(mask.sum(-1), owner, len(clips))

        def mean_std(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            mean = _per_clip((x * mask).sum(-1), owner, len(clips)) / count
            var = _per_clip((((x - mean[owner][..., None]) ** 2) * mask).sum(-1), owner, len(clips)) / count
            return mean, var.clamp(min=0).sqrt()

        mel_mean, mel_std = mean_std(db)
        mfcc_mean, mfcc_std = mean_std(mfcc)
        groups = [
            mel_mean - mel_mean.mean(dim=1, keepdim=True), mel_std, mfcc_mean[:, 1:], mfcc_std,
            mean_std(d1)[1], mean_std(d2)[1],
        ]
        unit = [torch.nn.functional.normalize(g, dim=1) for g in groups]
        out = torch.cat(unit, dim=1)
        # Digital silence (below -80 dBFS) has no shape to describe, only rounding noise: a zero row.
        audible = (_loudest(waves.abs().amax(dim=1), owner, len(clips)) >= SILENCE).float()[:, None]
        return to_host(out * audible)


class ExportedAudioEncoder:
    """A neural audio encoder saved with ``torch.export.save`` (a ``.pt2`` program, no pickled code):
    ``forward(B x T waveforms at 16 kHz) -> B x dim``, exported with dynamic batch and time sizes.

    Clips in a batch are zero-padded to the longest; models that need lengths should be wrapped to
    take them from the padding.
    """

    modality = "audio"

    def __init__(self, path: Path, *, device: str = "auto", batch_size: int = 32, threads: int | None = None) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.device = resolve_device(device)
        try:
            self._model = torch.export.load(str(path)).module().to(self.device)
        except Exception as exc:  # a missing or malformed program
            raise ConfigError(f"cannot load audio model {path}: {exc}") from exc
        self.batch_size = batch_size
        with torch.inference_mode():
            self.dim = int(self._model(torch.zeros(1, SAMPLE_RATE, device=self.device)).shape[-1])
        self.version = self.space = f"exported-{path.stem}@{self.dim}"

    def prepare(self, raw: Clip) -> np.ndarray:
        return raw.samples

    def encode(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        return encode_in_chunks(batch, self.batch_size, self.dim, self._embed, "audio")

    def _embed(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        rows, owner = _rows(clips, self.device)
        waves, _ = _pad(rows, self.device)
        # a clip heard in windows: the mean of its windows' embeddings
        ones = torch.ones(len(rows), 1, device=self.device)
        return to_host(_per_clip(self._model(waves), owner, len(clips)) / _per_clip(ones, owner, len(clips)))


def load_audio_encoder(
    spec: str, *, model_dir: Path | None = None, device: str = "auto", batch_size: int = 64,
    threads: int | None = None,
) -> LibrosaAudioEncoder | ExportedAudioEncoder:
    """``librosa`` (features, no weights) or a ``torch.export`` program: a path or a name under the model dir."""
    if spec == DEFAULT_AUDIO_MODEL:
        return LibrosaAudioEncoder(device=device, batch_size=batch_size, threads=threads)
    path = Path(spec).expanduser()
    if not path.is_file() and model_dir is not None and (model_dir / spec).is_file():
        path = model_dir / spec
    if not path.is_file():
        raise ConfigError(f"audio model {spec!r} is neither `librosa` nor a .pt2 file (FUSIONREC_MODEL_DIR)")
    return ExportedAudioEncoder(path, device=device, batch_size=batch_size, threads=threads)
