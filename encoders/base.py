"""The encoder interface: a batch in, a float32 matrix of the declared dimension out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Encoder(Protocol):
    """Turns one modality's inputs into L2-normalised float32 rows of width :attr:`dim`.

    ``prepare`` is the per-input CPU work (resize an image, cast a clip) and is safe to call from
    many threads at once; ``encode`` runs the model on a prepared batch. Splitting them lets a
    worker prepare the next inputs on CPU threads while the model runs. An input with nothing in
    it (a silent clip) may give an all-zero row: fusion treats that modality as missing.

    ``version`` names the model and its settings; it is stored beside every vector so a re-encode
    with another model never mixes spaces silently. ``space`` names the vector space: encoders of
    different modalities that share one (a CLIP model's towers) can be compared with each other.
    """

    modality: str
    dim: int
    version: str
    space: str
    device: str

    def prepare(self, raw: Any) -> Any: ...

    def encode(self, batch: Sequence[Any]) -> np.ndarray: ...


@runtime_checkable
class TextEncoder(Encoder, Protocol):
    """An encoder of strings."""

    def encode(self, batch: Sequence[str]) -> np.ndarray: ...


def encode_raw(encoder: Encoder, inputs: Sequence[Any]) -> np.ndarray:
    """Prepare and encode in one call (tests, benchmarks and the offline harness)."""
    return encoder.encode([encoder.prepare(x) for x in inputs])


def l2_normalize(matrix: np.ndarray) -> np.ndarray:
    """Scale each row to unit length (float32); all-zero rows stay zero.

    Rows are first divided by their largest magnitude, so huge values (a ready-made vector of
    1e38s, whose float32 norm is infinite) keep their direction instead of turning into zeros.

    >>> l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)).tolist()
    [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
    >>> l2_normalize(np.array([[3e38, 4e38]])).tolist()
    [[0.6000000238418579, 0.800000011920929]]
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    peak = np.abs(matrix).max(axis=1, keepdims=True) if matrix.size else np.zeros((len(matrix), 1))
    matrix = np.divide(matrix, peak, out=np.zeros_like(matrix), where=peak > 0)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0).astype(np.float32)


def batches(seq: Sequence[Any], size: int) -> list[Sequence[Any]]:
    """``seq`` cut into runs of at most ``size``.

    >>> batches([1, 2, 3, 4, 5], 2)
    [[1, 2], [3, 4], [5]]
    """
    return [seq[i : i + size] for i in range(0, len(seq), size)]


def encode_in_chunks(
    batch: Sequence[Any], size: int, dim: int, fn: Callable[[Sequence[Any]], np.ndarray], what: str
) -> np.ndarray:
    """``fn`` over runs of at most ``size`` inputs without autograd, joined and scaled to unit rows;
    any failure becomes :class:`EncoderError` naming ``what`` (the item encoder then retries one by one)."""
    if not len(batch):
        return np.zeros((0, dim), dtype=np.float32)
    import torch

    from fusionrec.schemas import EncoderError

    try:
        with torch.inference_mode():
            out = [fn(chunk) for chunk in batches(batch, size)]
    except EncoderError:
        raise
    except Exception as exc:  # torch and the models raise many types
        raise EncoderError(f"{what} encoding failed: {exc}") from exc
    return l2_normalize(np.concatenate(out))


def to_host(result: Any) -> np.ndarray:
    """A model's output tensor as float32 numpy.

    On CUDA the calling thread sleeps until the GPU is done rather than waiting in ``.cpu()``, which
    busy-polls a core for as long as the kernels run: with several encoder workers sharing one GPU,
    those polling threads would take the cores that media decoding needs.
    """
    result = result.float()
    if result.is_cuda:
        import torch

        done = torch.cuda.Event(blocking=True)
        done.record()
        done.synchronize()  # releases the GIL too: the decoding threads go on meanwhile
    return result.cpu().numpy()


def resolve_device(requested: str) -> str:
    """``auto`` picks CUDA when torch sees a GPU, else the CPU."""
    if requested != "auto":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
