"""``/search`` on the profile worker: parse and check a query, fetch or read its picture, answer it.

``GET /search?q=red+shoes&user=u1&k=10&category=a&exclude_category=b&image=<uri>&like=<item>`` and
``POST /search?...`` with a picture as the body. With a user, the request is answered by the worker
that holds the user's profile (forwarded there with its body); without one, by whichever worker got it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Callable
from typing import Any

from fusionrec.agents.ports import MediaFetcher
from fusionrec.agents.profile import ProfileState
from fusionrec.agents.ranking import Filters
from fusionrec.agents.search import Query, Searcher, SearchRequest
from fusionrec.encoders.media import MediaLimits, decode_media
from fusionrec.schemas import ErrorCode, EventError, MediaKind, MediaRef, QueryError, valid_id

MAX_K = 1000
# A refused picture is the client's: its media error codes as HTTP statuses.
MEDIA_STATUS = {ErrorCode.MEDIA_NOT_ALLOWED: 403, ErrorCode.MEDIA_TOO_LARGE: 413,
                ErrorCode.MEDIA_FETCH_FAILED: 422, ErrorCode.MEDIA_UNDECODABLE: 400}


def _number(query: Any, name: str, default: float, cast: Callable[[str], float] = float) -> float:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = cast(raw)
    except ValueError:
        raise QueryError(f"{name} must be a number, not {raw[:50]!r}") from None
    if not math.isfinite(value) or value < 0:
        raise QueryError(f"{name} must be a finite number, at least 0")
    return value


def parse(query: Any, *, top_k: int) -> tuple[Query, dict[str, Any]]:
    """The query parts and request options of a ``/search`` query string (raises :class:`QueryError`)."""
    user = query.get("user")
    if user is not None and not valid_id(user):
        raise QueryError("user is not a valid user id (1-256 characters, no control characters)")
    like = query.get("like")
    if like is not None and not valid_id(like):
        raise QueryError("like is not a valid item id (1-256 characters, no control characters)")
    k = int(_number(query, "k", top_k, int))
    if not 1 <= k <= MAX_K:
        raise QueryError(f"k must be between 1 and {MAX_K}")
    personalization = query.get("personalization")
    flag = query.get("exclude_seen", "false").lower()
    if flag not in ("true", "false", "1", "0"):
        raise QueryError("exclude_seen must be true or false")
    parts = Query(
        text=query.get("q"), like=like, text_weight=_number(query, "text_weight", 1.0),
        image_weight=_number(query, "image_weight", 1.0), like_weight=_number(query, "like_weight", 1.0),
    )
    options = {
        "user_id": user, "k": k, "exclude_seen": flag in ("true", "1"),
        "personalization": None if personalization is None else _number(query, "personalization", 0.0),
        "filters": Filters(include_categories=frozenset(query.getall("category", [])),
                           exclude_categories=frozenset(query.getall("exclude_category", []))),
    }
    return parts, options


def register_search_page(
    app: Any, *, table: Any, searcher: Searcher, fetcher: MediaFetcher, limits: MediaLimits, max_image_bytes: int,
) -> Any:
    from faust.web import View

    def picture(source: bytes | None, uri: str | None) -> Any:
        """The decoded picture of an upload or a URI fetched under the media policy (blocking)."""
        if source is None:
            if uri is None:
                return None
            source = fetcher.fetch(MediaKind.IMAGE, MediaRef(uri=uri))  # type: ignore[assignment]
        try:
            return decode_media(MediaKind.IMAGE, source, limits)  # type: ignore[arg-type]
        finally:
            if not isinstance(source, bytes):
                source.close()  # type: ignore[union-attr]

    def answer(parts: Query, options: dict[str, Any], upload: bytes | None, uri: str | None) -> bytes:
        image = picture(upload, uri)
        if image is not None:
            parts = dataclasses.replace(parts, image=image)
        user = options["user_id"]
        state = ProfileState.from_bytes(table.get(user.encode())) if user else None
        return searcher.search(SearchRequest(parts, state=state, **options)).to_bytes()

    async def forward(web: Any, request: Any, user: str, body: bytes | None) -> Any | None:
        """The owning worker's answer when another worker holds ``user``'s profile; None when this one does."""
        try:
            dest = app.router.key_store(table.name, user)
        except KeyError:
            return web.json({"error": "the worker that holds this user is not known yet; retry"}, status=503)
        here = app.conf.canonical_url
        if (dest.host, dest.port) == (here.host, here.port):
            return None
        headers = {"Content-Type": request.headers.get("Content-Type", "application/octet-stream")}
        async with app.http_client.request(method=request.method, url=request.url.with_host(dest.host)
                                           .with_port(dest.port), headers=headers, data=body) as resp:
            return web.bytes(await resp.read(), content_type=resp.content_type, status=resp.status)

    async def handle(web: Any, request: Any, body: bytes | None) -> Any:
        try:
            parts, options = parse(request.query, top_k=searcher.recommender.top_k)
            if options["user_id"]:
                forwarded = await forward(web, request, options["user_id"], body)
                if forwarded is not None:
                    return forwarded
            uri = request.query.get("image")
            if body is not None and uri is not None:
                raise QueryError("give the picture as the body or as image=, not both")
            if body is not None and len(body) > max_image_bytes:
                raise QueryError(f"the picture has {len(body)} bytes, more than FUSIONREC_MAX_IMAGE_BYTES "
                                 f"({max_image_bytes})", status=413)
            if body is None and uri is None:
                parts.check()
            loop = asyncio.get_running_loop()
            payload = await loop.run_in_executor(None, answer, parts, options, body, uri)
        except QueryError as exc:
            return web.json({"error": exc.reason}, status=exc.status)
        except EventError as exc:  # the picture: not allowed, too large, not fetched or not a picture
            return web.json({"error": f"image: {exc.reason}", "code": str(exc.code)},
                            status=MEDIA_STATUS.get(exc.code, 400))
        return web.bytes(payload, content_type="application/json")

    @app.page("/search")
    class SearchPage(View):
        async def get(self, request: Any) -> Any:
            return await handle(self.web, request, None)

        async def post(self, request: Any) -> Any:
            body = await request.read()
            if not body:
                return self.web.json({"error": "POST /search takes a picture as the body"}, status=400)
            return await handle(self.web, request, body)

    return SearchPage
