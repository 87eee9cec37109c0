"""docker-compose.yml cannot run here (no Docker engine): check its structure and that it
configures fusionrec only through variables that are real settings."""

from pathlib import Path

import pytest
import yaml

from fusionrec.streams import Settings

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_are_there(compose):
    services = compose["services"]
    assert {"kafka", "etcd", "minio", "milvus", "topics", "encoder", "encoder-gpu", "profiles"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    assert services["milvus"]["command"][-1] == "standalone"
    assert services["topics"]["command"] == ["fusionrec", "topics", "create"]
    assert services["encoder"]["command"][-1] == "encoder" and services["profiles"]["command"][-1] == "profiles"


def test_gpu_encoder_reserves_a_gpu(compose):
    gpu = compose["services"]["encoder-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert gpu["environment"]["FUSIONREC_DEVICE"] == "cuda"


def test_every_fusionrec_variable_is_a_setting(compose):
    fields = {f"FUSIONREC_{name.upper()}" for name in Settings.model_fields}
    used = {k for svc in compose["services"].values() for k in (svc.get("environment") or {}) if k.startswith("FUSIONREC_")}
    assert used, "compose sets no FUSIONREC_ variables"
    assert used <= fields, used - fields
    env = {k: str(v) for k, v in compose["services"]["profiles"]["environment"].items()}
    settings = Settings(**{k.removeprefix("FUSIONREC_").lower(): v for k, v in env.items()})
    assert settings.bootstrap_servers == "kafka:9092" and settings.milvus_uri == "http://milvus:19530"


def test_every_setting_documents_its_variable():
    for name, field in Settings.model_fields.items():
        assert (field.description or "").startswith(f"FUSIONREC_{name.upper()}"), name


def test_images_name_no_registry_host(compose):
    for name, svc in compose["services"].items():
        image = svc.get("image", "")
        # A registry host would be a first path segment like "host.tld" or "host:port".
        first = image.split("/")[0] if "/" in image else ""
        assert "." not in first and ":" not in first, (name, image)
