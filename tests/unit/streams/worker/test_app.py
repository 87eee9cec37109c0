"""create_app wires each role's agents, table and pages; built with twins, never started."""

from fusionrec.encoders import HashingTextEncoder
from fusionrec.streams import MemoryMediaFetcher, MemorySink, MemoryVectorIndex, Settings
from fusionrec.streams.worker.app import create_app


def settings(tmp_path, **kw) -> Settings:
    return Settings(bootstrap_servers="127.0.0.1:9", milvus_uri="memory://", data_dir=tmp_path, **kw)


def test_encoder_role_has_only_the_encoding_agent(tmp_path):
    index = MemoryVectorIndex()
    app = create_app(settings(tmp_path), "encoder", index=index, encoders={"text": HashingTextEncoder(32)}, sink=MemorySink(),
                     media=MemoryMediaFetcher())
    assert app.conf.id == "fusionrec-encoder"
    assert [a.name.rsplit(".", 1)[-1] for a in app.agents.values()] == ["encode_items"]
    assert not app.tables and not app.conf.web_enabled
    assert index.count() == 0 and index.search(HashingTextEncoder(32).encode(["x"])[0], 1) == []


def test_profiles_role_has_table_agents_and_pages(tmp_path):
    app = create_app(settings(tmp_path, web_port=7777, table_store="memory://"), "profiles", sink=MemorySink())
    assert app.conf.id == "fusionrec-profiles"
    assert {a.name.rsplit(".", 1)[-1] for a in app.agents.values()} == {"recommend", "retry_pending"}
    assert list(app.tables) == ["profiles"]
    assert app.conf.web_enabled and app.conf.web_port == 7777 and app.conf.web_bind == "127.0.0.1"


def test_tansu_flavour_gets_the_local_broker_settings(tmp_path):
    app = create_app(settings(tmp_path, broker_flavor="tansu", table_store="memory://"), "profiles")
    assert app.conf.broker_session_timeout == 4.0
    plain = create_app(settings(tmp_path, table_store="memory://"), "profiles")
    assert plain.conf.broker_session_timeout != 4.0


def test_profile_table_memory_is_bounded(tmp_path):
    app = create_app(settings(tmp_path, table_memory_mb=64), "profiles", sink=MemorySink())
    options = app.tables["profiles"].options
    assert options["block_cache_size"] == 40 * 2**20 and options["write_buffer_size"] == 8 * 2**20
    assert options["max_write_buffer_number"] == 2
