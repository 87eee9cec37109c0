"""What agents do with what they cannot process: letters that always fit and always get written,
and the difference between a store that is down and a request it refuses."""

import asyncio
from dataclasses import dataclass

import pytest

from fusionrec.agents.routing import MAX_ORIGINAL_BYTES, dead_letter, retry_unavailable, send_letter
from fusionrec.schemas import DeadLetter, ErrorCode, EventError, VectorIndexError, VectorStoreUnavailable
from fusionrec.streams import MemorySink

# Kafka's default limit on a record, where brokers and producers refuse larger ones.
KAFKA_MAX_RECORD = 1_000_000


@dataclass
class Message:
    value: bytes | None
    key: bytes | None = b"u1"
    topic: str = "fusionrec.interactions"
    partition: int = 3
    offset: int = 42


def test_a_letter_for_a_huge_record_fits_a_kafka_record_and_says_it_was_cut():
    original = b'{"event_id": "' + b"x" * 1_500_000 + b'"}'
    letter = dead_letter(Message(original, key=b"k" * 10_000), EventError(ErrorCode.PAYLOAD_TOO_LARGE, "r" * 50_000))
    assert len(letter.to_bytes()) < KAFKA_MAX_RECORD
    assert letter.original_truncated and letter.original_size == len(original)
    assert letter.original == original[:MAX_ORIGINAL_BYTES]
    assert (letter.source_topic, letter.partition, letter.offset) == ("fusionrec.interactions", 3, 42)
    assert DeadLetter.model_validate_json(letter.to_bytes()) == letter


def test_a_small_record_is_kept_whole():
    letter = dead_letter(Message(b"{oops"), EventError(ErrorCode.MALFORMED_JSON, "bad"))
    assert letter.original == b"{oops" and letter.original_size == 5 and not letter.original_truncated


class FlakySink(MemorySink):
    """Refuses the first ``failures`` sends, as a producer does with a full queue or a broker away."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def send(self, topic, key, value, headers=None):
        if self.failures:
            self.failures -= 1
            raise RuntimeError("MessageSizeTooLargeError")
        await super().send(topic, key, value, headers)


def test_a_letter_whose_send_fails_is_sent_again_then_without_its_original(monkeypatch):
    monkeypatch.setattr(asyncio, "sleep", _no_sleep)
    letter = dead_letter(Message(b"x" * 100), EventError(ErrorCode.MALFORMED_JSON, "bad"))
    sink = FlakySink(failures=4)
    asyncio.run(send_letter(sink, "dlq", letter))
    [(key, sent)] = sink.sent["dlq"]
    assert key == b"u1" and sent.original == b"" and sent.original_truncated and sent.original_size == 100


async def _no_sleep(_: float) -> None:
    return None


def test_an_unavailable_store_is_waited_for_and_a_refusal_becomes_the_events_error(monkeypatch):
    monkeypatch.setattr(asyncio, "sleep", _no_sleep)
    calls = []

    async def down_then_up():
        calls.append(1)
        if len(calls) < 6:
            raise VectorStoreUnavailable("connection refused")
        return "ok"

    assert asyncio.run(retry_unavailable(down_then_up, what="test")) == "ok" and len(calls) == 6

    async def refused():
        calls.append(1)
        raise VectorIndexError("unterminated string literal")

    calls.clear()
    with pytest.raises(EventError) as info:
        asyncio.run(retry_unavailable(refused, what="recommend"))
    assert info.value.code is ErrorCode.INDEX_REJECTED and "unterminated" in info.value.reason and len(calls) == 3
