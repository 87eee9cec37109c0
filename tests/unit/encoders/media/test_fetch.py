"""The media policy on local files and made-up host names (no network), and the fetcher twin."""

import io

import pytest

from fusionrec.encoders.media.fetch import MediaPolicy, MemoryMediaFetcher, PolicyMediaFetcher
from fusionrec.schemas import ErrorCode, MediaKind, MediaRef
from fusionrec.testing.checks import code_of

K = MediaKind


HOSTS = {"cdn.example.com": ["93.184.216.34"], "intranet.example.com": ["10.1.2.3"],
         "sneaky.example.com": ["93.184.216.34", "127.0.0.1"], "v6.example.com": ["::1"],
         "shared.example.com": ["100.100.100.200"]}


def fetcher(tmp_path, **kw) -> PolicyMediaFetcher:
    return PolicyMediaFetcher(MediaPolicy(media_root=tmp_path / "media", **kw), resolve=lambda h: HOSTS[h])


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
