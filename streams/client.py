"""``Client``: what apps call on the profile workers over HTTP: a user's list now, and search."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from fusionrec.schemas import Interaction, QueryError, Recommendation, SearchResults, StreamError
from fusionrec.streams.settings import Settings


class Client:
    """Asks a profile worker (``FUSIONREC_WEB_HOST``/``PORT``, or ``url``); any worker answers, routing a
    user's request to the worker that holds the user. A refused query raises :class:`QueryError`
    with the worker's reason and HTTP status; an unreachable worker :class:`StreamError`."""

    def __init__(self, settings: Settings | None = None, *, url: str | None = None, timeout_s: float = 30.0) -> None:
        self.settings = settings or Settings()
        self._http = httpx.Client(base_url=url or self.settings.worker_url, timeout=timeout_s)

    def _call(self, method: str, path: str, **kwargs: Any) -> bytes:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise StreamError(f"no profile worker at {self._http.base_url}: {exc}") from exc
        if 400 <= resp.status_code < 500:
            try:
                reason = resp.json().get("error", resp.text)
            except ValueError:
                reason = resp.text
            raise QueryError(str(reason)[:500], status=resp.status_code)
        if resp.status_code != 200:
            raise StreamError(f"the worker answered {resp.status_code}: {resp.text[:200]}")
        return resp.content

    def recommend(self, user: str, *, k: int | None = None, categories: Iterable[str] = (),
                  exclude_categories: Iterable[str] = ()) -> Recommendation:
        """``user``'s list now, without an event (cold-start users get popular items)."""
        params = _filters(k, categories, exclude_categories)
        return Recommendation.model_validate_json(self._call("GET", f"/recommend/{user}/", params=params))

    def search(
        self, q: str | None = None, *, user: str | None = None, image: Path | bytes | str | None = None,
        like: str | None = None, k: int | None = None, categories: Iterable[str] = (),
        exclude_categories: Iterable[str] = (), personalization: float | None = None, exclude_seen: bool = False,
        weights: dict[str, float] | None = None, record: bool = False,
    ) -> SearchResults:
        """Items matching words ``q``, a picture (a file, its bytes, or a URI the worker may fetch) and/or
        an item ``like`` (its nearest, itself left out), ranked for ``user`` when given.

        ``weights`` weighs the parts (``{"text": 1, "image": 0.5, "like": 1}``); ``personalization``
        overrides the worker's (0: plain search). With ``record`` and a user, the words are also
        published as a ``search`` event, so that user's next lists lean toward them.
        """
        params = _filters(k, categories, exclude_categories)
        params += [(name, v) for name, v in (("q", q), ("user", user), ("like", like)) if v is not None]
        params += [(f"{part}_weight", w) for part, w in (weights or {}).items()]
        if personalization is not None:
            params.append(("personalization", personalization))
        if exclude_seen:
            params.append(("exclude_seen", "true"))
        body = None
        if isinstance(image, str) and "://" in image:
            params.append(("image", image))
        elif image is not None:
            body = image if isinstance(image, bytes) else Path(image).read_bytes()
        raw = (self._call("POST", "/search", params=params, content=body,
                          headers={"Content-Type": "application/octet-stream"})
               if body is not None else self._call("GET", "/search", params=params))
        results = SearchResults.model_validate_json(raw)
        if record and user and q:
            self.record_search(user, q)
        return results

    def record_search(self, user: str, q: str) -> Interaction:
        """Publish ``user``'s search for ``q`` on the interactions topic (a ``search`` event)."""
        from fusionrec.streams.kafka.client import Publisher

        event = Interaction(event_id=uuid.uuid4().hex, user_id=user, type="search", query=q,
                            timestamp=datetime.now(UTC))
        with Publisher(self.settings) as publisher:
            publisher.publish_interaction(event)
        return event

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _filters(k: int | None, categories: Iterable[str], exclude: Iterable[str]) -> list[tuple[str, Any]]:
    params: list[tuple[str, Any]] = [("k", k)] if k else []
    return params + [("category", c) for c in categories] + [("exclude_category", c) for c in exclude]
