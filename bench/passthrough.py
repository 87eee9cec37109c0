"""A Faust agent that only passes events on (read one record, write one record): the ceiling
bench/stream.py measures the profile worker against, on the same broker, with the same Faust
settings as the workers. Reads its broker from FUSIONREC_* like a worker.

    python bench/passthrough.py SOURCE_TOPIC SINK_TOPIC
"""

from __future__ import annotations

import sys
import tempfile
from typing import Any

import faust

from fusionrec.streams.embedded import tansu
from fusionrec.streams.settings import Settings


def main() -> None:
    source, sink = sys.argv[1], sys.argv[2]
    settings = Settings()
    conf: dict[str, Any] = {"broker": f"kafka://{settings.require_bootstrap()}", "store": "memory://",
                            "web_enabled": False, "topic_partitions": settings.partitions,
                            "consumer_auto_offset_reset": "earliest", "datadir": tempfile.mkdtemp(prefix="passthrough-")}
    if settings.is_tansu:
        conf.update(tansu.FAUST_SETTINGS)
        tansu.patch_faust(settings.require_bootstrap(), settings.local_fetch_wait_ms)
    app = faust.App("bench-passthrough", **conf)
    src = app.topic(source, key_serializer="raw", value_serializer="raw")
    out = app.topic(sink, key_serializer="raw", value_serializer="raw")

    @app.agent(src)
    async def passthrough(stream: Any) -> None:
        async for event in stream.events():
            await out.send(key=event.key, value=event.value)

    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
