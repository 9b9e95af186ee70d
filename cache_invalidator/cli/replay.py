"""`replay`: sends the invalidations of a window of changes again, page by page, as the app does.

The core takes any iterable of pages (lists of documents), so that it runs
against a real Kafka without Cosmos DB; cosmos.py turns a container's change
feed into such pages. Each page goes through the app's own translation,
filter and shared producer, and the next page is read only once Kafka
acknowledged every message of this one: at least once, like the triggers.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any, Optional, TextIO

from tqdm import tqdm

from ..envelope import is_envelope, unwrap
from ..handler import report_skipped
from ..producer import DeliveryError, shared_producer
from ..settings import Settings
from ..translation import ContainerKind, Invalidation, translate
from .errors import CosmosUnavailable


def parse_time(text: str) -> datetime:
    """An ISO 8601 time, UTC when it has no offset (argparse type)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time such as 2024-05-01T12:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def timestamp_of(document: Any) -> Optional[int]:
    """The document's _ts (seconds since the epoch), or an all-versions-and-deletes change's metadata.crts in whole
    seconds; None when it has none."""
    if is_envelope(document):
        crts = document["metadata"].get("crts") if isinstance(document["metadata"], dict) else None
        return int(crts) if isinstance(crts, (int, float)) and not isinstance(crts, bool) and crts >= 0 else None
    if isinstance(document, dict):
        ts = document.get("_ts")
        if type(ts) is int:
            return ts
    return None


def after_until(document: Any, until_ts: Optional[int]) -> bool:
    ts = timestamp_of(document)
    return until_ts is not None and ts is not None and ts > until_ts


def before_since(document: Any, since_ts: Optional[int]) -> bool:
    """Changed before since_ts, by _ts.

    The change feed's start time is the server's to honour: the emulator
    ignores it and hands every change from the beginning. Bounding the
    window by _ts as well makes a replay exact either way. A document
    without _ts is kept: at least once.
    """
    ts = timestamp_of(document)
    return since_ts is not None and ts is not None and ts < since_ts


def stop_after_until(pages: Iterable[list], until_ts: Optional[int]) -> Iterator[list]:
    """The pages of one feed range up to the first that holds a change after until_ts.

    A feed range lists its changes in the order they were made, so the pages
    after that one hold later changes only; reading them would be wasted.
    """
    for page in pages:
        if not page:
            continue
        yield page
        if any(after_until(document, until_ts) for document in page):
            return


@dataclasses.dataclass
class ReplaySummary:
    container: str
    pages: int = 0
    documents: int = 0
    before_since: int = 0
    after_until: int = 0
    messages: int = 0
    own_cluster: int = 0
    poison: int = 0
    skipped_namespaces: int = 0

    def describe(self, dry_run: bool, topic: str) -> str:
        done = "printed (dry run, not sent)" if dry_run else f"sent to {topic!r}"
        text = f"{self.container}: {self.documents} documents read in {self.pages} pages, {self.messages} messages {done}"
        details = []
        if self.before_since:
            details.append(f"{self.before_since} changed before --since left out")
        if self.after_until:
            details.append(f"{self.after_until} changed after --until left out")
        if self.own_cluster:
            details.append(f"{self.own_cluster} of this cluster skipped")
        if self.poison:
            details.append(f"{self.poison} poison documents skipped")
        if self.skipped_namespaces:
            details.append(f"{self.skipped_namespaces} namespace entries without a key")
        return text + (f" ({'; '.join(details)})" if details else "")


@dataclasses.dataclass(frozen=True)
class ReplaySource:
    """The pages of one container's changes, and what the container is."""

    kind: ContainerKind
    container: str
    pages: Iterable[list]


def replay_pages(pages: Iterable[Sequence[Any]], kind: ContainerKind, container: str, settings: Settings, *,
                 since_ts: Optional[int] = None, until_ts: Optional[int] = None, dry_run: bool = False,
                 out: Optional[TextIO] = None,
                 progress: Optional[tqdm] = None, summary: Optional[ReplaySummary] = None) -> ReplaySummary:
    """Sends (or, dry, prints to out) each page's invalidations; raises DeliveryError when Kafka did not take a page."""
    summary = summary if summary is not None else ReplaySummary(container)
    for page in pages:
        early = [document for document in page if before_since(document, since_ts)]
        late = [document for document in page if after_until(document, until_ts)]
        documents = [document for document in page
                     if not before_since(document, since_ts) and not after_until(document, until_ts)]
        summary.pages += 1
        summary.documents += len(page)
        summary.before_since += len(early)
        summary.after_until += len(late)
        # Pages read from a mark are the all-versions-and-deletes feed's: unwrapped as the triggers unwrap them.
        batch = translate(unwrap(documents).changes, kind, **settings.translation_options())
        report_skipped(batch, container)
        if batch.invalidations:
            if dry_run:
                for invalidation in batch.invalidations:
                    out.write(format_message(invalidation) + "\n")
            else:
                shared_producer(settings.kafka).deliver(batch.invalidations)
        summary.messages += len(batch.invalidations)
        summary.own_cluster += batch.own_cluster
        summary.poison += len(batch.poison)
        summary.skipped_namespaces += len(batch.skipped_namespaces)
        if progress is not None:
            progress.set_postfix_str(f"{summary.messages} {'printed' if dry_run else 'sent'}", refresh=False)
            progress.update(len(page))
    return summary


def format_message(invalidation: Invalidation) -> str:
    """`key<TAB>value` as text; an API key's secret (secondaryId) is shown as ***."""
    value = invalidation.value.decode("utf-8")
    message = json.loads(value)
    key = message.get("key") if isinstance(message, dict) else None
    if isinstance(key, dict) and "secondaryId" in key:
        key["secondaryId"] = "***"
        value = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    return f"{invalidation.key.decode('utf-8')}\t{value}"


def run_replay(settings: Settings, sources: Iterable[ReplaySource], *, until_ts: Optional[int], dry_run: bool,
               out: TextIO, err: TextIO, since_ts: Optional[int] = None) -> int:
    """Replays every source in turn, shows progress on a terminal and a summary at the end; 0, or 1 on failure."""
    summaries: list[ReplaySummary] = []
    failure: Optional[str] = None
    for source in sources:
        summary = ReplaySummary(source.container)
        summaries.append(summary)
        bar = tqdm(desc=source.container, unit=" docs", file=err, disable=not _is_terminal(err), leave=True)
        try:
            with logging_to(err):
                replay_pages(source.pages, source.kind, source.container, settings, since_ts=since_ts,
                             until_ts=until_ts, dry_run=dry_run, out=out, progress=bar, summary=summary)
        except DeliveryError as exc:
            failure = (
                f"replay of {source.container!r} stopped: Kafka did not acknowledge a page: {exc}.\n"
                f"Pages sent before it stay sent; invalidations are idempotent, so run the same command again."
            )
        except CosmosUnavailable as exc:
            failure = f"replay of {source.container!r} stopped: reading Cosmos DB failed: {exc}"
        except KeyboardInterrupt:
            failure = (f"replay of {source.container!r} interrupted; pages sent before stay sent: "
                       f"run the same command again to finish")
        finally:
            bar.close()
        if failure is not None:
            break
    err.write(("Replay summary" + (" (dry run)" if dry_run else "")) + ":\n")
    for summary in summaries:
        err.write(f"  {summary.describe(dry_run, settings.kafka.topic)}\n")
    if len(summaries) > 1:
        err.write(f"  total: {sum(s.documents for s in summaries)} documents read, "
                  f"{sum(s.messages for s in summaries)} messages {'printed' if dry_run else 'sent'}\n")
    if failure is not None:
        err.write(f"error: {failure}\n")
        return 1
    return 0


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _TqdmHandler(logging.Handler):
    """Log lines above the progress bar instead of through it."""

    def __init__(self, stream: TextIO):
        super().__init__(logging.WARNING)
        self.stream = stream
        self.setFormatter(logging.Formatter("%(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - logging must not stop a replay
            self.handleError(record)


class logging_to:
    """Routes the app's warnings (poison documents, unusable namespace entries) to err while replaying."""

    def __init__(self, stream: TextIO):
        self._handler = _TqdmHandler(stream)
        self._logger = logging.getLogger("cache_invalidator")

    def __enter__(self):
        self._logger.addHandler(self._handler)
        self._saved_level = self._logger.level
        if self._logger.getEffectiveLevel() > logging.WARNING:
            self._logger.setLevel(logging.WARNING)
        return self

    def __exit__(self, *exc):
        self._logger.removeHandler(self._handler)
        self._logger.setLevel(self._saved_level)
        return False
