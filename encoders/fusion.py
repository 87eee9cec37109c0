"""Fusing an item's modality vectors into the one vector that is stored and searched.

The fused space is made of *blocks*, one per vector space: one per encoder, except that encoders
sharing a space (a CLIP model's text and image towers) share one block, so a text-only item and an
image-only item can be compared. Three strategies, each versioned:

* ``early``: the weighted concatenation ``[sqrt(w_b) * v_b]`` of unit block vectors, scaled to unit
  length. Two items score ``sum_b w_b cos_b`` over the blocks both have, normalised by what they have.
* ``late``: unit block vectors concatenated as they are; the query's blocks are scaled to unit length
  and weighted, so one inner-product search scores exactly ``sum_b w_b * s_b`` (late fusion of the
  per-modality similarities), a missing modality contributing 0. Weights apply at query time.
* ``learned``: a linear projection per block into one shared space, summed and normalised, trained
  on which items the same users consume together (:func:`train_learned_fusion`), saved as ``.npz``.

An item missing a modality gets zeros in that block (early/late) or no term from it (learned): its
vector stays in the same space and stays searchable.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from fusionrec.encoders.base import Encoder, l2_normalize
from fusionrec.schemas import ConfigError

logger = logging.getLogger(__name__)

FusionKind = Literal["early", "late", "learned"]


@dataclass(frozen=True)
class Block:
    name: str
    modalities: tuple[str, ...]
    dim: int
    weight: float = 1.0


def make_blocks(encoders: Mapping[str, Encoder], weights: Mapping[str, float] | None = None) -> list[Block]:
    """One block per distinct encoder space, in the encoders' order; a shared block's weight is the
    mean of its modalities' weights (1 where unset)."""
    weights = weights or {}
    groups: dict[str, list[str]] = {}
    for name, enc in encoders.items():
        groups.setdefault(enc.space, []).append(name)
    out = []
    for members in groups.values():
        w = sum(weights.get(m, 1.0) for m in members) / len(members)
        out.append(Block("+".join(members), tuple(members), encoders[members[0]].dim, w))
    return out


def block_vectors(blocks: Sequence[Block], parts: Sequence[Mapping[str, np.ndarray]]) -> list[np.ndarray]:
    """Per block, an ``n x dim`` matrix of unit vectors (the mean of the item's members in that
    block), zero rows where the item has none of them."""
    out = []
    for b in blocks:
        m = np.zeros((len(parts), b.dim), dtype=np.float32)
        for row, p in enumerate(parts):
            present = [p[name] for name in b.modalities if name in p and np.any(p[name])]
            if present:
                m[row] = np.mean(present, axis=0)
        out.append(l2_normalize(m))
    return out


class Fusion(Protocol):
    kind: FusionKind
    dim: int
    version: str
    blocks: list[Block]

    def fuse(self, parts: Sequence[Mapping[str, np.ndarray]]) -> np.ndarray: ...

    def spec(self) -> dict[str, Any]: ...


def _weights_version(kind: str, blocks: Sequence[Block]) -> str:
    return f"{kind}-v1(" + ",".join(f"{b.name}={b.weight:g}" for b in blocks) + ")"


class EarlyFusion:
    kind: FusionKind = "early"

    def __init__(self, blocks: Sequence[Block]) -> None:
        if not blocks:
            raise ConfigError("fusion needs at least one modality")
        self.blocks = list(blocks)
        self.dim = sum(b.dim for b in self.blocks)
        self.version = _weights_version(self.kind, self.blocks)

    def fuse(self, parts: Sequence[Mapping[str, np.ndarray]]) -> np.ndarray:
        mats = block_vectors(self.blocks, parts)
        return l2_normalize(np.hstack([math.sqrt(b.weight) * m for b, m in zip(self.blocks, mats, strict=True)]))

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "version": self.version,
                "blocks": [{"name": b.name, "dim": b.dim, "weight": b.weight} for b in self.blocks]}


class LateFusion(EarlyFusion):
    kind: FusionKind = "late"

    def fuse(self, parts: Sequence[Mapping[str, np.ndarray]]) -> np.ndarray:
        return np.hstack(block_vectors(self.blocks, parts))


class LearnedFusion:
    """``normalise(sum_b P_b v_b)`` over the blocks an item has; ``P_b`` are trained projections."""

    kind: FusionKind = "learned"

    def __init__(self, blocks: Sequence[Block], projections: Mapping[str, np.ndarray], *, trained_on: str = "") -> None:
        self.blocks = list(blocks)
        self.projections = {b.name: np.asarray(projections[b.name], dtype=np.float32) for b in self.blocks}
        dims = {p.shape[0] for p in self.projections.values()}
        if len(dims) != 1:
            raise ConfigError(f"learned fusion projections disagree on the output size: {sorted(dims)}")
        for b in self.blocks:
            if self.projections[b.name].shape[1] != b.dim:
                raise ConfigError(f"learned fusion expects {b.name} of dim {self.projections[b.name].shape[1]}, "
                                  f"the encoder gives {b.dim}")
        self.dim = dims.pop()
        self.trained_on = trained_on
        digest = hashlib.sha256()
        for b in self.blocks:
            digest.update(b.name.encode() + self.projections[b.name].tobytes())
        self.version = f"learned-v1-{digest.hexdigest()[:12]}"

    def fuse(self, parts: Sequence[Mapping[str, np.ndarray]]) -> np.ndarray:
        mats = block_vectors(self.blocks, parts)
        total = sum(m @ self.projections[b.name].T for b, m in zip(self.blocks, mats, strict=True))
        return l2_normalize(np.asarray(total))

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "version": self.version,
                "blocks": [{"name": b.name, "dim": b.dim, "weight": b.weight} for b in self.blocks]}

    def save(self, path: Path) -> Path:
        """An ``.npz`` with one array per block and a JSON header (no pickles: safe to load)."""
        meta = {"format": "fusionrec-learned-fusion/1", "version": self.version, "trained_on": self.trained_on,
                "blocks": [{"name": b.name, "modalities": list(b.modalities), "dim": b.dim} for b in self.blocks]}
        arrays = {f"p{i}": self.projections[b.name] for i, b in enumerate(self.blocks)}
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            np.savez(f, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
        return path

    @classmethod
    def load(cls, path: Path, blocks: Sequence[Block] | None = None) -> LearnedFusion:
        """Load an artefact; with ``blocks`` (from the configured encoders) check that they match it."""
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(bytes(z["meta"]).decode())
                saved = [Block(b["name"], tuple(b["modalities"]), b["dim"]) for b in meta["blocks"]]
                projections = {b.name: z[f"p{i}"] for i, b in enumerate(saved)}
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(f"{path} is not a learned fusion artefact: {exc}") from exc
        if blocks is not None and [(b.name, b.dim) for b in blocks] != [(b.name, b.dim) for b in saved]:
            raise ConfigError(
                f"{path} was trained for blocks {[(b.name, b.dim) for b in saved]}, "
                f"the configured encoders give {[(b.name, b.dim) for b in blocks]}"
            )
        fusion = cls(saved, projections, trained_on=meta.get("trained_on", ""))
        if fusion.version != meta["version"]:
            raise ConfigError(f"{path} is corrupt: its projections do not hash to {meta['version']}")
        return fusion


def make_fusion(
    kind: FusionKind, encoders: Mapping[str, Encoder], *, weights: Mapping[str, float] | None = None,
    model: Path | None = None,
) -> Fusion:
    blocks = make_blocks(encoders, weights)
    if kind == "early":
        return EarlyFusion(blocks)
    if kind == "late":
        return LateFusion(blocks)
    if model is None:
        raise ConfigError("FUSIONREC_FUSION=learned needs FUSIONREC_FUSION_MODEL (train one: fusionrec fusion train)")
    return LearnedFusion.load(model, blocks)


def query_transform(spec: Mapping[str, Any] | None) -> Callable[[np.ndarray], np.ndarray]:
    """How a profile vector becomes a search vector for an index fused as ``spec`` describes.

    Late fusion weighs each block's unit vector; the others only scale the whole to unit length.
    """
    if not spec or spec.get("kind") != "late":
        return lambda q: l2_normalize(np.asarray(q, dtype=np.float32)[None, :])[0]
    sizes = [int(b["dim"]) for b in spec["blocks"]]
    total = sum(float(b["weight"]) for b in spec["blocks"]) or 1.0
    scale = [float(b["weight"]) / total for b in spec["blocks"]]

    def late(q: np.ndarray) -> np.ndarray:
        parts = np.split(np.asarray(q, dtype=np.float32), np.cumsum(sizes)[:-1])
        return np.concatenate([w * l2_normalize(p[None, :])[0] for w, p in zip(scale, parts, strict=True)])

    return late


def co_consumption_pairs(
    interactions: Iterable[tuple[str, str, float]], *, window: int = 3
) -> list[tuple[str, str]]:
    """(item, later item) pairs from each user's time-ordered history, up to ``window`` steps apart.

    >>> co_consumption_pairs([("u", "a", 1), ("u", "b", 2), ("v", "c", 1), ("u", "c", 3)], window=1)
    [('a', 'b'), ('b', 'c')]
    """
    by_user: dict[str, list[tuple[float, str]]] = {}
    for user, item, ts in interactions:
        by_user.setdefault(user, []).append((ts, item))
    pairs = []
    for events in by_user.values():
        items = [i for _, i in sorted(events)]
        for k, a in enumerate(items):
            pairs.extend((a, b) for b in items[k + 1 : k + 1 + window] if b != a)
    return pairs


def train_learned_fusion(
    blocks: Sequence[Block], parts: Mapping[str, Mapping[str, np.ndarray]], pairs: Sequence[tuple[str, str]], *,
    dim: int = 256, epochs: int = 20, batch_size: int = 512, lr: float = 3e-3, temperature: float = 0.05,
    modality_dropout: float = 0.3, device: str = "auto", seed: int = 0, trained_on: str = "",
    progress: Callable[[int, float], None] | None = None,
) -> LearnedFusion:
    """Fit one projection per block so that items consumed together land close (in-batch InfoNCE).

    ``parts`` maps item id -> its modality vectors; ``pairs`` are co-consumed item ids. Blocks are
    dropped at random while training, so items missing a modality still land near their partners.
    Runs on CUDA when there is one (``device="auto"``).
    """
    import torch

    from fusionrec.encoders.base import resolve_device

    dev = resolve_device(device)
    ids = sorted({i for pair in pairs for i in pair if i in parts})
    if len(ids) < 2:
        raise ConfigError("need pairs of co-consumed items that have content to train a fusion")
    row = {item: k for k, item in enumerate(ids)}
    pairs = [(a, b) for a, b in pairs if a in row and b in row]
    mats = [torch.from_numpy(m).to(dev) for m in block_vectors(blocks, [parts[i] for i in ids])]
    has = [(m.abs().sum(1) > 0).float() for m in mats]
    gen = torch.Generator(device="cpu").manual_seed(seed)
    weights = [
        torch.nn.Parameter((torch.randn(dim, b.dim, generator=gen) / math.sqrt(b.dim)).to(dev)) for b in blocks
    ]
    opt = torch.optim.Adam(weights, lr=lr)
    left = torch.tensor([row[a] for a, _ in pairs], device=dev)
    right = torch.tensor([row[b] for _, b in pairs], device=dev)

    def embed(idx: torch.Tensor, drop: bool) -> torch.Tensor:
        total = 0
        for m, h, w in zip(mats, has, weights, strict=True):
            keep = h[idx]
            if drop:
                keep = keep * (torch.rand(len(idx), generator=gen).to(dev) >= modality_dropout).float()
            total = total + (m[idx] @ w.T) * keep[:, None]
        return torch.nn.functional.normalize(total, dim=1)

    loss_value = float("nan")
    for epoch in range(epochs):
        order = torch.randperm(len(pairs), generator=gen).to(dev)
        losses = []
        for start in range(0, len(pairs), batch_size):
            sel = order[start : start + batch_size]
            a, b = embed(left[sel], True), embed(right[sel], True)
            logits = a @ b.T / temperature
            target = torch.arange(len(sel), device=dev)
            # the same item can sit on both sides of a batch; such in-batch "negatives" are positives
            same = left[sel][:, None] == right[sel][None, :]
            logits = logits.masked_fill(same & ~torch.eye(len(sel), dtype=torch.bool, device=dev), -1e4)
            loss = (torch.nn.functional.cross_entropy(logits, target)
                    + torch.nn.functional.cross_entropy(logits.T, target)) / 2
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        loss_value = float(np.mean(losses))
        if progress:
            progress(epoch, loss_value)
    logger.info("learned fusion trained on %d pairs of %d items, final loss %.4f", len(pairs), len(ids), loss_value)
    projections = {b.name: w.detach().cpu().numpy() for b, w in zip(blocks, weights, strict=True)}
    return LearnedFusion(blocks, projections, trained_on=trained_on)


def pair_hit_rate(vectors: Mapping[str, np.ndarray], pairs: Sequence[tuple[str, str]], k: int = 10) -> float:
    """Share of pairs ``(a, b)`` whose ``b`` is among the ``k`` items nearest ``a`` (``a`` excluded).

    >>> v = {"a": np.array([1.0, 0]), "b": np.array([0.9, 0.1]), "c": np.array([0.0, 1])}
    >>> pair_hit_rate(v, [("a", "b"), ("a", "c")], k=1)
    0.5
    """
    ids = list(vectors)
    row = {i: n for n, i in enumerate(ids)}
    matrix = np.stack([vectors[i] for i in ids])
    pairs = [(a, b) for a, b in pairs if a in row and b in row]
    if not pairs:
        return float("nan")
    hits = 0
    for a, b in pairs:
        scores = matrix @ matrix[row[a]]
        scores[row[a]] = -np.inf
        hits += int((scores > scores[row[b]]).sum() < k)
    return hits / len(pairs)
