"""Decoding pictures: upright, checked, cropped and resized as the image models expect."""

import io

import numpy as np
import pytest

from fusionrec.encoders.media import MediaLimits, decode_media
from fusionrec.schemas import ErrorCode, MediaKind
from fusionrec.testing.checks import code_of
from fusionrec.testing.media import (
    STORED_TURNS,
    mp4,
    png,
    tagged,
    upright_photo,
    wav,
)

K = MediaKind


def test_decoders_accept_real_media_and_refuse_corrupt_bytes():
    assert decode_media(K.IMAGE, png()).size == (32, 24)
    clip = decode_media(K.AUDIO, wav(seconds=0.5, rate=8000))
    assert clip.sample_rate == 16_000 and abs(clip.seconds - 0.5) < 0.01  # resampled, mono
    video = decode_media(K.VIDEO, mp4(frames=10, audio=True), MediaLimits(video_frames=4))
    assert len(video.frames) == 4 and video.audio is not None and video.audio.seconds > 1.0
    assert [int(f[0, 0, 0]) for f in video.frames] == sorted(int(f[0, 0, 0]) for f in video.frames)
    assert decode_media(K.VIDEO, mp4(frames=4)).audio is None
    for kind, data in [(K.IMAGE, png()[:30]), (K.IMAGE, wav()), (K.AUDIO, wav()[:20]), (K.AUDIO, png()),
                       (K.VIDEO, b"\x00\x00\x00\x18ftypmp42 garbage"), (K.VIDEO, wav())]:
        assert code_of(lambda k=kind, d=data: decode_media(k, d)) is ErrorCode.MEDIA_UNDECODABLE


def heic(picture, orientation: int = 1, thumbnails: tuple[int, ...] = ()) -> bytes:
    """``picture`` as an iPhone stores it: HEIC, pixels as the sensor saw them, and a turn for
    readers to apply (written by libheif as an irot box, and as the EXIF orientation tag). Written
    with pillow-heif itself: its Pillow plugin, once in, would open HEIC for any code. ``thumbnails``:
    the long sides of reduced copies to embed."""
    import pillow_heif
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    pillow_heif.from_bytes(picture.mode, picture.size, picture.tobytes()).save(
        buf, quality=90, exif=exif.tobytes(), thumbnails=list(thumbnails)
    )
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])  # Pillow turns TIFFs itself as it loads them: not twice
@pytest.mark.parametrize("orientation", sorted(STORED_TURNS))
def test_pictures_come_out_upright_whatever_their_exif_orientation(orientation, fmt):
    from PIL import Image

    upright = upright_photo()
    stored = upright.transpose(Image.Transpose[STORED_TURNS[orientation]])
    # lossless: upright again means the very same pixels
    assert np.array_equal(np.asarray(decode_media(K.IMAGE, tagged(stored, fmt, orientation))), np.asarray(upright))


def test_a_phones_sideways_jpeg_comes_out_as_the_upright_picture():
    from PIL import Image

    upright = upright_photo()
    phone = decode_media(K.IMAGE, tagged(upright.transpose(Image.Transpose.ROTATE_90), "JPEG", 6))
    plain = decode_media(K.IMAGE, tagged(upright, "JPEG", 1))
    a, b = np.asarray(phone, dtype=float), np.asarray(plain, dtype=float)
    assert a.shape == b.shape == (384, 512, 3) and np.abs(a - b).mean() < 2  # JPEG's loss only


def test_an_iphones_heic_photo_decodes_upright_and_turned_once():
    from PIL import Image

    upright = upright_photo()
    sideways = heic(upright.transpose(Image.Transpose.ROTATE_90), orientation=6)
    assert b"irot" in sideways  # the turn is in the file, as in an iPhone's
    for data in (heic(upright), sideways):
        out = np.asarray(decode_media(K.IMAGE, data), dtype=float)
        assert out.shape == (384, 512, 3) and np.abs(out - np.asarray(upright, dtype=float)).mean() < 4  # HEVC's loss only
    assert code_of(lambda: decode_media(K.IMAGE, sideways[: len(sideways) // 2])) is ErrorCode.MEDIA_UNDECODABLE
    cut_out = np.zeros((32, 32, 4), np.uint8)  # HEIF carries transparency too
    cut_out[8:24, 8:24] = (200, 30, 30, 255)
    out = np.asarray(decode_media(K.IMAGE, heic(Image.fromarray(cut_out, "RGBA")))).astype(int)
    assert np.abs(out[0, 0] - 255).max() <= 3 and np.abs(out[16, 16] - [200, 30, 30]).max() <= 12


def test_pillow_heif_is_loaded_only_once_a_heic_comes():
    import subprocess
    import sys
    from pathlib import Path

    check = ("import sys; from fusionrec.testing.media import png; from fusionrec.encoders.media import decode_image; "
             "decode_image(png()); print('pillow_heif' in sys.modules)")
    root = Path(__file__).parents[4]
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.split() == ["False"]


def test_a_heic_decodes_from_its_embedded_thumbnail_where_that_is_large_enough():
    # as a JPEG decodes at a reduced size: at least 320 pixels each way (HEVC itself has no cheap reduced decode)
    from PIL import Image

    big = upright_photo().resize((1024, 768))
    assert decode_media(K.IMAGE, heic(big, thumbnails=(320,))).size == (1024, 768)  # 320 x 240: the picture itself
    sideways = heic(big.transpose(Image.Transpose.ROTATE_90), orientation=6, thumbnails=(512,))
    for data in (heic(big, thumbnails=(512,)), sideways):  # the thumbnail is turned as the picture is
        out = np.asarray(decode_media(K.IMAGE, data), dtype=float)
        assert out.shape == (384, 512, 3) and np.abs(out - np.asarray(upright_photo(), dtype=float)).mean() < 6


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparent_parts_of_a_picture_are_shown_on_white(mode):
    import warnings

    from PIL import Image

    pixels = np.zeros((40, 40, 4), np.uint8)  # transparent black, as cut-outs often store it
    pixels[10:30, 10:30] = (200, 30, 30, 255)
    pixels[0, 39] = (200, 30, 30, 128)  # half transparent
    buf = io.BytesIO()
    picture = Image.fromarray(pixels, "RGBA")
    (picture if mode == "RGBA" else picture.convert(mode)).save(buf, "PNG")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow warns when a palette's transparency is dropped
        out = np.asarray(decode_media(K.IMAGE, buf.getvalue())).astype(int)
    opaque = out[20, 20]
    assert out[0, 0].tolist() == [255, 255, 255] and out[39, 39].tolist() == [255, 255, 255]
    assert opaque.tolist() == ([opaque[0]] * 3 if mode == "LA" else [200, 30, 30]) and opaque[0] < 255
    if mode == "RGBA":
        assert np.abs(out[0, 39] - [228, 142, 142]).max() <= 1  # blended half way to white


def test_16_bit_grey_pictures_are_scaled_to_8_bits_not_clipped():
    from PIL import Image

    grey = np.linspace(0, 65535, 40 * 40).reshape(40, 40).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, "PNG")
    out = np.asarray(decode_media(K.IMAGE, buf.getvalue()))
    assert out.shape == (40, 40, 3) and np.array_equal(out[..., 0], (grey >> 8).astype(np.uint8))


def test_pictures_are_cropped_square_at_their_own_scale_and_huge_ones_shrunk_first():
    from PIL import Image

    from fusionrec.encoders.image import center_square

    wide = np.zeros((60, 100, 3), np.uint8)
    wide[:, 20:80] = 255  # the centre square is exactly the white part
    square = center_square(wide, 224)
    assert square.shape == (60, 60, 3) and square.min() == 255
    assert center_square(Image.fromarray(wide), 224).shape == (60, 60, 3)
    # more than four times the model's size across: shrunk by a whole factor, never under twice it
    assert center_square(Image.new("RGB", (3000, 2000)), 224).shape == (500, 500, 3)
    assert center_square(np.zeros((2000, 3000, 3), np.uint8), 224).shape == (500, 500, 3)
    assert center_square(np.zeros((896, 896, 3), np.uint8), 224).shape == (896, 896, 3)


@pytest.mark.parametrize("side", [1, 160, 224, 450])
def test_the_encoders_resize_is_pillows_bilinear_filter(side):
    import torch
    from PIL import Image

    from fusionrec.encoders.image import resize

    picture = np.random.default_rng(side).integers(0, 256, (side, side, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(picture).resize((224, 224), Image.BILINEAR)).astype(int)
    squares = torch.from_numpy(np.stack([picture, picture])).permute(0, 3, 1, 2)
    # uint8 (the CPU's path) and float32 (what other devices get) both within one level of Pillow
    for batch in (squares, squares.float()):
        out = resize(batch, 224).permute(0, 2, 3, 1).numpy()
        assert out.shape == (2, 224, 224, 3)
        assert np.abs(out.round().astype(int) - expected).max() <= 1


# a keyframe in every segment (1.5 s) or rarer (8 s); B-frames: decoded out of the order they are shown in;
# read through from the start, or (longer than max_video_s) reached by seeking: the same frames


def test_padded_image_batches_give_each_image_the_vector_it_gets_alone():
    # A compiled backbone runs batches padded to a few fixed sizes: the padding must not leak into
    # the real rows, nor come back as extra rows.
    import torch

    from fusionrec.encoders.image import TorchImageEncoder

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.AdaptiveAvgPool2d(1))
    enc = TorchImageEncoder(net, name="tiny", size=16, device="cpu", batch_size=32)
    images = [np.random.default_rng(n).integers(0, 256, (16, 16, 3), dtype=np.uint8) for n in range(5)]
    with torch.inference_mode():
        unpadded = enc._features(images)
        alone = enc._features(images[2:3])
        enc._compiled = True  # what a compiled model on CUDA runs: the same path, padded to 8
        padded = enc._features(images)
    assert padded.shape == (5, 4)
    np.testing.assert_allclose(padded, unpadded, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(padded[2], alone[0], rtol=1e-5, atol=1e-6)
