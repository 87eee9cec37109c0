"""Colour as a screen shows it, which is what image models learnt on: pictures in sRGB, video in SDR.

A picture can carry an ICC profile saying its numbers are in another colour space than sRGB (an
iPhone's photos are in Display P3, a photographer's often in Adobe RGB): read as sRGB, its colours
come out duller than they are. A shop's product shots prepared for print are often CMYK JPEGs
whose profile says what colour each mix of inks prints as; Pillow's own conversion takes the inks
for ideal ones, which shows a press's cyan as pure (0, 255, 255), brighter than any ink prints. A
grey picture's profile gives its tone curve (Photoshop's "Dot Gain 20%", a gamma of 1.8 or 2.2),
which sRGB's differs from by up to 19 levels (gamma 1.8). :func:`to_srgb` converts all three with
LittleCMS (Pillow's ImageCms).

An HDR video (HDR10 and HDR10+ with the PQ curve; HLG, which iPhones record by default) codes light
up to 1,000 or 10,000 nits on a curve an SDR reading takes for something else: read as SDR, a PQ
frame comes out dark and grey, and BT.2020 colours read as BT.709 come out washed out. Here a frame
(16-bit R'G'B', as FFmpeg converts it with the stream's own YUV matrix) is turned to light relative
to the HDR reference white (203 nits, ITU-R BT.2408), brought to BT.709 primaries, its highlights
rolled off into the SDR range (keeping their hue) and coded as 8-bit sRGB. FFmpeg's scaler can do
this too, but builds a 3D table for it that took 1.6-2 s of CPU for every new frame size.
"""
from __future__ import annotations

import functools
import io
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from PIL.Image import Image

logger = logging.getLogger(__name__)

REFERENCE_WHITE = 203.0  # nits: HDR's diffuse white, shown as SDR white (BT.2408)
KNEE = 0.8  # of SDR white: light above it is rolled off, light below it kept as it is
PQ, HLG = "pq", "hlg"
# FFmpeg's AVColorTransferCharacteristic values for the two HDR curves, and BT.2020's primaries
_TRANSFERS = {16: PQ, 18: HLG}  # AVCOL_TRC_SMPTE2084, AVCOL_TRC_ARIB_STD_B67
BT2020_PRIMARIES = 9  # AVCOL_PRI_BT2020
# linear BT.2020 RGB to linear BT.709 RGB (both D65): ITU-R BT.2087's matrix, inverted
_BT2020_TO_BT709 = np.linalg.inv(np.array([
    [0.6274, 0.3293, 0.0433],
    [0.0691, 0.9195, 0.0114],
    [0.0164, 0.0880, 0.8956],
])).astype(np.float32)
_BT2020_LUMA = np.array([0.2627, 0.6780, 0.0593], np.float32)
_BT709_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)
_SRGB_STEPS = 16384  # linear light in steps of 1/16383: under a fifth of an 8-bit level anywhere


def hdr_transfer(color_trc: int) -> str | None:
    """``"pq"`` or ``"hlg"`` for a frame whose transfer characteristic (FFmpeg's number) is an HDR
    curve, else None.

    >>> hdr_transfer(16), hdr_transfer(18), hdr_transfer(1)
    ('pq', 'hlg', None)
    """
    return _TRANSFERS.get(int(color_trc))


def pq_to_light(signal: np.ndarray) -> np.ndarray:
    """SMPTE ST 2084 (PQ): signal in [0, 1] to light in nits (0 to 10,000).

    >>> [round(float(n)) for n in pq_to_light(np.array([0.0, 0.5081, 0.5806, 1.0]))]
    [0, 100, 203, 10000]
    """
    m1, m2, c1, c2, c3 = 2610 / 16384, 2523 / 4096 * 128, 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    p = np.power(np.clip(signal, 0.0, 1.0), 1 / m2)
    return 10000.0 * np.power(np.maximum(p - c1, 0.0) / (c2 - c3 * p), 1 / m1)


def hlg_to_scene(signal: np.ndarray) -> np.ndarray:
    """ARIB STD-B67 (HLG): signal in [0, 1] to scene light in [0, 1] (the inverse of its OETF).

    >>> [round(float(e), 4) for e in hlg_to_scene(np.array([0.0, 0.5, 0.75, 1.0]))]
    [0.0, 0.0833, 0.265, 1.0]
    """
    a, b, c = 0.17883277, 0.28466892, 0.55991073
    signal = np.clip(signal, 0.0, 1.0)
    return np.where(signal <= 0.5, signal**2 / 3, (np.exp((signal - c) / a) + b) / 12)


@functools.cache
def _signal_to_relative(transfer: str) -> np.ndarray:
    """For every 16-bit code value: PQ light relative to reference white, or HLG scene light."""
    signal = np.arange(65536, dtype=np.float64) / 65535
    if transfer == PQ:
        return (pq_to_light(signal) / REFERENCE_WHITE).astype(np.float32)
    return hlg_to_scene(signal).astype(np.float32)


@functools.cache
def _srgb_codes() -> np.ndarray:
    """8-bit sRGB code for each step of linear light in [0, 1]."""
    light = np.arange(_SRGB_STEPS, dtype=np.float64) / (_SRGB_STEPS - 1)
    coded = np.where(light <= 0.0031308, 12.92 * light, 1.055 * np.power(light, 1 / 2.4) - 0.055)
    return np.round(coded * 255).astype(np.uint8)


def roll_off(peak: np.ndarray, top: float) -> np.ndarray:
    """What each pixel's brightest channel ``peak`` (SDR white = 1) is multiplied by: 1 up to
    :data:`KNEE`, then an extended Reinhard curve that takes ``top`` (the brightest light the format
    is shown at) to SDR white, so highlights keep their hue and detail instead of clipping.

    >>> [round(float(x), 3) for x in roll_off(np.array([0.5, 0.8, 1.0, 4.926]), top=4.926) * np.array([0.5, 0.8, 1.0, 4.926])]
    [0.5, 0.8, 0.9, 1.0]
    """
    scale = np.ones(peak.shape, np.float32)
    high = peak > KNEE  # most of a picture is below it: the curve is worked out only where it applies
    span, bright = 1.0 - KNEE, peak[high]
    over, limit = (bright - KNEE) / span, (top - KNEE) / span
    scale[high] = (KNEE + span * over * (1 + over / limit**2) / (1 + over)) / bright
    return scale


def hdr_to_sdr(rgb: np.ndarray, transfer: str, primaries: int, peak_nits: float = 1000.0) -> np.ndarray:
    """An HDR frame (H x W x 3 uint16 R'G'B' on ``transfer``'s curve, in ``primaries``: FFmpeg's
    number, BT.2020 converted, others taken as BT.709) as 8-bit sRGB (H x W x 3 uint8).

    HLG is shown as on a ``peak_nits`` display (its system gamma of 1.2 then puts a 75% signal at
    reference white); PQ light is absolute, and is rolled off towards ``peak_nits``, which most HDR10 is
    graded for. Light above that clips.
    """
    light = _signal_to_relative(transfer)[rgb]  # H x W x 3 float32
    if transfer == HLG:
        # BT.2100's HLG display transform: scene light times the scene luminance to the power gamma - 1
        weights = _BT2020_LUMA if primaries == BT2020_PRIMARIES else _BT709_LUMA
        light *= np.power(light @ weights, np.float32(0.2))[..., None] * np.float32(peak_nits / REFERENCE_WHITE)
    if primaries == BT2020_PRIMARIES:
        light = light @ _BT2020_TO_BT709.T
    np.maximum(light, 0.0, out=light)  # BT.2020 colours outside BT.709 come out negative
    # the brightest channel as two elementwise maxima: numpy's max over the short last axis takes ten times as long
    brightest = np.maximum(np.maximum(light[..., 0], light[..., 1]), light[..., 2])
    light *= roll_off(brightest, top=peak_nits / REFERENCE_WHITE)[..., None]
    light *= np.float32(_SRGB_STEPS - 1)
    light += np.float32(0.5)
    np.minimum(light, np.float32(_SRGB_STEPS - 1), out=light)
    return _srgb_codes()[light.astype(np.uint16)]


def to_srgb(img: Image, icc: bytes | None) -> Image:
    """The picture ``img`` in sRGB RGB, converted by ``icc``, the profile the file carried. Grey and CMYK
    are converted by a grey or CMYK profile, other modes (a palette's colours) by an RGB one after
    Pillow turns them to RGB. Without a profile it can use (none, unreadable, or one for another kind
    of picture) RGB stays as it is, as browsers take it for sRGB, and grey and CMYK are converted as
    Pillow does (CMYK as ideal inks), as browsers show untagged CMYK."""
    if img.mode not in _MANAGED_MODES:
        img = img.convert("RGB")
    transform = srgb_transform(bytes(icc), img.mode) if icc else None
    if transform is None:
        return img if img.mode == "RGB" else img.convert("RGB")
    from PIL import ImageCms

    return ImageCms.applyTransform(img, transform)


_MANAGED_MODES = ("RGB", "L", "CMYK")


@functools.lru_cache(maxsize=64)  # a service sees few distinct profiles (every iPhone photo carries the same)
def srgb_transform(icc: bytes, mode: str = "RGB") -> Any:
    """LittleCMS's transform from the profile ``icc`` of a ``mode`` picture to sRGB RGB, or None where
    LittleCMS cannot read the profile, it is not one for ``mode`` pictures, or (RGB and grey) it
    would change no colour by more than a level from sRGB: most web pictures carry an sRGB profile,
    and the transform would still cost several ms a picture."""
    from PIL import Image as PILImage
    from PIL import ImageCms

    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        # NOCACHE: LittleCMS's one-colour cache is what makes a transform unsafe to share between the
        # decoding threads, and turning it off cost nothing (2.8 ms against 3.6 with it, a 427x320 photograph)
        transform = ImageCms.buildTransform(profile, _srgb_profile(), mode, "RGB", flags=ImageCms.Flags.NOCACHE)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        logger.debug("ICC profile not used for a %s picture (%s)", mode, exc)
        return None
    if mode == "CMYK":  # no CMYK reading is "as it is": Pillow's ideal inks are a guess too
        return transform
    levels = np.arange(0, 256, 15, dtype=np.uint8)  # 18 levels a channel, both ends included
    if mode == "L":
        grid, srgb = levels[None], np.repeat(levels[None, :, None], 3, axis=-1)
    else:
        srgb = grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(18, 18 * 18, 3)
    moved = np.asarray(ImageCms.applyTransform(PILImage.fromarray(grid, mode), transform), np.int16) - srgb
    return transform if np.abs(moved).max() > 1 else None


@functools.cache
def _srgb_profile() -> Any:
    from PIL import ImageCms

    return ImageCms.createProfile("sRGB")
