"""Fetching item media behind one interface, under one policy.

``PolicyMediaFetcher`` enforces what an operator allows: ``file://`` only below a configured media
root (no traversal, no symlink escape), ``http(s)://`` with a timeout, a byte limit per modality and,
unless explicitly allowed, no loopback, private, link-local or reserved addresses (checked on every
resolved address before connecting, and again on redirects). ``MemoryMediaFetcher`` is its twin.
Every refusal is an :class:`EventError` with the dead-letter code that says why.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from fusionrec.schemas import ErrorCode, EventError, MediaKind, MediaRef

DEFAULT_MAX_BYTES: Mapping[MediaKind, int] = {
    MediaKind.IMAGE: 10 * 2**20,
    MediaKind.AUDIO: 50 * 2**20,
    MediaKind.VIDEO: 200 * 2**20,
}


class MediaFetcher(Protocol):
    def fetch(self, kind: MediaKind, ref: MediaRef) -> bytes: ...


def _too_large(kind: MediaKind, size: int, limit: int) -> EventError:
    return EventError(ErrorCode.MEDIA_TOO_LARGE, f"{kind} is {size} bytes or more; limit {limit}")


@dataclass(frozen=True)
class MediaPolicy:
    media_root: Path | None = None
    allow_http: bool = True
    allow_private_hosts: bool = False
    timeout_s: float = 10.0
    max_bytes: Mapping[MediaKind, int] = field(default_factory=lambda: dict(DEFAULT_MAX_BYTES))


def _check_content_type(kind: MediaKind, content_type: str | None, where: str) -> None:
    """A content type, when there is one, must be of the modality (or say nothing: octet-stream)."""
    if not content_type:
        return
    major = content_type.split(";")[0].strip().lower()
    if major != "application/octet-stream" and not major.startswith(f"{kind}/"):
        raise EventError(ErrorCode.MEDIA_NOT_ALLOWED, f"{where} content type {major!r} is not {kind}/*")


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return not (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_reserved or ip.is_multicast
                or ip.is_unspecified)


class PolicyMediaFetcher:
    """The production fetcher. ``resolve`` is injectable so tests need no DNS."""

    def __init__(
        self, policy: MediaPolicy, *, resolve: Callable[[str], list[str]] | None = None
    ) -> None:
        self.policy = policy
        self._resolve = resolve or (lambda host: [ai[4][0] for ai in socket.getaddrinfo(host, None)])

    def fetch(self, kind: MediaKind, ref: MediaRef) -> bytes:
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

    def _file(self, kind: MediaKind, uri: str, limit: int) -> bytes:
        root = self.policy.media_root
        if root is None:
            raise EventError(ErrorCode.MEDIA_NOT_ALLOWED, "file:// media needs FUSIONREC_MEDIA_ROOT")
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise EventError(ErrorCode.MEDIA_NOT_ALLOWED, f"file:// URI names a host: {parts.netloc!r}")
        root = root.resolve()
        # resolve() folds "..", and symlinks, before the containment check.
        resolved = Path(unquote(parts.path)).resolve()
        if not resolved.is_relative_to(root):
            raise EventError(ErrorCode.MEDIA_NOT_ALLOWED, f"{uri!r} is outside the media root")
        try:
            size = resolved.stat().st_size
            if size > limit:
                raise _too_large(kind, size, limit)
            return resolved.read_bytes()
        except OSError as exc:
            raise EventError(ErrorCode.MEDIA_FETCH_FAILED, f"cannot read {uri!r}: {exc.strerror}") from exc

    def _check_host(self, uri: str) -> None:
        host = urlsplit(uri).hostname
        if not host:
            raise EventError(ErrorCode.MEDIA_NOT_ALLOWED, f"{uri!r} has no host")
        if self.policy.allow_private_hosts:
            return
        try:
            ipaddress.ip_address(host)
            addresses = [host]
        except ValueError:
            addresses = None
        try:
            addresses = addresses or self._resolve(host)
        except OSError as exc:
            raise EventError(ErrorCode.MEDIA_FETCH_FAILED, f"cannot resolve {host!r}: {exc}") from exc
        if not addresses or not all(_public(a) for a in addresses):
            raise EventError(ErrorCode.MEDIA_NOT_ALLOWED, f"host {host!r} is loopback, private or reserved")

    def _http(self, kind: MediaKind, uri: str, limit: int) -> bytes:
        import httpx

        url = uri
        with httpx.Client(timeout=self.policy.timeout_s, follow_redirects=False) as client:
            for _ in range(5):  # redirects are followed by hand so each hop passes the host check
                self._check_host(url)
                try:
                    with client.stream("GET", url) as resp:
                        if resp.is_redirect:
                            url = str(resp.url.join(resp.headers["location"]))
                            continue
                        if resp.status_code != 200:
                            raise EventError(ErrorCode.MEDIA_FETCH_FAILED, f"GET {uri} answered {resp.status_code}")
                        _check_content_type(kind, resp.headers.get("content-type"), "served")
                        declared = int(resp.headers.get("content-length", "0") or 0)
                        if declared > limit:
                            raise _too_large(kind, declared, limit)
                        body = bytearray()
                        for chunk in resp.iter_bytes():
                            body += chunk
                            if len(body) > limit:
                                raise _too_large(kind, len(body), limit)
                        return bytes(body)
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
