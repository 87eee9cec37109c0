"""Client settings for the configured broker, shared by every confluent-kafka client fusionrec makes."""

from __future__ import annotations

from typing import Any

from fusionrec.streams.embedded.tansu import client_settings
from fusionrec.streams.settings import Settings


def kafka_config(settings: Settings, *, consumer: bool = False) -> dict[str, Any]:
    """confluent-kafka settings for ``settings``' broker: security passed through, plus the Tansu
    work-arounds for consumers. Holds the SASL password: never log the result."""
    config: dict[str, Any] = {"bootstrap.servers": settings.require_bootstrap(),
                              "security.protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol.startswith("SASL"):
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
        config["sasl.username"] = settings.kafka_sasl_username or ""
        config["sasl.password"] = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    if settings.kafka_ssl_ca_location:
        config["ssl.ca.location"] = str(settings.kafka_ssl_ca_location)
    if consumer and settings.is_tansu:
        config.update(client_settings(settings.local_fetch_wait_ms))
    return config
