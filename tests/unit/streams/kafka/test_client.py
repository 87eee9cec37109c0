"""Client configuration: pure, no broker."""

import faust

from fusionrec.streams import Settings, kafka_config
from fusionrec.streams.worker.app import faust_credentials


def test_sasl_settings_reach_clients_and_workers_but_never_print():
    s = Settings(bootstrap_servers="broker:9093", kafka_security_protocol="SASL_SSL",
                 kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="app", kafka_sasl_password="s3cret")
    cfg = kafka_config(s)
    assert cfg["security.protocol"] == "SASL_SSL" and cfg["sasl.mechanism"] == "SCRAM-SHA-512"
    assert cfg["sasl.username"] == "app" and cfg["sasl.password"] == "s3cret"
    assert "s3cret" not in repr(s) and "s3cret" not in str(s.model_dump())
    creds = faust_credentials(s)
    assert isinstance(creds, faust.SASLCredentials) and creds.ssl_context is not None
    assert kafka_config(Settings(bootstrap_servers="b:9092"))["security.protocol"] == "PLAINTEXT"
    assert "sasl.password" not in kafka_config(Settings(bootstrap_servers="b:9092"))
