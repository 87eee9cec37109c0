"""Colour: ICC profiles (Display P3, CMYK, grey) and HDR video seen as an sRGB screen shows them."""

import io

import numpy as np
import pytest

from fusionrec.encoders.media import MediaLimits, decode_media
from fusionrec.schemas import MediaKind
from fusionrec.testing.media import (
    cmyk_profile,
    grey_profile,
    hdr_code,
    hevc_video,
    in_p3,
    p3_profile,
    photo,
    printed,
    separated,
    srgb_light,
)

K = MediaKind


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_picture_in_display_p3_is_seen_in_srgb_as_a_colour_managed_viewer_shows_it(fmt):
    from PIL import Image

    srgb = np.asarray(Image.open(io.BytesIO(photo())).convert("RGB"), int)

    def off(**profile: bytes) -> float:  # mean distance of the decoded P3 picture to the sRGB one, in levels
        buf = io.BytesIO()
        Image.fromarray(in_p3(srgb)).save(buf, fmt, **({"quality": 95} if fmt == "JPEG" else {}), **profile)
        return float(np.abs(np.asarray(decode_media(K.IMAGE, buf.getvalue()), int) - srgb).mean())

    assert off() > 2  # P3's numbers read as sRGB: duller colours (2.6 levels off for PNG, 2.9 for JPEG)
    assert off(icc_profile=p3_profile()) < {"PNG": 0.5, "JPEG": 1.2}[fmt]  # 0.1 and 0.76: rounding, JPEG's loss


def test_a_cmyk_jpeg_for_print_is_seen_as_its_press_profile_says_it_prints():
    from PIL import Image

    inks = separated(np.asarray(Image.open(io.BytesIO(photo())).convert("RGB")))
    on_paper = printed(inks).astype(int)  # what the press prints, in sRGB

    def decoded(size: int = 1, **profile: bytes) -> np.ndarray:
        buf = io.BytesIO()  # Pillow writes CMYK JPEGs as Photoshop does: inverted, with Adobe's marker
        Image.fromarray(inks, "CMYK").resize((512 * size, 600 * size)).save(buf, "JPEG", quality=95, **profile)
        return np.asarray(decode_media(K.IMAGE, buf.getvalue()), int)

    ideal = decoded()  # no profile: ideal inks, as browsers show untagged CMYK
    assert np.abs(ideal - on_paper).mean() > 10  # 18.4 levels off
    managed = decoded(icc_profile=cmyk_profile())
    assert managed.shape == (600, 512, 3) and np.abs(managed - on_paper).mean() < 1.5  # 0.6: the table's grid, JPEG's loss
    drafted = decoded(size=2, icc_profile=cmyk_profile())  # decoded at half size, as large JPEGs are
    assert drafted.shape == (600, 512, 3) and np.abs(drafted.mean((0, 1)) - on_paper.mean((0, 1))).max() < 1.5


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "PNG with alpha"])
def test_a_grey_picture_is_seen_on_its_profiles_tone_curve(fmt):
    from PIL import Image

    grey = np.asarray(Image.open(io.BytesIO(photo())).convert("L"), int)
    alpha = np.full(grey.shape, 255, np.uint8)
    alpha[:20, :20] = 0  # a transparent corner, shown on white

    def off(gamma: float | None, tagged: bool = True) -> float:  # mean distance to the sRGB grey, in levels
        coded = grey if gamma is None else np.round(srgb_light(grey) ** (1 / gamma) * 255)
        buf = io.BytesIO()
        profile = {"icc_profile": grey_profile(gamma)} if tagged else {}
        picture = Image.fromarray(coded.astype(np.uint8), "L")
        if fmt == "PNG with alpha":
            picture = Image.merge("LA", (picture, Image.fromarray(alpha, "L")))
        picture.save(buf, fmt.split()[0], **({"quality": 95} if fmt == "JPEG" else {}), **profile)
        decoded = np.asarray(decode_media(K.IMAGE, buf.getvalue()), int)
        if fmt == "PNG with alpha":
            assert (decoded[:20, :20] == 255).all()
            return float(np.abs(decoded - grey[..., None])[alpha == 255].mean())
        return float(np.abs(decoded - grey[..., None]).mean())

    assert off(1.8, tagged=False) > 5  # gamma 1.8 read as sRGB: too light (9.6 levels off)
    assert off(1.8) < 1.5  # 0.2 for PNG, 0.6 for JPEG: rounding, JPEG's loss
    assert off(None) < 1


@pytest.mark.parametrize("profile", ["lcms", "hp", "grey-srgb", "cmyk", "unreadable"])
def test_an_srgb_unreadable_or_mismatched_profile_leaves_the_picture_as_it_is(profile):
    from PIL import Image, ImageCms
    from sklearn.datasets import load_sample_images  # librosa's dependency; its photos carry HP's sRGB profile

    from fusionrec.encoders.media.color import srgb_transform

    icc = {"lcms": ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes(),
           "hp": Image.open(load_sample_images().filenames[0]).info["icc_profile"],
           "grey-srgb": grey_profile(None),  # a grey picture on sRGB's own curve
           "cmyk": cmyk_profile(),  # on an RGB picture: not its profile
           "unreadable": b"not a profile" * 40}[profile]
    if profile in ("lcms", "hp"):
        assert "sRGB" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    mode = "L" if profile == "grey-srgb" else "RGB"
    assert srgb_transform(icc, mode) is None  # no LittleCMS pass of several ms that changes nothing

    def decoded(**kw: bytes) -> np.ndarray:
        buf = io.BytesIO()
        Image.open(io.BytesIO(photo())).convert(mode).save(buf, "JPEG", **kw)
        return np.asarray(decode_media(K.IMAGE, buf.getvalue()))

    assert np.array_equal(decoded(icc_profile=icc), decoded())


@pytest.mark.parametrize("transfer", ["pq", "hlg"])
def test_hdr_light_up_to_the_knee_is_kept_and_highlights_roll_off_to_white_keeping_their_hue(transfer):
    from fusionrec.encoders.media.color import hdr_to_sdr

    # linear BT.709 light, SDR white = 1: grey, a skin tone, an orange lamp at 4x white, a sun at 20x
    light = np.array([[[0.2, 0.2, 0.2], [0.6, 0.4, 0.3], [4.0, 1.6, 0.4], [20.0, 20.0, 20.0]]])
    codes = (hdr_code(light, transfer) * 65535 + 0.5).astype(np.uint16)
    out = hdr_to_sdr(codes, transfer, primaries=9)[0].astype(int)  # 9: BT.2020
    kept = np.round(255 * (1.055 * light[0, :2] ** (1 / 2.4) - 0.055)).astype(int)
    assert np.abs(out[:2] - kept).max() <= 1
    lamp = ((out[2] / 255 + 0.055) / 1.055) ** 2.4  # back to linear light
    assert out[2].max() >= 245 and lamp[1] / lamp[0] == pytest.approx(0.4, abs=0.02)  # still orange, not yellow
    assert out[3].tolist() == [255, 255, 255]


@pytest.mark.parametrize("transfer", ["pq", "hlg"])
def test_an_hdr_video_is_seen_as_an_sdr_screen_shows_it(transfer):
    import av
    from av.video.reformatter import ColorPrimaries, Colorspace, ColorTrc, VideoReformatter
    from PIL import Image

    def off(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a.astype(int) - b.astype(int)).mean())

    sdr = np.asarray(Image.open(io.BytesIO(photo())).convert("RGB").resize((128, 96)))
    data = hevc_video(sdr, transfer)
    frames = decode_media(K.VIDEO, data, MediaLimits(video_frames=2)).frames
    with av.open(io.BytesIO(data)) as container:
        frame = next(container.decode(video=0))
    # Read as SDR, PQ comes out dark and grey, HLG washed out (30 and 15 levels off on average).
    assert off(frame.to_ndarray(format="rgb24"), sdr) > 12
    # FFmpeg's own colour management, as a reference: it builds a 3D table first (about 2 s here).
    managed = VideoReformatter().reformat(
        frame, format="rgb24", dst_colorspace=Colorspace.ITU709, dst_color_trc=ColorTrc.IEC61966_2_1,
        dst_color_primaries=ColorPrimaries.BT709, threads=1,
    ).to_ndarray()
    for decoded in frames:  # what is left is the chroma halved both ways in 4:2:0 (FFmpeg's reference is as far off)
        assert off(decoded, sdr) < 5 and off(decoded, managed) < 4
