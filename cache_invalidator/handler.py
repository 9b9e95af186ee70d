"""Ties a change batch to Kafka: settings, translation, delivery, one log line."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import UserList
from collections.abc import Mapping
from typing import Any, Optional

import orjson

from .envelope import UnwrappedBatch, unwrap
from .settings import ALL_VERSIONS_AND_DELETES, LATEST_VERSION, Settings
from .translation import ContainerKind, TranslatedBatch, translate

log = logging.getLogger("cache_invalidator")


class NotAChangeBatch(TypeError):
    """The trigger handed over something that is not a JSON array of documents.

    Raised rather than translated: iterating a text or an object would count its
    characters or keys as poison documents and succeed, losing the real batch.
    Failing makes the host hand it again, and the message says what arrived.
    """


class ChangeHandler:
    """Handles the change batches of both functions; settings are parsed on first use, then kept."""

    def __init__(self, env: Mapping[str, str], change_feed_mode: str = LATEST_VERSION):
        self._env = env
        # The triggers' mode (TriggerSettings), which the host was told when it indexed the app.
        self._change_feed_mode = change_feed_mode
        self._settings: Optional[Settings] = None
        self._lock = threading.Lock()
        self._producer = None

    def connect_early(self) -> None:
        """Parses the settings and starts the Kafka producer in the background, while the host loads the functions.

        The idempotent producer's first batch would otherwise wait for its producer
        id. A bad setting is only logged here: the first invocation raises it again,
        naming the setting, so that the functions always load and the batch is retried.
        """
        threading.Thread(target=self._connect_quietly, name="kafka-connect", daemon=True).start()

    def _connect_quietly(self) -> None:
        try:
            self.producer()
        except Exception as exc:  # raised again, by name, at the first invocation
            log.warning("Kafka producer not started while loading: %s", exc)

    @property
    def settings(self) -> Settings:
        """The parsed settings; a bad setting raises here, failing the batch so that it is retried."""
        if self._settings is None:
            with self._lock:
                if self._settings is None:
                    self._settings = Settings.from_env(self._env)
        return self._settings

    def producer(self):
        """The shared producer of these settings, kept between batches and replaced after a fatal error."""
        producer = self._producer
        if producer is None or producer.broken:
            # Imported on first use, so that loading the app does not wait for the Kafka client.
            from .producer import shared_producer

            producer = self._producer = shared_producer(self.settings.kafka)
        return producer

    def handle(self, changes: Any, kind: ContainerKind, container: str) -> None:
        """Sends the invalidations of one change batch; raises unless Kafka acknowledged all of them.

        `changes` is the host's JSON array as text (str or bytes, what the worker
        hands a `str` parameter) or already decoded (a func.DocumentList or a list).
        """
        started = time.monotonic()
        settings = self.settings
        # The documents are not kept: freeing them costs less before the wait for Kafka than after it.
        unwrapped = unwrap(change_documents(changes, container))
        report_mode_mismatch(unwrapped, self._change_feed_mode, container)
        batch = translate(unwrapped.changes, kind, **settings.translation_options())
        report_skipped(batch, container)
        outcome = "failed"
        try:
            if batch.invalidations:
                self.producer().deliver(batch.invalidations)
            outcome = "delivered"
        finally:
            _report_batch(batch, container, outcome, settings.kafka.topic, time.monotonic() - started)


def change_documents(changes: Any, container: str) -> list:
    """The documents of a change batch; raises NotAChangeBatch, never quoting the content (it may hold API keys)."""
    if isinstance(changes, (str, bytes, bytearray)):
        try:
            decoded = _parse_json(changes)
        except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
            # The reason and position only: the exception's own text is safe, its .doc is the batch.
            reason = (f"{exc.msg} at position {exc.pos}" if isinstance(exc, json.JSONDecodeError)
                      else type(exc).__name__)
            unit = "characters" if isinstance(changes, str) else "bytes"
            raise NotAChangeBatch(
                f"The {container} change batch is text that is not JSON ({len(changes)} {unit}; {reason}), "
                "not a JSON array of documents; nothing was sent"
            ) from None
        if isinstance(decoded, list):
            return decoded
        raise NotAChangeBatch(f"The {container} change batch is {_describe_json(decoded)}, not a JSON array of "
                              "documents; nothing was sent")
    if isinstance(changes, (list, UserList)):  # func.DocumentList is a UserList
        return changes
    raise NotAChangeBatch(f"The {container} change batch is a {type(changes).__name__}, not a JSON array of "
                          "documents (annotate the trigger parameter str or func.DocumentList); nothing was sent")


def _parse_json(text):
    """orjson where it can, json where orjson refuses what json reads.

    orjson parses a batch in half json's time. It refuses a lone surrogate
    escape, NaN and numbers beyond a double, which json reads; such a batch
    must still reach translation, where its bad ids are poison, not block the feed.
    """
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _describe_json(value: Any) -> str:
    if value is None:
        return "JSON null"
    if isinstance(value, dict):
        return f"a JSON object with {len(value)} key{'' if len(value) == 1 else 's'}"
    if isinstance(value, str):
        return f"a JSON string of {len(value)} characters"
    if isinstance(value, bool):
        return "a JSON boolean"
    return "a JSON number"


def report_mode_mismatch(batch: UnwrappedBatch, change_feed_mode: str, container: str) -> None:
    """Warns of elements whose shape is not the configured mode's; they were invalidated all the same."""
    elements = len(batch.changes)
    if change_feed_mode == ALL_VERSIONS_AND_DELETES and batch.envelopes < elements:
        log.warning(
            "%d of the %d element(s) of a %s change batch are plain documents while COSMOSDB_CHANGE_FEED_MODE=%s: "
            "the host reads the latest-version feed, which carries no hard delete (a Cosmos DB extension older "
            "than 4.16 ignores changeFeedMode; see docs/DEPLOY.md). They were invalidated as documents.",
            elements - batch.envelopes, elements, container, ALL_VERSIONS_AND_DELETES,
            extra={"container": container})
    elif change_feed_mode != ALL_VERSIONS_AND_DELETES and batch.envelopes:
        log.warning(
            "%d of the %d element(s) of a %s change batch are all-versions-and-deletes changes while "
            "COSMOSDB_CHANGE_FEED_MODE=%s: the host reads the other feed than the app was configured for. "
            "They were invalidated as that feed's changes.",
            batch.envelopes, elements, container, change_feed_mode, extra={"container": container})


def report_skipped(batch: TranslatedBatch, container: str) -> None:
    for poison in batch.poison:
        # Position and reason only: the document may hold an API key.
        log.error(
            "Skipped poison document at position %d of a %s change batch of %d: %s",
            poison.position, container, batch.documents, poison.reason,
            extra={"container": container, "position": poison.position},
        )
    for entry in batch.skipped_namespaces:
        log.warning(
            "Namespace entry %d of subject %r at position %d of a %s change batch yields no key: %s",
            entry.entry, entry.document_id, entry.position, container, entry.reason,
            extra={"container": container, "position": entry.position},
        )


# The batch line's fields, in the order of the values _report_batch logs.
_BATCH_FIELDS = ("container", "outcome", "documents", "messages_sent", "skipped_own_cluster", "poison",
                 "lag_seconds", "duration_ms", "topic")
_BATCH_LINE = "Change batch " + " ".join(f"{name}=%s" for name in _BATCH_FIELDS)


def _report_batch(batch: TranslatedBatch, container: str, outcome: str, topic: str, seconds: float) -> None:
    lag = None if batch.newest_timestamp is None else max(0.0, time.time() - batch.newest_timestamp)
    values = (
        container,
        outcome,
        batch.documents,
        len(batch.invalidations) if outcome == "delivered" else 0,
        batch.own_cluster,
        len(batch.poison),
        None if lag is None else round(lag, 3),
        round(seconds * 1000, 1),
        topic,
    )
    # The fields go both into the text, for the host's own log stream, and
    # into the record, where an OpenTelemetry exporter makes them custom dimensions.
    log.log(logging.INFO if outcome == "delivered" else logging.WARNING, _BATCH_LINE, *values,
            extra=dict(zip(_BATCH_FIELDS, values)))
