"""Decoding pictures: upright, 8-bit sRGB, through Pillow (HEIF by its plug-in), bombs refused."""

from __future__ import annotations

import functools
import io
from typing import TYPE_CHECKING, Any

import numpy as np

from fusionrec.encoders.media.base import (
    IMAGE_DRAFT,
    MAX_IMAGE_PIXELS,
    undecodable,
)
from fusionrec.encoders.media.color import to_srgb
from fusionrec.schemas import MediaKind

if TYPE_CHECKING:
    from PIL.Image import Image


def decode_image(data: bytes) -> Image:
    """The picture upright, in 8-bit RGB, as a viewer shows it.

    Upright: a camera stores a picture as its sensor saw it and says in its EXIF orientation tag
    how to turn it (a phone held upright takes a landscape picture tagged "turn 90 degrees
    clockwise"); a model shown it on its side sees something else. Transparent parts are shown on
    white, as shops show cut-out products (dropping the alpha channel would show whatever colour
    the transparent pixels happen to store, often black). 16-bit grey is scaled to 8 bits, where
    Pillow's conversion would clip it (everything above 255 of 65535 white). Colours are sRGB: a
    picture whose ICC profile says otherwise (an iPhone's Display P3, a CMYK JPEG prepared for print,
    grey on another tone curve) is converted (:func:`~fusionrec.encoders.media.color.to_srgb`).
    HEIC/HEIF, an iPhone's default, decodes through pillow-heif.
    """
    from PIL import ExifTags
    from PIL import Image as PILImage

    try:
        img = _open_picture(data)
        if img.width * img.height > MAX_IMAGE_PIXELS:
            raise ValueError(f"{img.width}x{img.height} is more than {MAX_IMAGE_PIXELS} pixels")
        # JPEG (and HEIF with a large enough thumbnail): decode at a fraction of full size
        img.draft("RGB", (IMAGE_DRAFT, IMAGE_DRAFT))
        img.load()  # first: Pillow turns a TIFF upright as it loads it, and then drops its tag
        turn = _exif_turns().get(img.getexif().get(ExifTags.Base.Orientation, 1))
        icc = img.info.get("icc_profile")
        if img.mode.startswith("I;16"):
            img = PILImage.fromarray((np.asarray(img, dtype=np.uint32) >> 8).astype(np.uint8), "L")
        if img.mode in ("LA", "La") or (img.mode == "L" and "transparency" in img.info):
            # on white in grey, which keeps the picture in the mode its profile is for
            la = img.convert("LA")
            img = PILImage.new("L", la.size, 255)
            img.paste(la.getchannel("L"), mask=la.getchannel("A"))
        elif img.mode in ("RGBA", "PA", "RGBa") or "transparency" in img.info:
            rgba = img.convert("RGBA")
            img = PILImage.alpha_composite(PILImage.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
        rgb = to_srgb(img, icc)
        return rgb.transpose(turn) if turn is not None else rgb
    except Exception as exc:  # Pillow raises many types for bad bytes
        raise undecodable(MediaKind.IMAGE, exc) from exc


def _open_picture(data: bytes) -> Image:
    """Pillow's image of ``data``; HEIF through pillow-heif, whose plugin (and 25 MB of codec
    libraries) is loaded when the first picture in ISO media (``ftyp``) that Pillow cannot open comes."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        return PILImage.open(io.BytesIO(data))
    except UnidentifiedImageError:
        if data[4:8] != b"ftyp":
            raise
    _open_heif_too()
    return PILImage.open(io.BytesIO(data))


@functools.cache
def _open_heif_too() -> None:
    """Lets Pillow open HEIF. libheif applies the file's own turn (its irot/imir boxes, which HEIF
    readers follow instead of EXIF), and pillow-heif then says orientation 1 in the EXIF it hands on,
    so :func:`decode_image` does not turn an iPhone's picture a second time."""
    import pillow_heif

    pillow_heif.register_heif_opener()


@functools.cache
def _exif_turns() -> dict[int, Any]:
    """EXIF orientation (2 to 8) -> the Pillow transpose that makes the picture upright (as
    ``PIL.ImageOps.exif_transpose``, which also copies pictures that need no turn)."""
    from PIL.Image import Transpose as T

    return {2: T.FLIP_LEFT_RIGHT, 3: T.ROTATE_180, 4: T.FLIP_TOP_BOTTOM, 5: T.TRANSPOSE, 6: T.ROTATE_270,
            7: T.TRANSVERSE, 8: T.ROTATE_90}


