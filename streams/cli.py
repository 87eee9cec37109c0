"""The ``fusionrec`` command."""

from __future__ import annotations

import logging
import signal
import sys
import time
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from fusionrec.schemas import FusionrecError

from .settings import Settings

app = typer.Typer(
    help="fusionrec: streaming multimodal recommendations on Kafka and Milvus.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
topics_app = typer.Typer(help="Create and list fusionrec's topics.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
console = Console(stderr=True)


class Role(StrEnum):
    encoder = "encoder"
    profiles = "profiles"
    all = "all"


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


@app.command()
def worker(
    role: Annotated[Role, typer.Option(help="encoder: item encoding (GPU); profiles: profiles and lists; all: both.")] = Role.all,
) -> None:
    """Run workers against FUSIONREC_BOOTSTRAP_SERVERS and FUSIONREC_MILVUS_URI."""
    settings = Settings()
    if role is Role.all:
        # Two processes, as in production: each role is its own Faust app and consumer group.
        from .processes import WorkerProcess

        procs = [WorkerProcess(r, {}, log_path=settings.data_dir / "logs" / f"worker-{r}.log") for r in ("encoder", "profiles")]
        for p in procs:
            p.start()
        _wait_for_signal(f"workers running (logs in {settings.data_dir / 'logs'}); Ctrl-C stops them")
        for p in procs:
            p.stop()
        return
    from .app import run_worker

    settings.require_bootstrap()
    settings.require_milvus_uri()
    run_worker(settings, role.value)


def _wait_for_signal(message: str) -> None:
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    console.print(message)
    while not stop:
        time.sleep(0.2)


@app.command()
def up() -> None:
    """Start the embedded stack (Tansu broker, milvus-lite, both workers) on loopback until Ctrl-C."""
    from .embedded import EmbeddedStack

    settings = Settings()
    _setup_logging(settings)
    with EmbeddedStack(settings) as stack:
        keys = ("FUSIONREC_BOOTSTRAP_SERVERS", "FUSIONREC_BROKER_FLAVOR", "FUSIONREC_MILVUS_URI")
        env = "\n".join(f"export {k}={stack.worker_env()[k]}" for k in keys)
        _wait_for_signal(f"[bold green]fusionrec is up.[/] Point clients at it with:\n{env}\nCtrl-C stops everything.")


@app.command()
def demo(
    users: Annotated[int, typer.Option(min=1, help="Synthetic users.")] = 50,
    items: Annotated[int, typer.Option(min=10, help="Synthetic catalogue size.")] = 400,
    events_per_user: Annotated[int, typer.Option(min=1, help="Interactions per user.")] = 10,
    rate: Annotated[float, typer.Option(min=1, help="Interactions published per second.")] = 15.0,
    seed: Annotated[int, typer.Option(help="Random seed of the synthetic data.")] = 7,
) -> None:
    """Run the whole stream end to end on the embedded stack and measure the recommendations."""
    from .demo import DemoConfig, run_demo

    settings = Settings()
    _setup_logging(settings)
    result = run_demo(settings, DemoConfig(users=users, items=items, events_per_user=events_per_user, rate=rate, seed=seed))
    print(result.summary_line(), flush=True)
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def deadletters(
    code: Annotated[list[str] | None, typer.Option(help="Only these error codes (repeatable).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Stop after this many records.")] = None,
    replay: Annotated[bool, typer.Option("--replay", help="Re-publish the shown records to their source topics.")] = False,
    idle: Annotated[float, typer.Option(help="Stop reading after this many seconds without a record.")] = 2.0,
) -> None:
    """Show the dead-letter topic as a table; with --replay, re-publish the records after a fix."""
    from fusionrec.schemas import ErrorCode

    from .deadletters import read_dead_letters
    from .deadletters import replay as replay_letters

    settings = Settings()
    try:
        codes = [ErrorCode(c) for c in code or []]
    except ValueError as exc:
        raise typer.BadParameter(f"{exc}; codes: {', '.join(ErrorCode)}") from None
    letters = list(read_dead_letters(settings, codes=codes, idle_s=idle, limit=limit))
    table = Table("failed at", "code", "source", "key", "reason", title=f"{len(letters)} dead letters")
    for d in letters:
        key = d.key.decode(errors="replace") if d.key is not None else ""
        table.add_row(
            d.failed_at.strftime("%Y-%m-%d %H:%M:%S"), d.error_code.value,
            f"{d.source_topic}[{d.partition}]@{d.offset}", key, d.reason,
        )
    Console().print(table)
    if replay and letters:
        sent = replay_letters(settings, letters)
        console.print(f"re-published {sent} records to their source topics")


@app.command()
def recommend(
    user: Annotated[str, typer.Option(help="User id.")],
    k: Annotated[int | None, typer.Option(min=1, max=1000, help="List length (default FUSIONREC_TOP_K).")] = None,
    category: Annotated[list[str] | None, typer.Option(help="Only these categories (repeatable).")] = None,
    exclude_category: Annotated[list[str] | None, typer.Option(help="Never these categories (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the Recommendation JSON.")] = False,
) -> None:
    """A user's current list, asked of the profile worker (FUSIONREC_WEB_HOST/PORT), without an event."""
    import httpx

    from fusionrec.schemas import Recommendation, StreamError

    settings = Settings()
    params: list[tuple[str, str | int]] = [("k", k)] if k else []
    params += [("category", c) for c in category or []] + [("exclude_category", c) for c in exclude_category or []]
    try:
        resp = httpx.get(f"{settings.worker_url}/recommend/{user}/", params=params, timeout=30)
    except httpx.HTTPError as exc:
        raise StreamError(f"no profile worker at {settings.worker_url}: {exc}") from exc
    if resp.status_code != 200:
        raise StreamError(f"worker answered {resp.status_code}: {resp.text[:200]}")
    rec = Recommendation.model_validate_json(resp.content)
    if as_json:
        print(rec.model_dump_json(indent=2))
        return
    table = Table("#", "item", "score", "reason", title=f"{user}: {rec.model_version}")
    for n, item in enumerate(rec.items, 1):
        table.add_row(str(n), item.item_id, f"{item.score:.3f}", item.reason)
    Console().print(table)


@topics_app.command("create")
def topics_create() -> None:
    """Create the items, interactions, recommendations and dead-letter topics (existing ones are kept)."""
    from .client import kafka_config
    from .topics import create_topics, topic_specs

    settings = Settings()
    created = create_topics(kafka_config(settings), topic_specs(settings))
    console.print(f"created: {', '.join(created) or 'nothing (all exist)'}")


@topics_app.command("list")
def topics_list() -> None:
    """List the broker's topics with partition counts."""
    from confluent_kafka.admin import AdminClient

    from .client import kafka_config

    meta = AdminClient(kafka_config(Settings())).list_topics(timeout=10)
    table = Table("topic", "partitions")
    for name in sorted(meta.topics):
        table.add_row(name, str(len(meta.topics[name].partitions)))
    Console().print(table)


def main() -> None:
    try:
        app()
    except FusionrecError as exc:
        console.print(f"[red]error:[/] {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()
