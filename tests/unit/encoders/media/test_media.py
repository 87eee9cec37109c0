"""The media policy, the decode checks and image batching, on local files and made-up host names (no network)."""

import io

import numpy as np
import pytest

from fusionrec.agents.encode_items import check_vectors
from fusionrec.encoders import media
from fusionrec.encoders.media import MediaLimits, _flac, _windows_clip, audio_windows, decode_media
from fusionrec.schemas import ErrorCode, EventError, Item, MediaKind, MediaRef
from fusionrec.encoders.media.fetch import MediaPolicy, MemoryMediaFetcher, PolicyMediaFetcher
from fusionrec.testing.media import (
    audio_file, cmyk_profile, grey_profile, hdr_code, hevc_video, in_p3, long_video, mp4, p3_profile, photo, png, printed, separated,
    srgb_light, streamed, two_sound_tracks, wav,
)

K = MediaKind
HOSTS = {"cdn.example.com": ["93.184.216.34"], "intranet.example.com": ["10.1.2.3"],
         "sneaky.example.com": ["93.184.216.34", "127.0.0.1"], "v6.example.com": ["::1"],
         "shared.example.com": ["100.100.100.200"]}


def fetcher(tmp_path, **kw) -> PolicyMediaFetcher:
    return PolicyMediaFetcher(MediaPolicy(media_root=tmp_path / "media", **kw), resolve=lambda h: HOSTS[h])


def code_of(fn) -> ErrorCode:
    with pytest.raises(EventError) as info:
        fn()
    return info.value.code


@pytest.fixture
def media_dir(tmp_path):
    root = tmp_path / "media"
    (root / "img").mkdir(parents=True)
    (root / "img" / "a.png").write_bytes(b"png-bytes")
    (tmp_path / "secret.txt").write_text("outside")
    (root / "link").symlink_to(tmp_path / "secret.txt")
    return root


def test_file_uris_inside_the_root_are_read(tmp_path, media_dir):
    assert fetcher(tmp_path).fetch(K.IMAGE, MediaRef(uri=f"file://{media_dir}/img/a.png")) == b"png-bytes"


def test_a_root_that_is_a_link_is_followed_where_it_points_now(tmp_path):
    for release in ("v1", "v2"):
        (tmp_path / release).mkdir()
        (tmp_path / release / "a.png").write_bytes(release.encode())
    root = tmp_path / "media"
    root.symlink_to(tmp_path / "v1")
    f = fetcher(tmp_path)
    assert f.fetch(K.IMAGE, MediaRef(uri=f"file://{root}/a.png")) == b"v1"
    assert f.fetch(K.IMAGE, MediaRef(uri=f"file://{tmp_path}/v1/a.png")) == b"v1"  # by its target's own path
    root.unlink()
    root.symlink_to(tmp_path / "v2")  # a deploy points the root at a new release of the media
    assert f.fetch(K.IMAGE, MediaRef(uri=f"file://{root}/a.png")) == b"v2"
    assert code_of(lambda: f.fetch(K.IMAGE, MediaRef(uri=f"file://{tmp_path}/v1/a.png"))) is ErrorCode.MEDIA_NOT_ALLOWED


def test_what_is_not_a_file_in_the_root_is_refused_without_waiting(tmp_path, media_dir):
    import os
    import threading

    os.mkfifo(media_dir / "pipe")  # nothing writes to it: reading it would wait for a writer for ever
    f, codes = fetcher(tmp_path), {}

    def fetch(name: str) -> None:
        codes[name] = code_of(lambda: f.fetch(K.AUDIO, MediaRef(uri=f"file://{media_dir}/{name}")))

    for name in ("pipe", "img"):  # on a thread: a fetch that waits must fail the test, not hang it
        fetching = threading.Thread(target=fetch, args=(name,), daemon=True)
        fetching.start()
        fetching.join(timeout=10)
    assert codes == {"pipe": ErrorCode.MEDIA_FETCH_FAILED, "img": ErrorCode.MEDIA_FETCH_FAILED}


@pytest.mark.parametrize(
    ("uri", "code"),
    [
        ("file://{root}/../secret.txt", ErrorCode.MEDIA_NOT_ALLOWED),  # traversal
        ("file://{root}/img/%2e%2e/%2e%2e/secret.txt", ErrorCode.MEDIA_NOT_ALLOWED),  # encoded traversal
        ("file://{root}/link", ErrorCode.MEDIA_NOT_ALLOWED),  # symlink out of the root
        ("file:///etc/passwd", ErrorCode.MEDIA_NOT_ALLOWED),
        ("file://otherhost/{root}/img/a.png", ErrorCode.MEDIA_NOT_ALLOWED),
        ("file://{root}/img/missing.png", ErrorCode.MEDIA_FETCH_FAILED),
        ("ftp://cdn.example.com/a.png", ErrorCode.MEDIA_NOT_ALLOWED),
        ("gopher://cdn.example.com/a.png", ErrorCode.MEDIA_NOT_ALLOWED),
        ("a.png", ErrorCode.MEDIA_NOT_ALLOWED),
        ("http://127.0.0.1:8080/a.png", ErrorCode.MEDIA_NOT_ALLOWED),
        ("http://[::1]/a.png", ErrorCode.MEDIA_NOT_ALLOWED),
        ("http://intranet.example.com/a.png", ErrorCode.MEDIA_NOT_ALLOWED),
        ("http://sneaky.example.com/a.png", ErrorCode.MEDIA_NOT_ALLOWED),  # one private answer is enough
        ("http://v6.example.com/a.png", ErrorCode.MEDIA_NOT_ALLOWED),
        ("http://169.254.169.254/latest/meta-data", ErrorCode.MEDIA_NOT_ALLOWED),
        ("http://shared.example.com/latest/meta-data", ErrorCode.MEDIA_NOT_ALLOWED),  # Alibaba Cloud's metadata
        ("http://[64:ff9b::a9fe:a9fe]/latest/meta-data", ErrorCode.MEDIA_NOT_ALLOWED),  # 169.254.169.254 by NAT64
        ("http://[2002:a9fe:a9fe::]/latest/meta-data", ErrorCode.MEDIA_NOT_ALLOWED),  # and by a 6to4 tunnel
        ("http://[64:ff9b:1::a9fe:a9fe]/latest/meta-data", ErrorCode.MEDIA_NOT_ALLOWED),  # a site's own NAT64
        ("http:///nohost", ErrorCode.MEDIA_NOT_ALLOWED),
    ],
)
def test_policy_refuses(tmp_path, media_dir, uri, code):
    assert code_of(lambda: fetcher(tmp_path).fetch(K.IMAGE, MediaRef(uri=uri.format(root=media_dir)))) is code


def test_through_a_proxy_the_host_is_checked_before_the_request(tmp_path, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # the proxy would connect: nothing listens there
    f = fetcher(tmp_path)
    assert code_of(lambda: f.fetch(K.IMAGE, MediaRef(uri="http://intranet.example.com/a.png"))) is ErrorCode.MEDIA_NOT_ALLOWED
    assert code_of(lambda: f.fetch(K.IMAGE, MediaRef(uri="http://10.1.2.3/a.png"))) is ErrorCode.MEDIA_NOT_ALLOWED


def test_http_can_be_switched_off(tmp_path):
    f = fetcher(tmp_path, allow_http=False)
    assert code_of(lambda: f.fetch(K.IMAGE, MediaRef(uri="https://cdn.example.com/a.png"))) is ErrorCode.MEDIA_NOT_ALLOWED


def test_file_media_needs_a_root():
    f = PolicyMediaFetcher(MediaPolicy(media_root=None))
    assert code_of(lambda: f.fetch(K.IMAGE, MediaRef(uri="file:///tmp/a.png"))) is ErrorCode.MEDIA_NOT_ALLOWED


def test_size_limits_per_modality(tmp_path, media_dir):
    f = fetcher(tmp_path, max_bytes={K.IMAGE: 4, K.AUDIO: 100, K.VIDEO: 100})
    assert code_of(lambda: f.fetch(K.IMAGE, MediaRef(data=b"12345"))) is ErrorCode.MEDIA_TOO_LARGE
    assert code_of(lambda: f.fetch(K.IMAGE, MediaRef(uri=f"file://{media_dir}/img/a.png"))) is ErrorCode.MEDIA_TOO_LARGE
    assert f.fetch(K.AUDIO, MediaRef(data=b"12345")) == b"12345"


def test_audio_and_video_files_are_read_in_place_in_parts_within_the_limit(tmp_path, media_dir):
    data = bytes(range(256)) * 1000
    (media_dir / "v.bin").write_bytes(data)
    # three 32 KiB blocks, and every clip or video read in parts (not whole, as one of a few MB is)
    f = fetcher(tmp_path, max_bytes={K.IMAGE: 10, K.AUDIO: 10, K.VIDEO: 100_000}, whole_bytes=0)
    assert code_of(lambda: f.fetch(K.IMAGE, MediaRef(uri=f"file://{media_dir}/v.bin"))) is ErrorCode.MEDIA_TOO_LARGE
    with f.fetch(K.VIDEO, MediaRef(uri=f"file://{media_dir}/v.bin")) as reader:
        assert reader.seek(0, io.SEEK_END) == len(data)
        reader.seek(40_000)
        assert reader.read(50_000) == data[40_000:90_000]  # blocks 1 and 2
        reader.seek(-56_000, io.SEEK_END)
        assert reader.read(10) == data[200_000:200_010]  # block 6
        reader.seek(45_000)
        assert reader.read(100) == data[45_000:45_100] and reader.fetched == 3 * 32_768  # read again, not fetched
        reader.seek(0)
        assert reader.read(10) == b"" and reader.error.code is ErrorCode.MEDIA_TOO_LARGE  # block 0 is one too many
        reader.seek(45_000)
        assert reader.read(100) == b""  # it stays ended: a decoder must not make do with what follows


def test_content_type_must_match_the_modality(tmp_path):
    f = fetcher(tmp_path)
    assert f.fetch(K.IMAGE, MediaRef(data=b"x", content_type="image/png; q=1")) == b"x"
    assert f.fetch(K.AUDIO, MediaRef(data=b"x", content_type="application/octet-stream")) == b"x"
    assert code_of(lambda: f.fetch(K.IMAGE, MediaRef(data=b"x", content_type="text/html"))) is ErrorCode.MEDIA_NOT_ALLOWED
    assert code_of(lambda: f.fetch(K.VIDEO, MediaRef(data=b"x", content_type="audio/ogg"))) is ErrorCode.MEDIA_NOT_ALLOWED


def test_memory_fetcher_twin():
    f = MemoryMediaFetcher({"mem://a": b"x"})
    assert f.fetch(K.IMAGE, MediaRef(uri="mem://a")) == b"x"
    assert code_of(lambda: f.fetch(K.IMAGE, MediaRef(uri="mem://b"))) is ErrorCode.MEDIA_FETCH_FAILED


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


def test_video_frames_come_out_of_the_decoder_no_larger_than_the_image_models_size():
    from PIL import Image

    from fusionrec.encoders.image import center_square

    video = decode_media(K.VIDEO, mp4(frames=4, size=(64, 48)), MediaLimits(video_frames=2, frame_size=32))
    assert [f.shape for f in video.frames] == [(32, 43, 3)] * 2  # short side 32, aspect kept
    assert center_square(video.frames[0], 32).shape == (32, 32, 3)
    # smaller frames keep their size: the encoder enlarges them on its device
    small = decode_media(K.VIDEO, mp4(frames=4, size=(64, 48)), MediaLimits(video_frames=2, frame_size=224))
    full = decode_media(K.VIDEO, mp4(frames=4, size=(64, 48)), MediaLimits(video_frames=1)).frames[0]
    assert full.shape == (48, 64, 3) and [f.shape for f in small.frames] == [(48, 64, 3)] * 2
    # an array gives the same square as the same picture given to Pillow
    assert np.array_equal(center_square(full, 32), center_square(Image.fromarray(full), 32))


# EXIF orientation -> how the stored picture was turned from upright (the inverse of the turn back)
STORED_TURNS = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_90",
                7: "TRANSVERSE", 8: "ROTATE_270"}


def tagged(picture, fmt: str, orientation: int) -> bytes:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    picture.save(buf, fmt, exif=exif)
    return buf.getvalue()


def upright_photo():
    from PIL import Image

    return Image.open(io.BytesIO(photo())).convert("RGB").crop((0, 0, 512, 384))  # not square


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

    from fusionrec.encoders.media.color import _srgb_transform

    icc = {"lcms": ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes(),
           "hp": Image.open(load_sample_images().filenames[0]).info["icc_profile"],
           "grey-srgb": grey_profile(None),  # a grey picture on sRGB's own curve
           "cmyk": cmyk_profile(),  # on an RGB picture: not its profile
           "unreadable": b"not a profile" * 40}[profile]
    if profile in ("lcms", "hp"):
        assert "sRGB" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    mode = "L" if profile == "grey-srgb" else "RGB"
    assert _srgb_transform(icc, mode) is None  # no LittleCMS pass of several ms that changes nothing

    def decoded(**kw: bytes) -> np.ndarray:
        buf = io.BytesIO()
        Image.open(io.BytesIO(photo())).convert(mode).save(buf, "JPEG", **kw)
        return np.asarray(decode_media(K.IMAGE, buf.getvalue()))

    assert np.array_equal(decoded(icc_profile=icc), decoded())


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


@pytest.mark.parametrize(("fmt", "codec"), [("webm", "libvpx"), ("mpegts", "libx264")])
def test_frames_are_spread_over_a_streamed_video_that_does_not_say_its_length_or_starts_late(fmt, codec):
    import math

    import av

    from fusionrec.encoders.media import sample_times

    data = streamed(fmt, codec, frames=40)  # 5 s at 8 fps; one keyframe, the first frame
    with av.open(io.BytesIO(data)) as container:
        video = container.streams.video[0]
        said = (video.duration, video.start_time)
    assert said == ((None, 0) if fmt == "webm" else (450000, 22500))  # no length; starts at 0.25 s
    video = decode_media(K.VIDEO, data, MediaLimits(video_frames=8))
    # the first frame at or after each sample time over the 5 s, counted from the first frame
    expected = [math.ceil(8 * t - 1e-9) for t in sample_times([0.0], 5.0, 8)]
    assert [round(f[0, 0, 0] / 6) for f in video.frames] == expected


def test_anamorphic_video_frames_come_out_as_wide_as_they_are_shown():
    from PIL import Image

    # 48 x 48 pixels each 4/3 as wide as tall: shown 64 x 48, the left half black, the right white
    half = np.zeros((48, 48, 3), np.uint8)
    half[:, 24:] = 255
    picture = io.BytesIO()
    Image.fromarray(half).save(picture, "PNG")
    data = mp4(frames=2, size=(48, 48), image=picture.getvalue(), pixel_aspect=(4, 3))
    frame = decode_media(K.VIDEO, data, MediaLimits(video_frames=1)).frames[0]
    assert frame.shape == (48, 64, 3)
    assert frame[:, :28].max() < 40 and frame[:, 36:].min() > 215  # each half 32 wide, edges blurred
    assert decode_media(K.VIDEO, data, MediaLimits(video_frames=1, frame_size=32)).frames[0].shape == (32, 43, 3)


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_video_frames_come_out_as_the_display_matrix_shows_them(rotation):
    plain = decode_media(K.VIDEO, mp4(frames=4, size=(64, 48), image=photo()), MediaLimits(video_frames=2))
    turned = decode_media(K.VIDEO, mp4(frames=4, size=(64, 48), image=photo(), rotation=rotation),
                          MediaLimits(video_frames=2, frame_size=32))
    # scaled to the model's size while still in YUV, then turned: the short side stays 32
    assert [f.shape for f in turned.frames] == [(32, 43, 3) if rotation == 180 else (43, 32, 3)] * 2
    full = decode_media(K.VIDEO, mp4(frames=4, size=(64, 48), image=photo(), rotation=rotation),
                        MediaLimits(video_frames=2))
    for a, b in zip(full.frames, plain.frames, strict=True):
        assert np.array_equal(a, np.rot90(b, rotation // 90)) and a.flags.c_contiguous


def test_a_cover_picture_stored_before_the_video_is_not_sampled_for_it():
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as container:
        cover = container.add_stream("mjpeg", rate=1)  # one white frame, track 0
        cover.width, cover.height, cover.pix_fmt = 32, 32, "yuvj420p"
        moving = container.add_stream("mpeg4", rate=8)
        moving.width, moving.height, moving.pix_fmt = 64, 48, "yuv420p"
        for packet in cover.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), 250, np.uint8), format="rgb24")):
            container.mux(packet)
        for packet in cover.encode():
            container.mux(packet)
        for i in range(16):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 10, np.uint8), format="rgb24")
            for packet in moving.encode(frame):
                container.mux(packet)
        for packet in moving.encode():
            container.mux(packet)
    frames = decode_media(K.VIDEO, buf.getvalue(), MediaLimits(video_frames=4)).frames
    assert [f.shape for f in frames] == [(48, 64, 3)] * 4
    assert [int(f[0, 0, 0]) for f in frames] == sorted({int(f[0, 0, 0]) for f in frames})  # four moments, in order


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


def test_video_frames_are_converted_on_the_decoding_thread(monkeypatch):
    # swscale's default is a pool of as many threads as the host has cores, started for every
    # converter (every video) and woken for every small frame: on 16 cores several times the work.
    from av.video import reformatter

    real, asked = reformatter.VideoReformatter, []

    class Spy:  # VideoReformatter cannot be subclassed
        def __init__(self) -> None:
            self._real = real()

        def reformat(self, frame, **kw):
            asked.append(kw.get("threads"))
            return self._real.reformat(frame, **kw)

    monkeypatch.setattr(reformatter, "VideoReformatter", Spy)
    video = decode_media(K.VIDEO, mp4(frames=8, size=(320, 240)), MediaLimits(video_frames=4, frame_size=32))
    assert len(video.frames) == 4 and asked and set(asked) == {1}


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
@pytest.mark.parametrize("max_video_s", [60.0, 5.0])
@pytest.mark.parametrize(("gop", "bframes"), [(12, 0), (64, 0), (12, 2)])
def test_a_long_videos_samples_are_the_frames_a_full_decode_has_at_the_sample_times(gop, bframes, max_video_s):
    import av

    from fusionrec.encoders.media import sample_times

    data = mp4(frames=160, audio=True, size=(64, 48), image=photo(), gop=gop, bframes=bframes)  # 20 s at 8 fps
    got = decode_media(K.VIDEO, data, MediaLimits(video_frames=6, max_video_s=max_video_s, audio_windows=1))
    with av.open(io.BytesIO(data)) as container:
        every = [(f.time, f.key_frame, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    assert 150 <= len(every) <= 160
    keyframes = [t for t, key, _ in every if key]
    assert len(keyframes) == -(-160 // gop)
    wanted = sample_times(keyframes, 20.0, 6)
    # six 3.3 s segments: the keyframe nearest each one's middle, or the middle where it holds none
    assert wanted == pytest.approx([1.5, 4.5, 9.0, 12.0, 15.0, 18.0] if gop == 12 else [0.0, 5.0, 8.0, 35 / 3, 16.0, 55 / 3])
    if gop == 64 and max_video_s < 20:
        # sought, a middle is decoded from a keyframe at most 5 / 6 s before it: 8 s apart, that keyframe
        # stands in, so a video keyframed once costs no more than reading through max_video_s
        wanted = [0.0, 0.0, 8.0, 8.0, 16.0, 16.0]
    expected = [next(img for t, _, img in every if t >= w - 1e-6) for w in wanted]
    assert len(got.frames) == 6
    for frame, want in zip(got.frames, expected, strict=True):
        assert np.array_equal(frame, want)
    assert abs(got.audio.seconds - 20.0) < 0.15  # the track is read whole meanwhile


def _grey(seconds: float, t: float) -> float:
    """The grey of fusionrec.testing.media.long_video's frame at ``t``."""
    return 20 + 200 * t / seconds


# each container's own seeking: MP4's and MOV's index, Matroska's cues, MPEG-TS by bytes (its clock
# starts past zero), AVI's index
@pytest.mark.parametrize(("fmt", "codec", "sound_codec"), [
    ("mp4", "libx264", "aac"), ("mov", "mpeg4", "aac"), ("matroska", "libx264", "aac"),
    ("webm", "libvpx-vp9", "libopus"), ("mpegts", "mpeg2video", "aac"), ("avi", "mpeg4", "libmp3lame"),
])
def test_a_video_longer_than_the_limit_is_sampled_and_heard_over_all_of_it(fmt, codec, sound_codec):
    # 90 s brightening over its length, a different tone in each third: its first 60 s (what used to be
    # sampled) never get brighter than 153, and its first 30 s of sound hold the first tone alone
    data = long_video(fmt, codec, sound_codec, 90, three_tones(16_000))
    video = decode_media(K.VIDEO, data, MediaLimits(max_video_s=60.0, video_frames=8, max_audio_s=30.0))
    # a keyframe every 2 s: the one nearest each 11.25 s segment's middle is at most 1 s from it
    middles = [11.25 * (i + 0.5) for i in range(8)]
    np.testing.assert_allclose([f.mean() for f in video.frames], [_grey(90, t) for t in middles], atol=200 / 90 + 2)
    assert video.audio.samples.shape == (3, 160_000)
    heard = [np.argmax(np.abs(np.fft.rfft(window))) * 16_000 / window.size for window in video.audio.samples]
    np.testing.assert_allclose(heard, TONES, atol=1.0)


def test_a_video_up_to_the_limit_is_read_through_and_its_long_sound_heard_in_windows():
    data = long_video("mp4", "libx264", "aac", 45, three_tones(16_000, part_s=15.0))
    video = decode_media(K.VIDEO, data, MediaLimits(max_video_s=60.0, video_frames=8, max_audio_s=30.0))
    # a keyframe every 2 s: the one nearest each 5.6 s segment's middle is at most 1 s from it
    middles = [45 / 8 * (i + 0.5) for i in range(8)]
    np.testing.assert_allclose([f.mean() for f in video.frames], [_grey(45, t) for t in middles], atol=200 / 45 + 2)
    assert video.audio.samples.shape == (3, 160_000)
    heard = [np.argmax(np.abs(np.fft.rfft(window))) * 16_000 / window.size for window in video.audio.samples]
    np.testing.assert_allclose(heard, TONES, atol=1.0)


def test_a_long_videos_short_sound_is_read_from_its_start_after_the_frames_are_sought():
    t = np.arange(20 * 16_000) / 16_000
    tone = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    data = long_video("mp4", "libx264", "aac", 90, tone)
    video = decode_media(K.VIDEO, data, MediaLimits(max_video_s=60.0))
    assert video.audio.samples.ndim == 1 and abs(video.audio.seconds - 20.0) < 0.15
    # sample for sample what the file's sound is, read alone from its start without a seek
    np.testing.assert_array_equal(video.audio.samples, decode_media(K.AUDIO, data).samples)
    assert _grey(90, 80) < video.frames[-1].mean()


class _Frame:
    def __init__(self, time: float) -> None:
        self.time = time


class _Packet:
    """A fake demuxed packet: one frame per packet, no reordering; records being decoded."""

    def __init__(self, time: float, key: bool, log: list) -> None:
        self.time, self.is_keyframe, self.log = time, key, log

    def decode(self) -> list:
        self.log.append(self.time)
        return [_Frame(self.time)]


class _Codec:
    def __init__(self, log: list) -> None:
        self.log = log

    def flush_buffers(self) -> None:
        self.log.append("flush")


def test_only_the_packets_that_lead_to_a_sampled_frame_are_decoded():
    from fusionrec.encoders.media import _frames_at

    log: list = []
    times = [i / 4 for i in range(40)]  # 10 s at 4 fps, a keyframe every 2 s
    packets = [_Packet(t, i % 8 == 0, log) for i, t in enumerate(times)]
    picked = _frames_at(_Codec(log), packets, times, [0.0, 2.0, 4.75, 5.0, 9.5, 12.0])
    assert [f.time for f in picked] == [0.0, 2.0, 4.75, 5.0, 9.5, 9.75]  # past the end: the last frame
    # keyframes alone, then the run from 4.0 to 5.0, then from 8.0 to the end; a flush at each jump
    assert log == [0.0, "flush", 2.0, "flush", 4.0, 4.25, 4.5, 4.75, 5.0, "flush", 8.0, 8.25, 8.5, 8.75, 9.0,
                   9.25, 9.5, 9.75]
    assert _frames_at(_Codec([]), [], [], [1.0]) == [None]


@pytest.mark.parametrize("rate", [16000, 22050])
def test_video_sound_comes_out_mono_at_16k_whatever_its_rate(rate):
    import numpy as np

    clip = decode_media(K.VIDEO, mp4(frames=16, audio=True, rate=rate)).audio
    assert clip.sample_rate == 16_000 and abs(clip.seconds - 2.0) < 0.15  # AAC pads a frame or two
    crossings = np.count_nonzero(np.diff(np.signbit(clip.samples[2000:-2000])))  # past the codec's edges
    assert abs(crossings / (len(clip.samples) - 4000) * 16000 / 2 - 330) < 5  # still a 330 Hz tone


@pytest.mark.parametrize("kind", [K.VIDEO, K.AUDIO])
@pytest.mark.parametrize("fmt", ["matroska", "mp4"])
@pytest.mark.parametrize("description_first", [True, False])
def test_the_sound_is_the_track_a_player_plays_not_an_audio_description(kind, fmt, description_first):
    data = two_sound_tracks(fmt, video=kind is K.VIDEO, description_first=description_first)
    media = decode_media(kind, data)
    clip = media.audio if kind is K.VIDEO else media
    crossings = np.count_nonzero(np.diff(np.signbit(clip.samples[2000:-2000])))
    assert abs(crossings / (len(clip.samples) - 4000) * 16000 / 2 - 330) < 5  # the tone; noise crosses thousands of times


@pytest.mark.parametrize("rate", [16000, 22050])
def test_a_stereo_track_is_the_mean_of_its_channels_as_libsndfile_files_are(rate):
    import numpy as np

    def rms(left_only: bool) -> float:
        clip = decode_media(K.VIDEO, mp4(frames=16, audio=True, rate=rate, left_only=left_only)).audio
        return float(np.sqrt(np.mean(clip.samples[2000:-2000] ** 2)))

    assert rms(left_only=True) / rms(left_only=False) == pytest.approx(0.5, abs=0.02)
    assert rms(left_only=False) == pytest.approx(0.3 / np.sqrt(2), rel=0.05)  # the tone's own level


def test_a_stereo_file_comes_out_as_the_mean_of_its_channels():
    import soundfile

    t = np.arange(16000) / 16000
    left, right = 0.4 * np.sin(2 * np.pi * 330 * t), 0.2 * np.cos(2 * np.pi * 50 * t)
    buf = io.BytesIO()
    soundfile.write(buf, np.stack([left, right], axis=1), 16000, format="FLAC", subtype="PCM_24")
    clip = decode_media(K.AUDIO, buf.getvalue())
    np.testing.assert_allclose(clip.samples, (left + right) / 2, atol=1e-5)


def flac(subtype: str = "PCM_16", rate: int = 16_000, channels: int = 1, seconds: float = 2.0) -> bytes:
    import soundfile

    noise = np.random.default_rng(0).normal(0, 0.2, (int(seconds * rate), channels)).clip(-1, 1)
    buf = io.BytesIO()
    soundfile.write(buf, noise, rate, format="FLAC", subtype=subtype)
    return buf.getvalue()


def decoded(data: bytes, limits: MediaLimits | None = None) -> np.ndarray | ErrorCode:
    try:
        return decode_media(K.AUDIO, data, limits or MediaLimits()).samples
    except EventError as exc:
        return exc.code


def by_libsndfile(monkeypatch, data: bytes, limits: MediaLimits | None = None) -> np.ndarray | ErrorCode:
    """What ``data`` decodes to with dr_flac left out: libsndfile reading every FLAC file."""
    with monkeypatch.context() as m:
        m.setattr(media, "_flac", lambda *args: None)
        return decoded(data, limits)


@pytest.mark.parametrize("subtype", ["PCM_S8", "PCM_16", "PCM_24"])
@pytest.mark.parametrize(("rate", "channels"), [(16_000, 1), (44_100, 2), (48_000, 6)])
def test_dr_flac_reads_a_flac_file_to_the_same_samples_as_libsndfile(monkeypatch, subtype, rate, channels):
    data = flac(subtype, rate, channels)
    read = []
    monkeypatch.setattr(media, "_flac", lambda *args: read.append(_flac(*args)) or read[-1])
    samples = decoded(data)
    assert read and read[0] is not None  # dr_flac read it
    np.testing.assert_array_equal(samples, by_libsndfile(monkeypatch, data))
    # a file longer than the limit is heard in windows: libsndfile seeks to them, as before
    short = MediaLimits(max_audio_s=1.0)
    np.testing.assert_array_equal(decoded(data, short), by_libsndfile(monkeypatch, data, short))


def same(a: np.ndarray | ErrorCode, b: np.ndarray | ErrorCode) -> bool:
    return a is b if isinstance(a, ErrorCode) or isinstance(b, ErrorCode) else np.array_equal(a, b)


def damaged(data: bytes, how: str) -> bytes:
    broken = bytearray(data)
    if how == "frame":  # a byte in the middle of the audio: its frame fails its CRC
        broken[len(data) // 2] ^= 0x55
    elif how == "metadata":  # the second block's type made STREAMINFO's: libFLAC refuses the file
        broken[42] &= 0x80
    elif how == "length":  # STREAMINFO says there are 256 samples more than there are
        assert broken[22:26] == (32_000).to_bytes(4, "big")
        broken[22:26] = (32_256).to_bytes(4, "big")
    else:  # truncated
        del broken[len(data) * 2 // 3 :]
    return bytes(broken)


@pytest.mark.parametrize("how", ["frame", "metadata", "length", "truncated"])
def test_a_damaged_flac_file_decodes_as_libsndfile_decodes_it(monkeypatch, how):
    # dr_flac passes over a frame that fails its CRC (the file comes out short) and reads on past
    # metadata libFLAC refuses: libsndfile opens every file first and reads any dr_flac cuts short
    data = damaged(flac(), how)
    assert same(decoded(data), by_libsndfile(monkeypatch, data))


def test_dr_flac_never_hears_what_neither_libsndfile_nor_the_file_holds(monkeypatch):
    # 400 files damaged at random: each decodes as libsndfile decodes it, or (where libsndfile
    # refuses it or reads noise, and dr_flac's CRCs pass) to the file's own audio, whole or cut short
    rng = np.random.default_rng(0)
    originals = [flac(seconds=seconds) for seconds in (0.5, 1.0)] + [flac("PCM_24", 44_100, 2, 0.5)]
    for i in range(400):
        data = bytearray(originals[i % len(originals)])
        if i % 4 == 0:  # bits flipped anywhere
            for k in rng.integers(0, len(data), rng.integers(1, 20)):
                data[k] ^= 1 << rng.integers(0, 8)
        elif i % 4 == 1:  # truncated
            del data[rng.integers(4, len(data)) :]
        elif i % 4 == 2:  # the header and first frame written over
            k = rng.integers(0, 200)
            data[k : k + rng.integers(1, 8)] = rng.bytes(rng.integers(1, 8))
        else:  # bytes slipped in
            k = rng.integers(0, len(data))
            data[k:k] = rng.bytes(rng.integers(1, 64))
        ours, theirs = decoded(bytes(data)), by_libsndfile(monkeypatch, bytes(data))
        if not same(ours, theirs):
            truth = decoded(originals[i % len(originals)])
            assert isinstance(ours, np.ndarray) and np.array_equal(ours, truth[: len(ours)]), (i, ours, theirs)


def test_every_sample_layout_comes_out_as_the_mean_of_its_channels():
    import av
    import numpy as np

    from fusionrec.encoders.media import _TrackReader

    t = np.arange(1024) / 16000
    left, right = (0.4 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), (0.2 * np.cos(2 * np.pi * 50 * t)).astype(np.float32)
    packed = np.stack([left, right], axis=1).reshape(1, -1)
    for fmt, samples in [("fltp", np.stack([left, right])), ("flt", packed), ("s16", (packed * 32767).astype(np.int16))]:
        frame = av.AudioFrame.from_ndarray(samples, format=fmt, layout="stereo")
        frame.sample_rate = 16000
        track = _TrackReader(max_s=1.0)
        track.add(frame)
        np.testing.assert_allclose(track.samples(), (left + right) / 2, atol=1e-4, err_msg=fmt)
    track = _TrackReader(max_s=1.0)  # a stream whose layout changes part way
    for samples, layout in [(left[None, :], "mono"), (np.stack([left, right]), "stereo")]:
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout=layout)
        frame.sample_rate = 16000
        track.add(frame)
    np.testing.assert_allclose(track.samples(), np.concatenate([left, (left + right) / 2]), atol=1e-6)


@pytest.mark.parametrize("windows", [1, 3])
def test_audio_limits_bound_the_decoded_length(windows):
    clip = decode_media(K.AUDIO, wav(seconds=3.0, rate=22050), MediaLimits(max_audio_s=1.0, audio_windows=windows))
    assert abs(clip.seconds - 1.0) < 0.01


TONES = (300.0, 1000.0, 3000.0)


def three_tones(rate: int, part_s: float = 30.0) -> np.ndarray:
    t = np.arange(int(part_s * rate)) / rate
    return np.concatenate([0.3 * np.sin(2 * np.pi * f * t) for f in TONES]).astype(np.float32)


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3", "m4a"])
def test_a_clip_longer_than_the_limit_is_heard_in_windows_spread_over_all_of_it(fmt):
    # 90 s of 44.1 kHz stereo, a different tone in each third: its first 30 s hold only the first tone
    data = audio_file(three_tones(44_100), 44_100, fmt)
    clip = decode_media(K.AUDIO, data, MediaLimits(max_audio_s=30.0, audio_windows=3))
    assert clip.samples.shape == (3, 160_000)  # 10 s at 16 kHz from each third
    heard = [np.argmax(np.abs(np.fft.rfft(window))) * 16_000 / window.size for window in clip.samples]
    np.testing.assert_allclose(heard, TONES, atol=1.0)
    start = decode_media(K.AUDIO, data, MediaLimits(max_audio_s=30.0, audio_windows=1))
    assert start.samples.shape == (480_000,)


@pytest.mark.parametrize("fmt", ["wav", "flac", "m4a"])
def test_each_window_holds_the_samples_found_at_its_place_in_the_whole_clip(fmt):
    # noise, so a window one sample off does not match; M4A's windows are reached by seeking, and
    # AAC needs the frame before each window decoded too (it overlaps with it)
    rng = np.random.default_rng(0)
    noise = np.convolve(rng.normal(0, 0.2, 100 * 16_000), np.ones(4) / 4, "same").astype(np.float32)
    data = audio_file(noise, 16_000, fmt)
    whole = decode_media(K.AUDIO, data, MediaLimits(max_audio_s=200.0)).samples  # read from the start, no seek
    clip = decode_media(K.AUDIO, data, MediaLimits(max_audio_s=30.0, audio_windows=3))
    assert clip.samples.shape == (3, 160_000)
    import av

    with av.open(io.BytesIO(data)) as container:  # the windows go by the length the file states
        sound = container.streams.audio[0]
        seconds = float(sound.duration * sound.time_base)  # M4A: 100.064 s, AAC's priming frame included
    for window, start in zip(clip.samples, audio_windows(seconds, 30.0, 3), strict=True):
        at = round(start * 16_000)
        np.testing.assert_array_equal(window, whole[at : at + window.size])


def test_a_window_the_file_ends_before_is_left_out():
    # a VBR MP3 without a length header says it is longer than it is: its last window comes back short
    full, short = np.ones(16_000, np.float32), np.ones(3_000, np.float32)
    assert _windows_clip([full, full[:15_000], short], 1.0).samples.shape == (2, 15_000)
    assert _windows_clip([short, np.zeros(0, np.float32)], 1.0).samples.shape == (1, 3_000)
    with pytest.raises(ValueError, match="no audio samples"):
        _windows_clip([np.zeros(0, np.float32)] * 3, 1.0)


@pytest.mark.parametrize(
    ("vectors", "ok"),
    [({"clip": [0.1] * 4}, True), ({"clip": [0.1] * 3}, False), ({"other": [0.1] * 4}, False),
     ({"clip": [0.1, float("nan"), 0, 0]}, False), ({"clip": [float("inf"), 0, 0, 0]}, False)],
)
def test_ready_made_vectors_are_declared_sized_and_finite(vectors, ok):
    item = Item(id="a", title="t", vectors=vectors)
    if ok:
        check_vectors(item, {"clip": 4})
    else:
        assert code_of(lambda: check_vectors(item, {"clip": 4})) is ErrorCode.BAD_VECTOR


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
