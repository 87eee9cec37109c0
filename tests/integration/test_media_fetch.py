"""Long audio and video read in parts where they are: a ``file://`` clip in place, an ``http(s)://``
one by byte ranges from a real HTTP server on a loopback port; what is decoded is what decoding the
whole file gives, from part of it, and the byte limit bounds what is read."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from fusionrec.encoders.media import decode_media
from fusionrec.encoders.media.fetch import MediaPolicy, PartReader, PolicyMediaFetcher
from fusionrec.schemas import ErrorCode, EventError, MediaKind, MediaRef
from fusionrec.testing.http_server import MediaServer
from fusionrec.testing.media import audio_file, long_video, png

pytestmark = pytest.mark.integration

K = MediaKind
# Blocks as small as a file in place is read in, and every file read in parts however small: the test film
# is small (its frames are 32 x 32), and the default 256 KiB blocks would cover most of it.
BLOCK = 32 * 1024


@pytest.fixture(scope="module")
def server() -> Iterator[MediaServer]:
    with MediaServer() as srv:
        yield srv


@pytest.fixture
def served(server: MediaServer) -> MediaServer:
    server.reset()
    return server


def tones(seconds: int, rate: int = 16_000) -> np.ndarray:
    """A tone that rises every 10 s: each window of sound heard says where it came from."""
    t = np.arange(seconds * rate) / rate
    return (0.3 * np.sin(2 * np.pi * (200 + 10 * (t // 10)) * t)).astype(np.float32)


@pytest.fixture(scope="module")
def film(server: MediaServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Path]:
    """Ten minutes of video with sound, on disk and served as /film.mp4."""
    data = long_video("mp4", "libx264", "aac", 600, tones(600))
    path = tmp_path_factory.mktemp("media") / "film.mp4"
    path.write_bytes(data)
    server.files["/film.mp4"] = data
    return data, path


@pytest.fixture
def fetcher() -> Iterator[Callable[..., PolicyMediaFetcher]]:
    """Makes fetchers (``root``, byte limits by modality name), closed after the test."""
    made: list[PolicyMediaFetcher] = []

    def make(root: Path, whole_bytes: int = 0, **limits: int) -> PolicyMediaFetcher:
        max_bytes = {K.IMAGE: 10 * 2**20, K.AUDIO: 50 * 2**20, K.VIDEO: 200 * 2**20, **{K(k): v for k, v in limits.items()}}
        made.append(PolicyMediaFetcher(MediaPolicy(media_root=root, allow_private_hosts=True, max_bytes=max_bytes,
                                                   block_bytes=BLOCK, whole_bytes=whole_bytes, retry_wait_s=0.01)))
        return made[-1]

    yield make
    for f in made:
        f.close()


def decoded(f: PolicyMediaFetcher, kind: MediaKind, uri: str) -> tuple[object, PartReader | bytes]:
    source = f.fetch(kind, MediaRef(uri=uri))
    try:
        return decode_media(kind, source), source
    finally:
        if isinstance(source, PartReader):
            source.close()


def same_video(a: object, b: object) -> bool:
    return (len(a.frames) == len(b.frames) and all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames, strict=False))  # type: ignore[attr-defined]
            and np.array_equal(a.audio.samples, b.audio.samples))  # type: ignore[attr-defined]


def test_a_film_is_sampled_from_part_of_it_in_place_and_over_http(film, served, fetcher):
    data, path = film
    whole = decode_media(K.VIDEO, data)
    f = fetcher(path.parent)
    in_place, reader = decoded(f, K.VIDEO, f"file://{path}")
    assert isinstance(reader, PartReader) and same_video(in_place, whole)
    assert reader.fetched < len(data) / 3
    over_http, reader = decoded(f, K.VIDEO, served.url("/film.mp4"))
    assert isinstance(reader, PartReader) and same_video(over_http, whole)
    assert served.sent == reader.fetched < len(data) / 3
    assert len(served.requests) > 2 and all(r["accept-encoding"] == "identity" for r in served.requests)


def test_a_film_over_the_byte_limit_is_sampled_where_it_can_be_read_in_parts(film, served, fetcher):
    data, path = film
    whole = decode_media(K.VIDEO, data)
    f = fetcher(path.parent, video=len(data) // 2)
    assert same_video(decoded(f, K.VIDEO, f"file://{path}")[0], whole)
    assert same_video(decoded(f, K.VIDEO, served.url("/film.mp4"))[0], whole)
    served.ranges = False  # then it is downloaded whole, and refused once past the limit
    with pytest.raises(EventError) as refused:
        decoded(f, K.VIDEO, served.url("/film.mp4"))
    assert refused.value.code is ErrorCode.MEDIA_TOO_LARGE


def test_a_video_read_through_is_refused_once_it_reads_past_the_limit(tmp_path, fetcher):
    data = long_video("mp4", "libx264", "aac", 45, tones(45))  # up to 60 s: read through
    (tmp_path / "clip.mp4").write_bytes(data)
    f = fetcher(tmp_path, video=len(data) // 2)
    with pytest.raises(EventError) as refused:
        decoded(f, K.VIDEO, f"file://{tmp_path}/clip.mp4")
    assert refused.value.code is ErrorCode.MEDIA_TOO_LARGE  # not media_undecodable: the reason is the limit
    assert "bytes read" in refused.value.reason


def test_a_server_that_ignores_ranges_is_read_whole(film, served, fetcher):
    data, path = film
    served.ranges = False
    video, source = decoded(fetcher(path.parent), K.VIDEO, served.url("/film.mp4"))
    assert isinstance(source, bytes) and same_video(video, decode_media(K.VIDEO, data))
    assert len(served.requests) == 1 and served.sent == len(data)


def test_ranges_follow_a_redirect_and_pictures_are_fetched_whole(film, served, tmp_path, fetcher):
    data, _ = film
    served.redirects["/old/film.mp4"] = "/film.mp4"
    video, _ = decoded(fetcher(tmp_path), K.VIDEO, served.url("/old/film.mp4"))
    assert same_video(video, decode_media(K.VIDEO, data))
    assert [r.get("range") for r in served.requests[:2]] == [f"bytes=0-{BLOCK - 1}"] * 2  # the hop, the file
    served.reset()
    served.files["/a.png"] = png()
    f = fetcher(tmp_path)
    assert f.fetch(K.IMAGE, MediaRef(uri=served.url("/a.png"))) == png()
    assert "range" not in served.requests[0]
    # the next item's fetch goes on the same connection
    assert f.fetch(K.IMAGE, MediaRef(uri=served.url("/a.png"))) == png() and served.connections == 1


def test_a_host_is_looked_up_once_per_connection_and_connected_to_at_the_address_checked(film, served, monkeypatch):
    import fusionrec.encoders.media.fetch as fetching

    data, _ = film
    monkeypatch.setattr(fetching, "_public", lambda address: address == "127.0.0.1")  # the server stands in for a CDN
    lookups: list[str] = []

    def resolve(host: str) -> list[str]:
        lookups.append(host)
        return {"cdn.test": ["127.0.0.1"], "intranet.test": ["10.1.2.3"]}[host]

    # private hosts refused, as by default; cdn.test is known to this resolver alone, so the film can only
    # be fetched by connecting to the address the check was given
    with PolicyMediaFetcher(MediaPolicy(block_bytes=BLOCK, whole_bytes=0), resolve=resolve) as f:
        cdn = served.url("/film.mp4").replace("127.0.0.1", "cdn.test")
        video, _ = decoded(f, K.VIDEO, cdn)
        assert same_video(video, decode_media(K.VIDEO, data))
        assert len(served.requests) > 2 and served.connections == 1 and lookups == ["cdn.test"]
        served.redirects["/moved.mp4"] = served.url("/film.mp4").replace("127.0.0.1", "intranet.test")
        with pytest.raises(EventError) as refused:
            f.fetch(K.VIDEO, MediaRef(uri=cdn.replace("/film.mp4", "/moved.mp4")))
        assert refused.value.code is ErrorCode.MEDIA_NOT_ALLOWED and served.connections == 1


def test_a_long_clip_is_heard_in_windows_from_part_of_it(served, tmp_path, fetcher):
    data = audio_file(tones(240), 16_000, "wav")  # four minutes: three windows of 10 s
    served.files["/talk.wav"] = data
    clip, reader = decoded(fetcher(tmp_path), K.AUDIO, served.url("/talk.wav"))
    np.testing.assert_array_equal(clip.samples, decode_media(K.AUDIO, data).samples)  # type: ignore[attr-defined]
    assert isinstance(reader, PartReader) and served.sent == reader.fetched < len(data) / 4


@pytest.mark.parametrize(("kind", "path", "make"), [
    (K.VIDEO, "/film.mp4", None),  # FFmpeg reads it
    (K.AUDIO, "/talk.wav", lambda: audio_file(tones(240), 16_000, "wav")),  # libsndfile reads it, through cffi
])
def test_a_failure_part_way_is_the_items_reason(film, served, tmp_path, fetcher, kind, path, make):
    if make is not None:
        served.files[path] = make()
    served.fail_from = 3  # the first block and one more, then the server fails
    with pytest.raises(EventError) as failed:
        decoded(fetcher(tmp_path), kind, served.url(path))
    assert failed.value.code is ErrorCode.MEDIA_FETCH_FAILED and "answered 500" in failed.value.reason


def test_a_busy_or_dropped_request_is_sent_again(film, served, tmp_path, fetcher):
    data, _ = film
    f = fetcher(tmp_path)  # two retries
    served.files["/a.png"] = png()
    served.busy, served.dropped = {1}, {2}  # 503, then the connection dropped without an answer
    assert f.fetch(K.IMAGE, MediaRef(uri=served.url("/a.png"))) == png() and len(served.requests) == 3
    served.reset()
    served.busy = {3, 4}  # two parts of the film, each answered the next time
    video, _ = decoded(f, K.VIDEO, served.url("/film.mp4"))
    assert same_video(video, decode_media(K.VIDEO, data))
    served.reset()
    served.busy = {1, 2, 3}  # still busy after two retries: the item's reason says so
    with pytest.raises(EventError) as failed:
        f.fetch(K.IMAGE, MediaRef(uri=served.url("/a.png")))
    assert failed.value.code is ErrorCode.MEDIA_FETCH_FAILED and "answered 503" in failed.value.reason
    assert len(served.requests) == 3


def test_a_small_clip_or_video_is_fetched_whole(film, served, fetcher):
    data, path = film
    f = fetcher(path.parent, whole_bytes=len(data))  # read in parts, it would go through Python a read at a time
    assert f.fetch(K.VIDEO, MediaRef(uri=f"file://{path}")) == data
    assert f.fetch(K.VIDEO, MediaRef(uri=served.url("/film.mp4"))) == data
    assert [r["range"] for r in served.requests] == [f"bytes=0-{BLOCK - 1}", f"bytes={BLOCK}-{len(data) - 1}"]
    served.reset()
    g = fetcher(path.parent, whole_bytes=len(data), video=len(data) - 1)  # whole, but over the limit
    for uri in (f"file://{path}", served.url("/film.mp4")):
        with pytest.raises(EventError) as refused:
            g.fetch(K.VIDEO, MediaRef(uri=uri))
        assert refused.value.code is ErrorCode.MEDIA_TOO_LARGE
