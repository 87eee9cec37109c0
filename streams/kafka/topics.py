"""Topic names, their partition counts, and creating them up front."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from fusionrec.schemas import StreamError
from fusionrec.streams.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int = 1
    config: dict[str, str] = field(default_factory=dict)


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """The six topics fusionrec reads and writes. Pre-created, because auto-created topics
    get the broker's default partition count, which would break co-partitioning by user."""
    n, rf = settings.partitions, settings.replication_factor
    return [
        TopicSpec(settings.items_topic, n, rf, {"cleanup.policy": "compact,delete"}),
        TopicSpec(settings.interactions_topic, n, rf),
        # Same partitions as interactions: the retry agent writes the same profile table.
        TopicSpec(settings.retry_topic, n, rf),
        TopicSpec(settings.recommendations_topic, n, rf),
        TopicSpec(settings.dead_letters_topic, 1, rf),
        TopicSpec(settings.vectors_topic, n, rf, {"cleanup.policy": "compact"}),
    ]


def create_topics(client_config: dict[str, str], specs: list[TopicSpec], *, timeout_s: float = 30.0) -> list[str]:
    """Create missing topics; returns the names created. Existing topics are left as they are."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(client_config)
    futures = admin.create_topics(
        [NewTopic(s.name, num_partitions=s.partitions, replication_factor=s.replication_factor, config=s.config) for s in specs],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    created = []
    for name, fut in futures.items():
        try:
            fut.result(timeout=timeout_s)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise StreamError(f"cannot create topic {name}: {exc}") from exc
    if created:
        logger.info("created topics %s", ", ".join(created))
    return created
