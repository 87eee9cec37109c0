"""The interaction path: decode -> validate -> update the profile -> retrieve -> rank -> emit."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fusionrec.schemas import (
    ErrorCode,
    EventError,
    Interaction,
    Recommendation,
    RecommendedItem,
    decode,
)
from fusionrec.streams.index import VectorIndex
from fusionrec.streams.sinks import EventSink

from .profile import ProfileModel, ProfileState
from .ranking import overfetch, top_k_unseen
from .routing import dead_letter, internal_error, retry_unavailable

logger = logging.getLogger(__name__)

PROFILE_VERSION = "profile-v1"


@dataclass(frozen=True)
class Duplicate:
    """An event whose id the profile already holds (a redelivery): yielded, nothing written."""

    event_id: str


class Recommender:
    """Applies one interaction to a profile state and builds the user's fresh list.

    Pure apart from the vector index it is given; the agent owns the table and the topics.
    """

    def __init__(
        self, index: VectorIndex, model: ProfileModel, *, top_k: int, max_candidates: int, max_event_bytes: int
    ) -> None:
        self.index = index
        self.model = model
        self.top_k = top_k
        self.max_candidates = max_candidates
        self.max_event_bytes = max_event_bytes

    def decode(self, raw: bytes | None, key: bytes | None) -> Interaction:
        event = decode(Interaction, raw, max_bytes=self.max_event_bytes)
        # Profiles live in the partition of their user: a wrongly keyed event would split a profile.
        if key is None or key.decode(errors="replace") != event.user_id:
            raise EventError(ErrorCode.KEY_MISMATCH, f"message key {key!r} is not the user id {event.user_id!r}")
        return event

    def handle(self, event: Interaction, state: ProfileState) -> tuple[ProfileState, Recommendation]:
        """Blocking (index calls): the new state and the list it yields."""
        found = self.index.get([event.item_id])
        item = found.get(event.item_id)
        if item is None:
            raise EventError(ErrorCode.UNKNOWN_ITEM, f"item {event.item_id!r} is not in the index")
        state = self.model.learn_one(
            state, event.event_id, event.item_id, item.vector, event.type, event.value, event.timestamp.timestamp()
        )
        return state, self.recommend(state, event, f"{PROFILE_VERSION}+{item.encoder_version}")

    def recommend(self, state: ProfileState, event: Interaction | None, model_version: str) -> Recommendation:
        profile = state.vector()
        ranked: list[tuple[str, float]] = []
        if profile is not None:
            limit = overfetch(self.top_k, len(state.seen), self.max_candidates)
            ranked = top_k_unseen(self.index.search(profile, limit), set(state.seen), self.top_k)
        return Recommendation(
            user_id=event.user_id if event else "",
            items=[RecommendedItem(item_id=i, score=round(s, 6), reason="similar to your profile") for i, s in ranked],
            model_version=model_version,
            generated_at=datetime.now(UTC),
            trigger_event_id=event.event_id if event else None,
            trigger_timestamp=event.timestamp if event else None,
        )


def register(
    app: Any, *, topic: Any, table: MutableMapping[bytes, bytes], processor: Recommender, sink: EventSink,
    recommendations: str, dead_letters: str,
) -> Any:
    """Add the ``recommend`` agent to a Faust ``app``.

    It yields one outcome per event: the :class:`Recommendation` it emitted, the
    :class:`DeadLetter` it wrote, or a :class:`Duplicate`.
    """

    @app.agent(topic, name="recommend")
    async def recommend(stream: Any) -> Any:
        loop = asyncio.get_running_loop()
        async for event in stream.events():
            message = event.message
            try:
                interaction = processor.decode(message.value, message.key)
                state = ProfileState.from_bytes(table.get(message.key))
                if state.has_applied(interaction.event_id):
                    # Redelivery after a crash or rebalance: already in the profile, nothing to redo.
                    logger.debug("duplicate event %s skipped", interaction.event_id)
                    yield Duplicate(interaction.event_id)
                    continue
                state, rec = await retry_unavailable(
                    lambda: loop.run_in_executor(None, processor.handle, interaction, state), what="recommend"
                )
            except Exception as exc:  # noqa: BLE001 - one bad event must not stop the worker
                letter = dead_letter(message, exc if isinstance(exc, EventError) else internal_error(exc))
                await sink.send(dead_letters, message.key, letter)
                yield letter
                continue
            table[message.key] = state.to_bytes()
            await sink.send(recommendations, message.key, rec)
            yield rec

    return recommend
