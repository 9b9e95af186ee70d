"""`python -m cache_invalidator check|replay`: argument parsing and the commands' wiring."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Optional, TextIO

from ..settings import Settings, SettingsError, TriggerSettings, declared_soft_delete_ttl
from ..translation import ContainerKind
from .appsettings import (PRECEDENCE, SettingsFileError, effective_settings, key_vault_reference_problem,
                          key_vault_references)
from .cosmos_facts import (DEFAULT_MIN_SOFT_DELETE_TTL, DEFAULT_SAMPLE_MAX_DOCUMENTS, DEFAULT_SAMPLE_MAX_REQUEST_UNITS,
                           DEFAULT_SAMPLE_WINDOW_SECONDS, FeedSampleBounds)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# (env, trigger settings, container names, since, until_ts, timeout, page size)
#   -> ({container name: pages}, close)
PageSource = Callable[..., tuple[Mapping[str, Iterable[list]], Callable[[], None]]]

DESCRIPTION = f"""\
Operator commands for the cache invalidator. They read the same settings as
the Function App: from the environment, or from a local.settings.json given
with --settings. {PRECEDENCE}
"""


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError("must be more than 0 and at most 600 seconds")
    return value


def _time(text: str) -> datetime:
    from .replay import parse_time

    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> int:
    """Seconds from `90`, `90s`, `15m`, `24h` or `7d`."""
    value = text.strip().lower()
    unit = _DURATION_UNITS.get(value[-1:], None) if value else None
    number = value[:-1] if unit else value
    try:
        seconds = int(float(number) * (unit or 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 3600, 90m, 24h or 7d") from None
    if seconds < 1:
        raise argparse.ArgumentTypeError("must be at least 1 second")
    return seconds


def _request_units(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of request units") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _page_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--settings", metavar="FILE",
        help="a local.settings.json whose Values are the app settings (// comments allowed), such as a "
             "region's downloaded settings. " + PRECEDENCE)
    common.add_argument(
        "--timeout", type=_seconds, default=10.0, metavar="SECONDS",
        help="how long to wait for Kafka metadata and Cosmos DB connections (default: 10)")

    parser = argparse.ArgumentParser(
        prog="python -m cache_invalidator", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    check = commands.add_parser(
        "check", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="validate a region's settings, Kafka topic and Cosmos DB containers and leases",
        description="Validates a region's deployment and prints a report in four sections, secrets shown\n"
                    "as ***.\n"
                    "Settings: parsed as the app parses them; a Key Vault reference is named, never used.\n"
                    "Kafka: the app's own client configuration is accepted, the brokers answer, the topic\n"
                    "exists and has partitions. Cosmos DB: the database and the whisks, subjects and lease\n"
                    "containers exist, the lease container is keyed by /id, and this deployment's\n"
                    "leases, with warnings when other deployments' lease prefixes suggest a CLUSTER_ID\n"
                    "problem. What OpenWhisk's controllers write: the containers' time to live, and a\n"
                    "bounded sample of each change feed (soft deletes, their ttl, _clusterId).\n"
                    "Lease watch: once the lease container answered, the table the watch_leases function\n"
                    "logs, a row per region and container.\n\n"
                    "Exit status: 0 when there is no problem (warnings allowed), 1 otherwise.")
    check.add_argument("--no-kafka", dest="kafka", action="store_false", help="skip the Kafka checks")
    check.add_argument("--no-cosmos", dest="cosmos", action="store_false", help="skip the Cosmos DB checks")
    sampling = check.add_argument_group(
        "change feed sample", "what OpenWhisk's controllers write: soft deletes, their ttl, _clusterId; each "
                              "container's feed is read back over a window, within a document and an RU bound")
    sampling.add_argument("--sample-window", type=_duration, default=DEFAULT_SAMPLE_WINDOW_SECONDS, metavar="DURATION",
                          help="how far back to read each change feed: 3600, 90m, 24h, 7d (default: 24h)")
    sampling.add_argument("--sample-max-documents", type=_page_size, default=DEFAULT_SAMPLE_MAX_DOCUMENTS, metavar="N",
                          help="read at most this many changes per container (default: 1000)")
    sampling.add_argument("--sample-max-ru", type=_request_units, default=DEFAULT_SAMPLE_MAX_REQUEST_UNITS, metavar="RU",
                          help="stop reading a container's feed once this many request units are charged "
                               "(default: 100)")
    sampling.add_argument("--min-soft-delete-ttl", type=_duration, default=None, metavar="DURATION",
                          help="warn of soft deletes whose ttl is shorter: the longest outage of a region's app "
                               "plus the replay horizon (default: OPENWHISK_SOFT_DELETE_TTL_SECONDS, the TTL the "
                               "deployment declares, else 24h)")
    sampling.add_argument("--no-sample", dest="sample", action="store_false",
                          help="do not read the change feeds")

    replay = commands.add_parser(
        "replay", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="send the invalidations of a window of changes again",
        description="Reads the change feed of whisks and/or subjects from --since up to --until or the\n"
                    "end of the feed (both bounded by _ts, to the second), and sends each page's\n"
                    "invalidations to the region's Kafka with the app's own translation, CLUSTER_ID\n"
                    "filter and at-least-once producer.\n"
                    "Times are ISO 8601 (2024-05-01T12:00:00Z); without an offset they are UTC.\n"
                    "The change feed holds each document's latest version only.\n\n"
                    "Exit status: 0 when every page was sent (or printed), 1 otherwise.")
    replay.add_argument("--container", required=True, choices=("whisks", "subjects", "all"),
                        help="which container's changes to replay (the names come from the settings)")
    start = replay.add_mutually_exclusive_group(required=True)
    start.add_argument("--since", type=_time, metavar="TIME",
                       help="replay changes made at or after this time")
    start.add_argument("--from-mark", type=argparse.FileType("r", encoding="utf-8"), metavar="FILE",
                       help="replay the all-versions-and-deletes feed, hard deletes included, from the marks `mark` "
                            "wrote (docs/DEPLOY.md, moving a region between change feed modes)")
    replay.add_argument("--until", type=_time, metavar="TIME",
                        help="leave out changes made after this time (default: up to the end of the feed)")
    replay.add_argument("--dry-run", action="store_true",
                        help="print the messages (key<TAB>value) instead of sending them; an API key's "
                             "secret is shown as ***")
    replay.add_argument("--page-size", type=_page_size, default=1000, metavar="N",
                        help="changes per page, each page delivered before the next is read (default: 1000)")
    commands.add_parser(
        "mark", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="print where the all-versions-and-deletes feeds stand now, for replay --from-mark",
        description="Reads the all-versions-and-deletes change feed of whisks and subjects from now and prints\n"
                    "each one's continuation as JSON. That feed cannot be read from a time; `replay --from-mark`\n"
                    "reads it, hard deletes included, from these marks. Take them before a region moves to\n"
                    "COSMOSDB_CHANGE_FEED_MODE=AllVersionsAndDeletes (docs/DEPLOY.md).\n\n"
                    "Exit status: 0 when both feeds were marked, 1 otherwise.")
    return parser


def main(argv: Optional[Sequence[str]] = None, *, environ: Optional[Mapping[str, str]] = None,
         stdout: Optional[TextIO] = None, stderr: Optional[TextIO] = None,
         page_source: Optional[PageSource] = None, gather=None, sampler=None, prober=None, marker=None) -> int:
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = build_parser()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code not in (0, None) else EXIT_OK
    try:
        effective = effective_settings(os.environ if environ is None else environ, args.settings)
    except SettingsFileError as exc:
        stderr.write(f"error: --settings: {exc}\n")
        return EXIT_USAGE
    env = effective.values
    source = f"{args.settings} over the environment" if args.settings else "the environment"
    if args.command == "mark":
        return _mark(env, args.timeout, stdout, stderr, marker)
    if args.command == "check":
        from .check import run_check

        try:
            # One TTL per deployment: infra/ sets the declared one on every region's app.
            min_soft_delete_ttl = args.min_soft_delete_ttl or declared_soft_delete_ttl(env) or DEFAULT_MIN_SOFT_DELETE_TTL
        except SettingsError as exc:
            stderr.write(f"error: {exc}\n")
            return EXIT_FAILED
        bounds = FeedSampleBounds(args.sample_window, args.sample_max_documents, args.sample_max_ru)
        return run_check(env, stdout, source=source, kafka=args.kafka, cosmos=args.cosmos,
                         timeout=args.timeout, gather=gather, sample=bounds if args.sample else None,
                         min_soft_delete_ttl=min_soft_delete_ttl, sampler=sampler,
                         from_environment=effective.from_environment, prober=prober)
    return _replay(args, env, stdout, stderr, page_source)


def _replay(args, env: Mapping[str, str], stdout: TextIO, stderr: TextIO, page_source: Optional[PageSource]) -> int:
    from ..producer import close_shared_producers
    from .replay import ReplaySource, run_replay

    if args.until is not None and args.since is not None and args.until < args.since:
        stderr.write("error: --until is before --since\n")
        return EXIT_USAGE
    references = key_vault_references(env)
    if references:
        # A replay reads Cosmos DB and sends to Kafka with every setting: none may be a reference.
        stderr.write("".join(f"error: {key_vault_reference_problem(name)}\n" for name in references))
        return EXIT_FAILED
    try:
        trigger = TriggerSettings.from_env(env)
        settings = Settings.from_env(env)
    except SettingsError as exc:
        stderr.write(f"error: {exc}\n(`python -m cache_invalidator check` lists every settings problem)\n")
        return EXIT_FAILED
    kinds = {"whisks": [ContainerKind.WHISKS], "subjects": [ContainerKind.SUBJECTS],
             "all": [ContainerKind.WHISKS, ContainerKind.SUBJECTS]}[args.container]
    names = {ContainerKind.WHISKS: trigger.whisks_container, ContainerKind.SUBJECTS: trigger.subjects_container}
    until_ts = None if args.until is None else math.floor(args.until.timestamp())
    # _ts counts whole seconds: a change in the second of --since is kept (at least once).
    since_ts = None if args.since is None else math.floor(args.since.timestamp())
    start = args.since
    if args.from_mark is not None:
        try:
            start = read_marks(args.from_mark, trigger, [names[k] for k in kinds])
        except ValueError as exc:
            stderr.write(f"error: --from-mark {args.from_mark.name}: {exc}\n")
            return EXIT_USAGE
    if page_source is None:
        page_source = _cosmos_page_source
    from .errors import CosmosUnavailable

    try:
        pages, close = page_source(env, trigger, [names[k] for k in kinds], start, until_ts,
                                   timeout=args.timeout, page_size=args.page_size)
    except CosmosUnavailable as exc:
        stderr.write(f"error: {exc}\n")
        return EXIT_FAILED
    except ImportError as exc:
        stderr.write(f"error: the CLI's requirements are missing ({exc.name}): pip install -r requirements-cli.txt\n")
        return EXIT_FAILED
    try:
        sources = [ReplaySource(kind, names[kind], pages[names[kind]]) for kind in kinds]
        return run_replay(settings, sources, since_ts=since_ts, until_ts=until_ts, dry_run=args.dry_run,
                          out=stdout, err=stderr)
    finally:
        close()
        close_shared_producers(timeout=5)


def _cosmos_page_source(env, trigger, names, start, until_ts, *, timeout, page_size):
    """Each container's pages from `start`: a time (the latest-version feed), or marks by container name (the
    all-versions-and-deletes feed, from `mark`)."""
    from . import cosmos

    client, containers = cosmos.open_containers(env, trigger, names, timeout=timeout)
    setting = "COSMOSDB" if (env.get("COSMOSDB") or "").strip() else "COSMOSDB__accountEndpoint"
    if isinstance(start, Mapping):
        pages = {name: cosmos.marked_pages(container, start[name], setting=setting, page_size=page_size)
                 for name, container in containers.items()}
    else:
        pages = {name: cosmos.change_feed_pages(container, start, until_ts, setting=setting, page_size=page_size)
                 for name, container in containers.items()}
    return pages, client.close


MARKS_FORMAT = "cache-invalidator marks 1"


def read_marks(stream: TextIO, trigger: TriggerSettings, names: list[str]) -> dict[str, str]:
    """The continuation of each named container from a file `mark` wrote; ValueError saying what is wrong."""
    try:
        document = json.load(stream)
    except ValueError:
        raise ValueError("not JSON; give the file `python -m cache_invalidator mark` wrote") from None
    if not isinstance(document, dict) or document.get("format") != MARKS_FORMAT:
        raise ValueError("not a file `python -m cache_invalidator mark` wrote")
    if document.get("database") != trigger.database:
        raise ValueError(f"marks of database {document.get('database')!r}, not of COSMOSDB_NAME={trigger.database!r}")
    marks = document.get("marks") if isinstance(document.get("marks"), dict) else {}
    missing = [name for name in names if not isinstance(marks.get(name), str)]
    if missing:
        raise ValueError(f"no mark for {', '.join(repr(name) for name in missing)}")
    return {name: marks[name] for name in names}


def _mark(env: Mapping[str, str], timeout: float, stdout: TextIO, stderr: TextIO, marker) -> int:
    from .errors import CosmosUnavailable

    references = [name for name in key_vault_references(env) if name.startswith("COSMOSDB")]
    if references:
        # Marks read Cosmos DB only: a reference among its settings cannot be resolved here.
        stderr.write("".join(f"error: {key_vault_reference_problem(name)}\n" for name in references))
        return EXIT_FAILED
    try:
        trigger = TriggerSettings.from_env(env)
    except SettingsError as exc:
        stderr.write(f"error: {exc}\n(`python -m cache_invalidator check` lists every settings problem)\n")
        return EXIT_FAILED
    if marker is None:
        try:
            from .cosmos import mark_all_versions_feeds as marker
        except ImportError as exc:
            stderr.write(f"error: the CLI's requirements are missing ({exc.name}): pip install -r requirements-cli.txt\n")
            return EXIT_FAILED
    marked_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        marks = marker(env, trigger, timeout=timeout)
    except CosmosUnavailable as exc:
        stderr.write(f"error: {exc}\n")
        return EXIT_FAILED
    json.dump({"format": MARKS_FORMAT, "database": trigger.database, "marked_at": marked_at, "marks": marks},
              stdout, indent=1)
    stdout.write("\n")
    return EXIT_OK
