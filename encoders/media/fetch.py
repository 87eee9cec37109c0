"""Fetching item media behind one interface, under one policy.

``PolicyMediaFetcher``, the ``MediaFetcher`` port's implementation, enforces what an operator
allows: ``file://`` only below a configured media root (no traversal, no symlink escape),
``http(s)://`` with a timeout, a byte limit per modality and, unless explicitly allowed, no
loopback, private, link-local or reserved addresses. Those are checked where each connection is
opened, on every address the host's name resolves to, and the connection goes to a checked address
(:class:`_CheckedBackend`), redirects included. ``MemoryMediaFetcher`` is its twin. Every refusal is
an :class:`EventError` with the dead-letter code that says why.

Audio and video larger than a megabyte are not downloaded whole where they can be read in parts: a
``file://`` clip is read in place, and an ``http(s)://`` one by byte ranges when its server serves
them. The decoders seek to what they sample, so a film is sampled from a few megabytes of it, and
the byte limit bounds what is read rather than how large the file is.
"""

from __future__ import annotations

import io
import ipaddress
import os
import re
import socket
import stat
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Self
from urllib.parse import unquote, urlsplit
from urllib.request import getproxies

from fusionrec.schemas import ConfigError, ErrorCode, EventError, MediaKind, MediaRef

if TYPE_CHECKING:
    import httpx

DEFAULT_MAX_BYTES: Mapping[MediaKind, int] = {
    MediaKind.IMAGE: 10 * 2**20,
    MediaKind.AUDIO: 50 * 2**20,
    MediaKind.VIDEO: 200 * 2**20,
}


# Parts of a file served over HTTP are fetched in blocks of this size by default (a read spanning
# several missing ones fetches them in one request): a 2 s GOP of 720p video is a block or two, where
# a request per 32 KB FFmpeg reads would cost a round trip each. A file in place is read as asked;
# its blocks, of FFmpeg's read size, only count what is read against the limit.
BLOCK_BYTES = 256 * 1024
FILE_BLOCK_BYTES = 32 * 1024
RETRY_STATUSES = frozenset({429, 502, 503, 504})


def _too_large(kind: MediaKind, size: int, limit: int) -> EventError:
    return EventError(ErrorCode.MEDIA_TOO_LARGE, f"{kind} is {size} bytes or more; limit {limit}")


class PartReader(io.RawIOBase):
    """A seekable read-only file of ``size`` bytes fetched in blocks as they are first read, at most
    ``limit`` bytes in all; subclasses say how a part is fetched (:meth:`_fetch`) and read (:meth:`_part`).

    A failure (the limit reached, the network gone) ends the file where it happened and is kept in
    :attr:`error`, which the decoders raise as the item's reason (:func:`~fusionrec.encoders.media.decode_media`).
    Raising it from ``read`` instead would not reach them: libsndfile calls back through cffi, which
    prints an exception and carries on.
    """

    def __init__(self, kind: MediaKind, size: int, limit: int, block: int) -> None:
        super().__init__()
        self.kind, self.size, self.limit, self.block = kind, size, limit, block
        self.fetched = 0  # bytes fetched so far; each block once
        self.error: EventError | None = None
        self._pos = 0
        self._have: set[int] = set()  # blocks fetched

    def _fetch(self, start: int, length: int) -> None:
        """Fetches bytes ``start`` to ``start + length`` (whole blocks)."""
        raise NotImplementedError

    def _part(self, start: int, length: int) -> bytes:
        """Bytes ``start`` to ``start + length``, all fetched."""
        raise NotImplementedError

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_CUR:
            offset += self._pos
        elif whence == os.SEEK_END:
            offset += self.size
        self._pos = max(0, offset)
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        # Not RawIOBase's, which goes through readinto and copies twice more: FFmpeg calls this per
        # 32 KB, and reading a minute of MP4 through, seeks between its sound and picture 3,000 times.
        pos = self._pos
        n = self.size - pos if size is None or size < 0 else min(size, self.size - pos)
        if n <= 0 or self.error is not None:
            return b""
        blocks = range(pos // self.block, (pos + n - 1) // self.block + 1)
        try:
            if not self._have.issuperset(blocks):
                self._load(blocks)
            data = self._part(pos, n)
        except EventError as exc:
            self.error = exc
            return b""
        self._pos = pos + n
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        memoryview(buffer)[: len(data)] = data
        return len(data)

    def _load(self, blocks: range) -> None:
        """Fetches the blocks not fetched yet, each run of adjacent ones in one part."""
        missing = [b for b in blocks if b not in self._have]
        while missing:
            run = 1
            while run < len(missing) and missing[run] == missing[0] + run:
                run += 1
            start, stop = missing[0] * self.block, min((missing[0] + run) * self.block, self.size)
            if self.fetched + stop - start > self.limit:
                raise EventError(ErrorCode.MEDIA_TOO_LARGE,
                                 f"{self.kind} needs more than {self.limit} of its {self.size} bytes read; limit {self.limit}")
            self._fetch(start, stop - start)
            self.fetched += stop - start
            self._have.update(missing[:run])
            missing = missing[run:]


class _FileReader(PartReader):
    """A file read in place, from the open file ``fd`` (which it closes): the kernel caches it, so a
    block is fetched by counting it."""

    def __init__(self, kind: MediaKind, fd: int, size: int, limit: int) -> None:
        self._fd = fd
        super().__init__(kind, size, limit, FILE_BLOCK_BYTES)

    def _fetch(self, start: int, length: int) -> None:
        pass

    def _part(self, start: int, length: int) -> bytes:
        try:
            data = os.pread(self._fd, length, start)
        except OSError as exc:
            raise EventError(ErrorCode.MEDIA_FETCH_FAILED, f"cannot read {self.kind}: {exc.strerror}") from exc
        if len(data) != length:
            raise EventError(ErrorCode.MEDIA_FETCH_FAILED, f"{self.kind} file shrank to {start + len(data)} bytes while read")
        return data

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        super().close()


def _below(path: str, root: str) -> bool:
    """Whether the normalised absolute ``path`` lies below the directory ``root`` (or is it).

    >>> _below("/srv/media/a.jpg", "/srv/media"), _below("/srv/media-old/a.jpg", "/srv/media"), _below("/a", "/")
    (True, False, True)
    """
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _opened_path(fd: int, path: str) -> str:
    """Where the file open as ``fd`` (opened by ``path``) really is. Linux says it of the open file
    itself; elsewhere ``path`` is resolved again, links and all."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(path)


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


def _content_range(response: httpx.Response) -> tuple[int, int, int]:
    """(first byte, last byte, total size) of a 206 answer."""
    found = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
    if not found:
        raise EventError(ErrorCode.MEDIA_FETCH_FAILED,
                         f"GET {response.request.url} answered 206 with Content-Range {response.headers.get('content-range')!r}")
    first, last, total = map(int, found.groups())
    return first, last, total


def _body(response: httpx.Response, kind: MediaKind, limit: int) -> bytes:
    """The body of ``response``, refused once longer than ``limit``."""
    declared = int(response.headers.get("content-length", "0") or 0)
    if declared > limit:
        raise _too_large(kind, declared, limit)
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > limit:
            raise _too_large(kind, len(body), limit)
    return bytes(body)


class _HttpReader(PartReader):
    """An HTTP resource read by byte ranges, its first block already fetched; ``get`` sends each
    request (the fetcher's: through its client, the host checked again, transient failures retried)."""

    def __init__(self, kind: MediaKind, limit: int, block: int, url: str, size: int, first: bytes,
                 get: Callable[[str, Mapping[str, str] | None], httpx.Response]) -> None:
        super().__init__(kind, size, limit, block)
        self._url, self._get = url, get
        self._blocks = {0: first}
        self._have.add(0)
        self.fetched = len(first)

    def _part(self, start: int, length: int) -> bytes:
        first, last = start // self.block, (start + length - 1) // self.block
        head, tail = start - first * self.block, start + length - last * self.block
        if first == last:
            return self._blocks[first][head:tail]
        inner = (self._blocks[b] for b in range(first + 1, last))
        return b"".join([self._blocks[first][head:], *inner, self._blocks[last][:tail]])

    def _fetch(self, start: int, length: int) -> None:
        import httpx

        try:
            with closing(self._get(self._url, _range(start, length))) as resp:
                if resp.status_code != 206:
                    raise EventError(ErrorCode.MEDIA_FETCH_FAILED,
                                     f"GET {self._url} bytes {start}+{length} answered {resp.status_code}")
                first, _, total = _content_range(resp)
                if first != start or total != self.size:
                    raise EventError(ErrorCode.MEDIA_FETCH_FAILED,
                                     f"GET {self._url}: asked for bytes from {start} of {self.size}, "
                                     f"answered {resp.headers['content-range']!r} (did the file change?)")
                body = bytearray()
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) > length:
                        break
        except httpx.HTTPError as exc:
            raise EventError(ErrorCode.MEDIA_FETCH_FAILED, f"GET {self._url} failed: {exc}") from exc
        if len(body) != length:
            raise EventError(ErrorCode.MEDIA_FETCH_FAILED,
                             f"GET {self._url} bytes {start}+{length} answered {len(body)} bytes")
        for i in range(0, length, self.block):
            self._blocks[(start + i) // self.block] = bytes(body[i : i + self.block])


def _range(start: int, length: int) -> dict[str, str]:
    # identity: ranges of a compressed transfer would count its compressed bytes
    return {"range": f"bytes={start}-{start + length - 1}", "accept-encoding": "identity"}


class _CheckedBackend:
    """An httpcore network backend that opens connections only to addresses the policy allows.

    It resolves the host itself when a connection is opened, checks every address (``addresses``
    raises :class:`EventError` if one is not allowed), and connects to a checked address. Checking a
    name before the request and letting the HTTP client resolve it again to connect would leave a
    gap: a name can answer a public address to the check and a private one (a cloud's metadata
    service) to the connection, as DNS rebinding does. It also costs one lookup per connection, which
    the pool keeps open from item to item, where a check per request cost one per range read.
    """

    def __init__(self, inner: Any, addresses: Callable[[str], list[str]]) -> None:
        self._inner, self._addresses = inner, addresses

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> Any:
        import httpcore

        failed: Exception | None = None
        for address in self._addresses(host):  # as socket.create_connection does: the next one if one fails
            try:
                return self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failed = exc
        assert failed is not None
        raise failed

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
        return self._inner.connect_unix_socket(path, timeout, socket_options)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


@dataclass(frozen=True)
class MediaPolicy:
    media_root: Path | None = None
    allow_http: bool = True
    allow_private_hosts: bool = False
    timeout_s: float = 10.0
    max_bytes: Mapping[MediaKind, int] = field(default_factory=lambda: dict(DEFAULT_MAX_BYTES))
    block_bytes: int = BLOCK_BYTES  # what one HTTP range request asks for at least
    # A clip or video up to this size is read whole, in one go (over HTTP in two requests at most):
    # read in parts, a few seconds of FLAC cost libsndfile's calls back into Python a quarter more CPU,
    # and a file this small has little to save by being sampled.
    whole_bytes: int = 2**20
    # A request that fails in a way a moment may cure (the connection refused or dropped; 429, 502,
    # 503, 504) is sent again this many times, after retry_wait_s, doubling: a CDN's brief hiccup
    # would otherwise dead-letter every item fetched meanwhile. Timeouts are not retried: a host that
    # does not answer would hold a fetch thread for several timeouts.
    retries: int = 2
    retry_wait_s: float = 0.5


def _check_content_type(kind: MediaKind, content_type: str | None, where: str) -> None:
    """A content type, when there is one, must be of the modality (or say nothing: octet-stream)."""
    if not content_type:
        return
    major = content_type.split(";")[0].strip().lower()
    if major != "application/octet-stream" and not major.startswith(f"{kind}/"):
        raise EventError(ErrorCode.MEDIA_NOT_ALLOWED, f"{where} content type {major!r} is not {kind}/*")


_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # where DNS64 puts v4-only hosts, in IPv6-only clusters
# IPv6 that Python calls global: a site's own NAT64 prefix, which may translate to its private IPv4
# (before 3.11.10 and 3.12.4); site-local; IPv4-compatible, which automatic tunnels (RFC 2893) sent to
# the IPv4 address inside
_LOCAL_V6 = tuple(ipaddress.ip_network(n) for n in ("64:ff9b:1::/48", "fec0::/10", "::/96"))


def _public(address: str) -> bool:
    """Whether ``address`` is on the public internet: global (which, unlike not private, also leaves out
    the shared space 100.64.0.0/10, where Alibaba Cloud's metadata service answers) and not multicast.
    An IPv4 address inside an IPv6 one, mapped, NAT64's or 6to4's, is judged as itself: DNS64 gives
    every v4-only CDN such an address, 64:ff9b::a9fe:a9fe reaches 169.254.169.254, and a host with a
    6to4 tunnel sends 2002:a9fe:a9fe:: to it wrapped in IPv4 (Pythons before 3.11.10 count all of
    2002::/16 global, later ones none of it).

    >>> [_public(a) for a in ("93.184.216.34", "100.100.100.200", "64:ff9b::5db8:d822", "64:ff9b::a9fe:a9fe")]
    [True, False, True, False]
    >>> [_public(a) for a in ("2002:5db8:d822::1", "2002:a9fe:a9fe::", "2002:a00:1::1")]
    [True, False, False]
    >>> [_public(a) for a in ("::ffff:127.0.0.1", "2606:4700::1111", "fd00:ec2::254", "224.0.0.1")]
    [False, True, False, False]
    >>> [_public(a) for a in ("64:ff9b:1::5db8:d822", "fec0::1", "::a9fe:a9fe")]
    [False, False, False]
    """
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        elif ip.sixtofour is not None:
            ip = ip.sixtofour
        elif any(ip in net for net in _LOCAL_V6):
            return False
    return ip.is_global and not ip.is_multicast


class PolicyMediaFetcher:
    """The production fetcher. ``resolve`` is injectable so tests need no DNS.

    Every HTTP fetch goes through one client, which the fetch threads share: its pool keeps the
    connections to a CDN open from item to item, where a connection per item would pay a TCP and a
    TLS handshake each time (round trips, and CPU the decoders want). :meth:`close` closes them.
    """

    def __init__(
        self, policy: MediaPolicy, *, resolve: Callable[[str], list[str]] | None = None
    ) -> None:
        self.policy = policy
        self._resolve = resolve or (lambda host: [ai[4][0] for ai in socket.getaddrinfo(host, None)])
        # httpx sends requests through the proxies the environment names (it reads them the same way)
        self._proxied = any(scheme in getproxies() for scheme in ("http", "https", "all"))
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def _http_client(self) -> httpx.Client:
        import httpx

        with self._lock:
            if self._client is None:
                client = httpx.Client(timeout=self.policy.timeout_s, follow_redirects=False)
                if not self.policy.allow_private_hosts:
                    # Onto the direct connections' pool only: a proxy from the environment (HTTPS_PROXY)
                    # is the operator's and is connected to as it is; the proxy resolves what it fetches.
                    pool = getattr(client._transport, "_pool", None)
                    if not hasattr(pool, "_network_backend"):
                        client.close()
                        raise ConfigError(f"httpx {httpx.__version__} keeps its connections where fusionrec cannot "
                                          "check the addresses it connects to (as httpx 0.28 does)")
                    pool._network_backend = _CheckedBackend(pool._network_backend, self._allowed_addresses)  # type: ignore[union-attr]
                self._client = client
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fetch(self, kind: MediaKind, ref: MediaRef) -> bytes | BinaryIO:
        """Inline data and pictures as bytes; a clip or video at a URI larger than ``policy.whole_bytes``
        as a file read in parts where it can be (:class:`PartReader`), ``max_bytes`` bounding what is
        read of it."""
        limit = self.policy.max_bytes[kind]
        _check_content_type(kind, ref.content_type, "declared")
        if ref.data is not None:
            if len(ref.data) > limit:
                raise _too_large(kind, len(ref.data), limit)
            return ref.data
        assert ref.uri is not None
        scheme = urlsplit(ref.uri).scheme.lower()
        if scheme == "file":
            return self._file(kind, ref.uri, limit)
        if scheme in ("http", "https") and self.policy.allow_http:
            return self._http(kind, ref.uri, limit)
        raise EventError(ErrorCode.MEDIA_NOT_ALLOWED, f"{kind} URI scheme {scheme or '(none)'!r} is not allowed")

    def _file(self, kind: MediaKind, uri: str, limit: int) -> bytes | BinaryIO:
        """The file at ``uri`` if it lies below the media root once every link is followed. Its path is
        checked before it is opened only as written (".." folded), so that nothing far outside is
        opened, and where it really is once open (:func:`_opened_path`): a link swapped after a check
        cannot lead out of the root, and no path is resolved component by component, which cost more
        than reading a picture (0.1 ms a file)."""
        if self.policy.media_root is None:
            raise EventError(ErrorCode.MEDIA_NOT_ALLOWED, "file:// media needs FUSIONREC_MEDIA_ROOT")
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise EventError(ErrorCode.MEDIA_NOT_ALLOWED, f"file:// URI names a host: {parts.netloc!r}")
        path = os.path.normpath(unquote(parts.path))
        as_written = os.path.abspath(self.policy.media_root)
        root = os.path.realpath(as_written)  # each time: a root that is a link may be pointed elsewhere
        outside = EventError(ErrorCode.MEDIA_NOT_ALLOWED, f"{uri!r} is outside the media root")
        if not (_below(path, as_written) or _below(path, root)):
            raise outside
        try:
            # non-blocking: opening a FIFO for reading would wait for a writer, holding a fetch thread
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            raise EventError(ErrorCode.MEDIA_FETCH_FAILED, f"cannot read {uri!r}: {exc.strerror}") from exc
        try:
            if not _below(_opened_path(fd, path), root):
                raise outside
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise EventError(ErrorCode.MEDIA_FETCH_FAILED, f"{uri!r} is not a file")
            if kind is not MediaKind.IMAGE and st.st_size > self.policy.whole_bytes:
                reader, fd = _FileReader(kind, fd, st.st_size, limit), -1  # the reader closes it
                return reader  # type: ignore[return-value]
            if st.st_size > limit:
                raise _too_large(kind, st.st_size, limit)
            data = os.read(fd, st.st_size)
            while len(data) < st.st_size and (more := os.read(fd, st.st_size - len(data))):
                data += more
            if len(data) != st.st_size:
                raise EventError(ErrorCode.MEDIA_FETCH_FAILED, f"{uri!r} shrank to {len(data)} bytes while read")
            return data
        except OSError as exc:
            raise EventError(ErrorCode.MEDIA_FETCH_FAILED, f"cannot read {uri!r}: {exc.strerror}") from exc
        finally:
            if fd >= 0:
                os.close(fd)

    def _check_host(self, uri: str) -> None:
        """A request's host: one there must be. Its addresses are checked where a connection to it is
        opened (:class:`_CheckedBackend`), except where the environment names a proxy, which connects
        for the fetcher: then they are checked here, before each request, as well as can be."""
        host = urlsplit(uri).hostname
        if not host:
            raise EventError(ErrorCode.MEDIA_NOT_ALLOWED, f"{uri!r} has no host")
        if not self.policy.allow_private_hosts and self._proxied:
            self._allowed_addresses(host)

    def _allowed_addresses(self, host: str) -> list[str]:
        """``host``'s addresses (itself, if it is one), every one of them public; else EventError."""
        try:
            addresses = [str(ipaddress.ip_address(host))]
        except ValueError:
            try:
                addresses = list(dict.fromkeys(self._resolve(host)))  # getaddrinfo repeats each per socket type
            except OSError as exc:
                raise EventError(ErrorCode.MEDIA_FETCH_FAILED, f"cannot resolve {host!r}: {exc}") from exc
        if not addresses or not all(_public(a) for a in addresses):
            raise EventError(ErrorCode.MEDIA_NOT_ALLOWED, f"host {host!r} is loopback, private or reserved")
        return addresses

    def _get(self, url: str, headers: Mapping[str, str] | None) -> httpx.Response:
        """A streamed GET of ``url`` once its host passes the check, retried (``policy.retries``); the
        caller closes it."""
        import httpx

        self._check_host(url)
        client, attempt = self._http_client(), 0
        while True:
            try:
                resp = client.send(client.build_request("GET", url, headers=headers), stream=True)
                if resp.status_code not in RETRY_STATUSES or attempt == self.policy.retries:
                    return resp
                resp.close()
            except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
                if attempt == self.policy.retries:
                    raise
            time.sleep(self.policy.retry_wait_s * 2**attempt)
            attempt += 1

    def _http(self, kind: MediaKind, uri: str, limit: int) -> bytes | BinaryIO:
        """GET ``uri``; for a clip or video, of its first block only, and where the server answers with
        that part and the file is larger than ``policy.whole_bytes``, a reader that fetches the rest as
        it is read (a smaller one is fetched whole with one more request; a server that ignores ranges
        sends it all, read as before)."""
        import httpx

        ranged, block = kind is not MediaKind.IMAGE, self.policy.block_bytes
        url = uri
        try:
            for _ in range(5):  # redirects are followed by hand so each hop passes the host check
                with closing(self._get(url, _range(0, block) if ranged else None)) as resp:
                    if resp.is_redirect:
                        url = str(resp.url.join(resp.headers["location"]))
                        continue
                    if resp.status_code == 416 and ranged:  # not even one byte: an empty file
                        return b""
                    if resp.status_code not in ((200, 206) if ranged else (200,)):
                        raise EventError(ErrorCode.MEDIA_FETCH_FAILED, f"GET {uri} answered {resp.status_code}")
                    _check_content_type(kind, resp.headers.get("content-type"), "served")
                    if resp.status_code == 200:
                        return _body(resp, kind, limit)
                    start, _, size = _content_range(resp)
                    first = _body(resp, kind, min(limit, block))
                    if start == 0 and len(first) == size:
                        return first
                    if start != 0 or len(first) != block:
                        raise EventError(ErrorCode.MEDIA_FETCH_FAILED, f"GET {uri} answered "
                                         f"{resp.headers['content-range']!r} to bytes 0-{block - 1}")
                reader = _HttpReader(kind, limit, block, url, size, first, self._get)
                if size > self.policy.whole_bytes:
                    return reader  # type: ignore[return-value]
                whole = reader.read()  # the rest in one more request
                if reader.error is not None:
                    raise reader.error
                return whole
        except httpx.HTTPError as exc:
            raise EventError(ErrorCode.MEDIA_FETCH_FAILED, f"GET {uri} failed: {exc}") from exc
        raise EventError(ErrorCode.MEDIA_FETCH_FAILED, f"GET {uri}: too many redirects")


class MemoryMediaFetcher:
    """Serves media from a dict of URI -> bytes; inline data passes through."""

    def __init__(self, files: Mapping[str, bytes] | None = None) -> None:
        self.files = dict(files or {})

    def fetch(self, kind: MediaKind, ref: MediaRef) -> bytes:
        if ref.data is not None:
            return ref.data
        try:
            return self.files[ref.uri or ""]
        except KeyError:
            raise EventError(ErrorCode.MEDIA_FETCH_FAILED, f"no media at {ref.uri!r}") from None
