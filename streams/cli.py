"""The ``fusionrec`` command."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from fusionrec.schemas import FusionrecError
from fusionrec.streams.settings import Settings

app = typer.Typer(
    help="fusionrec: streaming multimodal recommendations on Kafka and Milvus.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
topics_app = typer.Typer(help="Create, list and describe fusionrec's topics.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
replay_app = typer.Typer(help="Backfill: re-encode items, rebuild profiles, export and import topic ranges.",
                         no_args_is_help=True)
app.add_typer(replay_app, name="replay")
fusion_app = typer.Typer(help="Train a learned fusion.", no_args_is_help=True)
app.add_typer(fusion_app, name="fusion")
console = Console(stderr=True)


@app.callback()
def _options(
    env_file: Annotated[Path | None, typer.Option(
        "--env-file", exists=True, dir_okay=False,
        help="Read FUSIONREC_* settings from this file (e.g. the stack.env `fusionrec up` writes); "
        "variables already set in the environment win.")] = None,
) -> None:
    if env_file is not None:
        from dotenv import load_dotenv

        load_dotenv(env_file, override=False)


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
    settings.require_bootstrap()
    settings.require_milvus_uri()
    if role is Role.all:
        # Two processes, as in production: each role is its own Faust app and consumer group.
        from fusionrec.streams.embedded.processes import WorkerProcess

        procs = [WorkerProcess(r, settings.to_env(), log_path=settings.data_dir / "logs" / f"worker-{r}.log")
                 for r in ("encoder", "profiles")]
        for p in procs:
            p.start()
        _setup_logging(settings)
        def keep_alive() -> None:
            for p in procs:
                p.keep_alive()

        _wait_for_signal(f"workers running (logs in {settings.data_dir / 'logs'}); Ctrl-C stops them",
                         every=keep_alive)
        for p in procs:
            p.stop()
        return
    from fusionrec.streams.worker.app import run_worker

    run_worker(settings, role.value)


def _wait_for_signal(message: str, *, every: Callable[[], None] | None = None) -> None:
    """Print ``message`` and wait for SIGTERM/SIGINT, calling ``every`` about twice a second."""
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    console.print(message)
    while not stop:
        if every is not None:
            every()
        time.sleep(0.5)


@app.command()
def up() -> None:
    """Start the embedded stack (Tansu broker, milvus-lite, both workers) on loopback until Ctrl-C."""
    from fusionrec.streams.embedded.stack import EmbeddedStack

    settings = Settings()
    _setup_logging(settings)
    with EmbeddedStack(settings) as stack:
        keys = ("FUSIONREC_BOOTSTRAP_SERVERS", "FUSIONREC_BROKER_FLAVOR", "FUSIONREC_MILVUS_URI")
        env = "\n".join(f"export {k}={stack.worker_env()[k]}" for k in keys)
        _wait_for_signal(
            f"[bold green]fusionrec is up.[/] Point clients at it with:\n{env}\n"
            f"Every setting its workers run with is in {stack.env_file}; run one more worker by hand with\n"
            f"  fusionrec --env-file {stack.env_file} worker --role profiles\n"
            "(on this machine, with its own FUSIONREC_WEB_PORT and FUSIONREC_DATA_DIR). A worker that dies is "
            "restarted.\nCtrl-C stops everything.",
            every=stack.keep_alive,
        )


@app.command()
def demo(
    users: Annotated[int, typer.Option(min=1, help="Synthetic users.")] = 200,
    items: Annotated[int, typer.Option(min=10, help="Synthetic catalogue size.")] = 400,
    events_per_user: Annotated[int, typer.Option(min=1, help="Interactions per user.")] = 20,
    rate: Annotated[float, typer.Option(min=1, help="Interactions published per second.")] = 200.0,
    seed: Annotated[int, typer.Option(help="Random seed of the synthetic data.")] = 7,
) -> None:
    """Run the whole stream end to end on the embedded stack and measure the recommendations."""
    from fusionrec.streams.ops.demo import DemoConfig, run_demo

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
    as_json: Annotated[bool, typer.Option("--json", help="One DeadLetter JSON per line instead of the table.")] = False,
) -> None:
    """Show the dead-letter topic as a table; with --replay, re-publish the records after a fix."""
    from fusionrec.schemas import ErrorCode
    from fusionrec.streams.ops.deadletters import read_dead_letters
    from fusionrec.streams.ops.deadletters import replay as replay_letters

    settings = Settings()
    try:
        codes = [ErrorCode(c) for c in code or []]
    except ValueError as exc:
        raise typer.BadParameter(f"{exc}; codes: {', '.join(ErrorCode)}") from None
    letters = list(read_dead_letters(settings, codes=codes, idle_s=idle, limit=limit))
    if as_json:
        for d in letters:
            print(d.model_dump_json(), flush=True)
    else:
        table = Table(title=f"{len(letters)} dead letters")
        for name in ("failed at", "code", "source"):
            table.add_column(name, no_wrap=True)
        # Keys and reasons wrap, whole, rather than being cut to the terminal's width.
        table.add_column("key", overflow="fold", max_width=40)
        table.add_column("reason", overflow="fold", ratio=1)
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


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def kcat(ctx: typer.Context) -> None:
    """Run kcat against fusionrec's broker (-b from FUSIONREC_BOOTSTRAP_SERVERS unless given), with the
    librdkafka fusionrec ships, which talks to the embedded broker where older system builds cannot."""
    from fusionrec.streams.ops.kcat import run_kcat

    raise typer.Exit(run_kcat(Settings(), ctx.args))


@app.command()
def recommend(
    user: Annotated[str, typer.Option(help="User id.")],
    k: Annotated[int | None, typer.Option(min=1, max=1000, help="List length (default FUSIONREC_TOP_K).")] = None,
    category: Annotated[list[str] | None, typer.Option(help="Only these categories (repeatable).")] = None,
    exclude_category: Annotated[list[str] | None, typer.Option(help="Never these categories (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the Recommendation JSON.")] = False,
) -> None:
    """A user's current list, asked of the profile worker (FUSIONREC_WEB_HOST/PORT), without an event."""
    from fusionrec.streams.client import Client

    with Client() as client:
        rec = client.recommend(user, k=k, categories=category or [], exclude_categories=exclude_category or [])
    if as_json:
        print(rec.model_dump_json(indent=2))
        return
    _print_items(f"{user}: {rec.model_version}", rec.items)


def _print_items(title: str, items: list) -> None:
    table = Table("#", "item", "score", "reason", title=title)
    for n, item in enumerate(items, 1):
        table.add_row(str(n), item.item_id, f"{item.score:.3f}", item.reason)
    Console().print(table)


@app.command()
def search(
    words: Annotated[str | None, typer.Argument(help="What to search for, in words.")] = None,
    user: Annotated[str | None, typer.Option(help="Rank for this user (their profile, co-occurrence, popularity).")] = None,
    image: Annotated[str | None, typer.Option(help="A picture to search by: a file, or a URI the worker may fetch.")] = None,
    like: Annotated[str | None, typer.Option(help="An item id: find items like it (itself left out).")] = None,
    k: Annotated[int | None, typer.Option(min=1, max=1000, help="Results (default FUSIONREC_TOP_K).")] = None,
    category: Annotated[list[str] | None, typer.Option(help="Only these categories (repeatable).")] = None,
    exclude_category: Annotated[list[str] | None, typer.Option(help="Never these categories (repeatable).")] = None,
    personalization: Annotated[float | None, typer.Option(
        min=0, help="How much the user counts (default FUSIONREC_SEARCH_PERSONALIZATION; 0 = plain search).")] = None,
    record: Annotated[bool, typer.Option(help="Also publish the words as the user's `search` event.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the SearchResults JSON.")] = False,
) -> None:
    """Search the catalogue by words, a picture and/or an example item, asked of the profile worker."""
    from fusionrec.streams.client import Client

    picture: Path | str | None = image
    if image is not None and "://" not in image:
        picture = Path(image)
        if not picture.is_file():
            raise typer.BadParameter(f"{image} is not a file", param_hint="--image")
    with Client() as client:
        found = client.search(words, user=user, image=picture, like=like, k=k, categories=category or [],
                              exclude_categories=exclude_category or [], personalization=personalization,
                              record=record)
    if as_json:
        print(found.model_dump_json(indent=2))
        return
    asked = " + ".join(p for p in (f"\u2018{words}\u2019" if words else "", "picture" if image else "",
                                   f"like {like}" if like else "") if p)
    _print_items(f"{asked}{f' for {user}' if user else ''} (personalization {found.personalization:g})", found.items)


@topics_app.command("create")
def topics_create() -> None:
    """Create the items, interactions, recommendations and dead-letter topics (existing ones are kept)."""
    from fusionrec.streams.kafka.config import kafka_config
    from fusionrec.streams.kafka.topics import create_topics, topic_specs

    settings = Settings()
    created = create_topics(kafka_config(settings), topic_specs(settings))
    console.print(f"created: {', '.join(created) or 'nothing (all exist)'}")


@topics_app.command("list")
def topics_list() -> None:
    """List the broker's topics with partition counts."""
    from confluent_kafka.admin import AdminClient

    from fusionrec.streams.kafka.config import kafka_config

    meta = AdminClient(kafka_config(Settings())).list_topics(timeout=10)
    table = Table("topic", "partitions")
    for name in sorted(meta.topics):
        table.add_row(name, str(len(meta.topics[name].partitions)))
    Console().print(table)


def _ms(when: str | None) -> int | None:
    """An ISO-8601 time (UTC when it names no zone) as epoch milliseconds."""
    if when is None:
        return None
    from datetime import UTC, datetime

    try:
        t = datetime.fromisoformat(when)
    except ValueError:
        raise typer.BadParameter(f"{when!r} is not an ISO-8601 time, e.g. 2026-11-22T12:00:00Z") from None
    return int((t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp() * 1000)


@topics_app.command("describe")
def topics_describe() -> None:
    """fusionrec's topics: partitions and end offsets (read from fetches, right on every broker)."""
    from confluent_kafka.admin import AdminClient

    from fusionrec.streams.kafka.config import kafka_config
    from fusionrec.streams.kafka.reader import end_offsets
    from fusionrec.streams.kafka.topics import topic_specs

    settings = Settings()
    meta = AdminClient(kafka_config(settings)).list_topics(timeout=10)
    table = Table("topic", "partitions", "records (end offsets)", "exists")
    for spec in topic_specs(settings):
        if spec.name not in meta.topics:
            table.add_row(spec.name, str(spec.partitions), "", "no")
            continue
        ends = end_offsets(settings, spec.name)
        table.add_row(spec.name, str(len(ends)), " ".join(f"{p}:{o}" for p, o in sorted(ends.items())), "yes")
    Console().print(table)


@app.command()
def publish(
    kind: Annotated[str, typer.Argument(help="items or interactions")],
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A .jsonl, .csv or .parquet file.")],
    map_: Annotated[list[str] | None, typer.Option("--map", help="field=column, e.g. --map id=sku (repeatable).")] = None,
    rate: Annotated[float, typer.Option(min=0, help="Rows per second at most; 0 = as fast as possible.")] = 0.0,
) -> None:
    """Validate every row of a file and publish the good ones; bad rows are listed with line numbers.

    Exits 1 when any row was rejected (the good rows are published all the same)."""
    from fusionrec.streams.kafka.client import Publisher
    from fusionrec.streams.ops.files import read_rows, validate_rows

    if kind not in ("items", "interactions"):
        raise typer.BadParameter("kind must be items or interactions")
    mapping = dict(m.split("=", 1) for m in map_ or [])
    settings = Settings()
    good, bad = validate_rows(kind, read_rows(path), mapping)
    start = time.monotonic()
    with Publisher(settings) as pub:
        for n, (_, event) in enumerate(tqdm(good, desc=f"publish {kind}", unit="row"), 1):
            pub.publish_item(event) if kind == "items" else pub.publish_interaction(event)
            if rate:
                time.sleep(max(0.0, start + n / rate - time.monotonic()))
    elapsed = max(time.monotonic() - start, 1e-9)
    for line, reason in bad:
        console.print(f"[red]line {line}:[/] {reason}")
    console.print(f"{kind}: {len(good)} published ({len(good) / elapsed:.0f}/s), {len(bad)} rejected")
    if bad:
        raise typer.Exit(1)


@app.command()
def tail(
    user: Annotated[list[str] | None, typer.Option(help="Only these users (repeatable).")] = None,
    from_beginning: Annotated[bool, typer.Option("--from-beginning", help="Start at the topic's start.")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Stop after this many lists.")] = None,
) -> None:
    """Print recommendation lists as they arrive (Ctrl-C stops)."""
    from fusionrec.streams.kafka.client import RecommendationConsumer

    settings = Settings()
    n = 0
    with RecommendationConsumer(settings, users=user, start="beginning" if from_beginning else "end") as recs:
        for got in recs:
            rec = got.recommendation
            items = ", ".join(f"{i.item_id} ({i.score:.2f})" for i in rec.items)
            print(f"{rec.generated_at:%H:%M:%S} {rec.user_id} <- {rec.trigger_event_id}: {items}", flush=True)
            n += 1
            if limit and n >= limit:
                break


@app.command()
def status(
    interval: Annotated[float, typer.Option(min=0.5, help="Seconds over which events/s is measured.")] = 2.0,
) -> None:
    """Consumer lag per group and partition, events/s per topic, Milvus collections and model versions."""
    from fusionrec.streams.ops.status import collect

    report = collect(Settings(), interval_s=interval)
    lag = Table("group", "topic", "partition", "committed", "end", "lag", title="consumer lag")
    for row in report.lag:
        lag.add_row(row.group, row.topic, str(row.partition), str(row.committed), str(row.end), str(row.lag))
    rates = Table("topic", "records", "events/s", title=f"throughput over {interval:g} s")
    for topic, (records, per_s) in report.rates.items():
        rates.add_row(topic, str(records), f"{per_s:.1f}")
    milvus = Table("collection", "serving", "items", "encoder versions", title="Milvus")
    for c in report.collections:
        milvus.add_row(c.name, "yes" if c.serving else "", str(c.count), ", ".join(c.encoder_versions))
    worker = Table("figure", "value", title="profile worker (its /metrics page)")
    for name, value in report.worker.items():
        worker.add_row(name, value)
    out = Console()
    for t in (lag, rates, milvus, worker):
        out.print(t)
    if report.milvus_error:
        out.print(f"[red]Milvus unavailable:[/] {report.milvus_error}")
    if report.worker_error:
        out.print(f"[yellow]profile worker not answering:[/] {report.worker_error}")


@app.command("settings")
def settings_reference() -> None:
    """Every setting, its variable, default and meaning, as Markdown (the source of docs/settings.md)."""
    from fusionrec.streams.settings import reference

    typer.echo(reference(), nl=False)


@replay_app.command("export")
def replay_export(
    topic: Annotated[str, typer.Option(help="Topic to export.")],
    out: Annotated[Path, typer.Option(help="Output .jsonl or .parquet file.")],
    since: Annotated[str | None, typer.Option(help="Only records with a timestamp at/after this ISO time.")] = None,
    until: Annotated[str | None, typer.Option(help="Only records with a timestamp before this ISO time.")] = None,
) -> None:
    """Write a topic range (keys, values, headers, timestamps, partitions) to a file."""
    from fusionrec.streams.ops.replay import export_topic

    n = export_topic(Settings(), topic, out, since_ms=_ms(since), until_ms=_ms(until))
    console.print(f"exported {n} records from {topic} to {out}")


@replay_app.command("import")
def replay_import(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A file written by `replay export`.")],
    topic: Annotated[str, typer.Option(help="Topic to publish into.")],
    by_key: Annotated[bool, typer.Option("--by-key", help="Partition by key instead of keeping partitions.")] = False,
) -> None:
    """Publish an exported file back, with the original keys, headers and timestamps."""
    from fusionrec.streams.ops.replay import import_records, load_records

    n = import_records(Settings(), topic, load_records(path), keep_partitions=not by_key)
    console.print(f"imported {n} records into {topic}")


@replay_app.command("re-encode")
def replay_reencode() -> None:
    """Encode the whole items topic into a new collection version, then switch serving to it."""
    from fusionrec.encoders.media.fetch import PolicyMediaFetcher
    from fusionrec.streams.build import load_encoders, media_policy
    from fusionrec.streams.ops.replay import reencode

    settings = Settings()
    _setup_logging(settings)
    with PolicyMediaFetcher(media_policy(settings)) as fetcher:
        r = reencode(settings, encoders=load_encoders(settings), fetcher=fetcher)
    console.print(f"re-encoded {r.records} item records: {r.stored} stored, {r.failed} refused, "
                  f"{r.caught_up} caught up after the switch; {settings.collection} now serves {r.current} "
                  f"(was {r.previous}, kept)")


@replay_app.command("profiles")
def replay_profiles(
    since: Annotated[str | None, typer.Option(help="Rebuild from the first interaction at/after this ISO time.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Prepare a new profile generation rebuilt from the interactions topic; the current one is kept."""
    from fusionrec.streams.ops.replay import rebuild_profiles

    settings = Settings()
    if not yes:
        typer.confirm(f"Prepare profile generation {settings.profile_generation + 1}, rebuilt from "
                      f"{settings.interactions_topic}?", abort=True)
    generation, offsets = rebuild_profiles(settings, since_ms=_ms(since))
    for topic, parts in offsets.items():
        console.print(f"{topic}: " + " ".join(f"{p}@{o}" for p, o in sorted(parts.items())))
    console.print(f"restart the profile workers with FUSIONREC_PROFILE_GENERATION={generation} to rebuild; "
                  f"generation {settings.profile_generation} stays as it is")


class Protocol(StrEnum):
    global_ = "global"
    prequential = "prequential"


class Task(StrEnum):
    recommend = "recommend"
    search = "search"


@app.command()
def evaluate(
    dataset: Annotated[str, typer.Option(help="movielens-100k, lastfm-2k or generic (your own files).")] = "movielens-100k",
    data_dir: Annotated[Path | None, typer.Option(help="The dataset's folder (generic: the media root).")] = None,
    items: Annotated[Path | None, typer.Option(help="generic: items file (.jsonl/.csv/.parquet, items schema).")] = None,
    interactions: Annotated[Path | None, typer.Option(help="generic: interactions file (interactions schema).")] = None,
    protocol: Annotated[list[Protocol] | None, typer.Option(help="Repeat for both (default: both).")] = None,
    models: Annotated[str, typer.Option(help="Comma-separated model names to run (default: all).")] = "",
    out: Annotated[Path | None, typer.Option(help="Report folder (default .fusionrec/eval/<dataset>).")] = None,
    seed: Annotated[int, typer.Option(help="Seeds ALS and the bootstrap.")] = 0,
    resamples: Annotated[int, typer.Option(min=100, help="Bootstrap resamples over users.")] = 1000,
    workers: Annotated[int, typer.Option(min=1, help="Models evaluated side by side (processes).")] = os.cpu_count() or 1,
    tune: Annotated[bool, typer.Option(help="Tune ALS and the hybrid's ranking weights on the validation split.")] = True,
    score_share: Annotated[float, typer.Option(min=0.01, max=1.0, help="Prequential: share of test events scored "
                                               "(a seeded sample; every event is learned).")] = 0.2,
    name: Annotated[str, typer.Option(help="generic: the dataset's name in the report and its folder.")] = "generic",
    rating_midpoint: Annotated[float | None, typer.Option(
        help="A rating weighs value - midpoint (default: the dataset's own, MovieLens 0; else FUSIONREC_RATING_MIDPOINT).",
    )] = None,
    task: Annotated[Task, typer.Option(help="recommend: lists against baselines; search: known-item and "
                                       "personalised search.")] = Task.recommend,
) -> None:
    """Replay a real interaction log in time order against baselines (or evaluate search: --task search);
    Markdown + JSON + PNG report."""
    from dataclasses import replace

    from fusionrec.streams.evaluation.datasets import load_dataset
    from fusionrec.streams.evaluation.report import Summary, write
    from fusionrec.streams.evaluation.run import EvalConfig, dataset_settings, settings_summary
    from fusionrec.streams.evaluation.run import evaluate as run_evaluation

    settings = Settings()
    _setup_logging(settings)
    data = load_dataset(dataset, data_dir, items=items, interactions=interactions, generic_name=name)
    if rating_midpoint is not None:
        data = replace(data, settings={**data.settings, "rating_midpoint": rating_midpoint})
    midpoint = dataset_settings(settings, data).rating_midpoint
    source = ("--rating-midpoint" if rating_midpoint is not None else f"{data.name}'s own" if "rating_midpoint" in data.settings
              else "FUSIONREC_RATING_MIDPOINT")
    console.print(f"{data.describe()}; a rating weighs value - {midpoint:g} ({source})")
    started = time.perf_counter()
    folder = out or settings.data_dir / "eval" / data.name
    if task is Task.search:
        from fusionrec.streams.evaluation import search as search_eval

        found = search_eval.evaluate_search(settings, data, search_eval.SearchEvalConfig(
            seed=seed, resamples=resamples, score_share=score_share, cache_dir=settings.data_dir / "eval-cache"))
        paths = search_eval.write(found, folder)
        print(paths[0].read_text())
        console.print(f"{time.perf_counter() - started:.0f} s; wrote " + ", ".join(str(p) for p in paths))
        return
    config = EvalConfig(
        protocols=tuple(p.value for p in protocol) if protocol else ("global", "prequential"),
        models=tuple(m.strip() for m in models.split(",") if m.strip()), seed=seed, resamples=resamples,
        workers=workers, score_share=score_share, cache_dir=settings.data_dir / "eval-cache",
        **({} if tune else {"rank_grid": {}, "als_grid": ({"factors": 64, "regularization": 0.05, "alpha": 10.0},)}),
    )
    result = run_evaluation(settings, data, config)
    summary = Summary(result)
    paths = write(summary, folder, settings_summary(dataset_settings(settings, data)))
    print(paths[0].read_text())
    for line in result.skipped:
        console.print(f"skipped {line}")
    console.print(f"{time.perf_counter() - started:.0f} s; wrote " + ", ".join(str(p) for p in paths))


def main() -> None:
    try:
        app()
    except FusionrecError as exc:
        console.print(f"[red]error:[/] {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()


@fusion_app.command("train")
def fusion_train(
    items: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Items (.jsonl, .csv, .parquet).")],
    interactions: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Interactions file.")],
    out: Annotated[Path, typer.Option(help="Where to write the artefact (.npz).")] = Path("fusion.npz"),
    dim: Annotated[int, typer.Option(min=8, help="Size of the fused space.")] = 256,
    epochs: Annotated[int, typer.Option(min=1)] = 20,
    window: Annotated[int, typer.Option(min=1, help="Pair items up to this many steps apart in a history.")] = 3,
) -> None:
    """Learn per-modality projections from which items users consume together (on CUDA when there is one).

    Uses the configured encoders (FUSIONREC_MODALITIES, *_MODEL); serve it with FUSIONREC_FUSION=learned
    FUSIONREC_FUSION_MODEL=<out>, then `fusionrec replay re-encode`."""
    from fusionrec.streams.ops.fusion_training import train_from_files

    settings = Settings()
    _setup_logging(settings)
    r = train_from_files(settings, items, interactions, out, dim=dim, epochs=epochs, window=window)
    console.print(f"trained {r.version} on {r.items} items ({r.refused} refused) and {r.pairs} pairs; wrote {r.path}")
    console.print(f"held-out pairs: {r.held_out}; hit rate@10 early fusion {r.early_hit_rate:.3f}, "
                  f"learned {r.learned_hit_rate:.3f}")
