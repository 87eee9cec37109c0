"""Session fixtures: a real Tansu broker, a served milvus-lite and both workers (real MiniLM),
all on free loopback ports, all stopped by PID at the end. They never skip themselves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fusionrec.streams import EmbeddedStack
from fusionrec.testing.stack import Driver, stack_settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def media_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, media_root: Path) -> Iterator[EmbeddedStack]:
    with EmbeddedStack(stack_settings(tmp_path_factory.mktemp("fusionrec"), media_root)) as running:
        yield running


@pytest.fixture
def driver(stack: EmbeddedStack) -> Iterator[Driver]:
    d = Driver(stack)
    yield d
    d.close()

