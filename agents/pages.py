"""The profile worker's HTTP pages: a user's list now, and what the worker holds for a user."""

from __future__ import annotations

import asyncio
from typing import Any

from fusionrec.agents.engine import Recommender
from fusionrec.agents.profile import ProfileState
from fusionrec.agents.ranking import Filters
from fusionrec.schemas import valid_id


def register_page(app: Any, *, table: Any, processor: Recommender) -> Any:
    """``GET /recommend/{user}/?k=10&category=a&exclude_category=b``: a user's list now, without an
    event (cold-start users get popular items). Routed to the worker that owns the user's partition."""

    @app.page("/recommend/{user}/")
    @app.table_route(table=table, match_info="user")
    async def recommendation_page(web: Any, request: Any, user: str) -> Any:
        if not valid_id(user):
            return web.json({"error": "not a valid user id (1-256 characters, no control characters)"}, status=400)
        query = request.query
        try:
            k = int(query.get("k", processor.top_k))
        except ValueError:
            return web.json({"error": "k must be an integer"}, status=400)
        filters = Filters(
            include_categories=frozenset(query.getall("category", [])),
            exclude_categories=frozenset(query.getall("exclude_category", [])),
        )
        state = ProfileState.from_bytes(table.get(user.encode()))
        loop = asyncio.get_running_loop()
        rec = await loop.run_in_executor(
            None, lambda: processor.recommend(state, user, filters=filters, k=max(1, min(k, 1000)))
        )
        return web.bytes(rec.to_bytes(), content_type="application/json")

    @app.page("/profile/{user}/")
    @app.table_route(table=table, match_info="user")
    async def profile_page(web: Any, request: Any, user: str) -> Any:
        """What the worker holds for a user (for operators and for checking replays)."""
        if not valid_id(user):
            return web.json({"error": "not a valid user id (1-256 characters, no control characters)"}, status=400)
        state = ProfileState.from_bytes(table.get(user.encode()))
        return web.json({
            "user_id": user,
            "n_events": state.n_events,
            "seen": list(state.seen),
            "recent": list(state.recent),
            "interests": len(state.interests),
            "vectors_sha256": state.digest(),
        })

    return recommendation_page, profile_page
