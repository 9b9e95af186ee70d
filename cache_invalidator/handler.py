"""Ties a change batch to Kafka: settings, translation, delivery, one log line."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, Optional

from .producer import shared_producer
from .settings import Settings
from .translation import ContainerKind, TranslatedBatch, translate

log = logging.getLogger("cache_invalidator")


class ChangeHandler:
    """Handles the change batches of both functions; settings are parsed on first use, then kept."""

    def __init__(self, env: Mapping[str, str]):
        self._env = env
        self._settings: Optional[Settings] = None
        self._lock = threading.Lock()

    @property
    def settings(self) -> Settings:
        """The parsed settings; a bad setting raises here, failing the batch so that it is retried."""
        if self._settings is None:
            with self._lock:
                if self._settings is None:
                    self._settings = Settings.from_env(self._env)
        return self._settings

    def handle(self, changes: Iterable[Any], kind: ContainerKind, container: str) -> None:
        """Sends the invalidations of one change batch; raises unless Kafka acknowledged all of them."""
        started = time.monotonic()
        settings = self.settings
        batch = translate(changes, kind, **settings.translation_options())
        report_skipped(batch, container)
        outcome = "failed"
        try:
            if batch.invalidations:
                shared_producer(settings.kafka).deliver(batch.invalidations)
            outcome = "delivered"
        finally:
            _report_batch(batch, container, outcome, settings.kafka.topic, time.monotonic() - started)


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


def _report_batch(batch: TranslatedBatch, container: str, outcome: str, topic: str, seconds: float) -> None:
    lag = None if batch.newest_timestamp is None else max(0.0, time.time() - batch.newest_timestamp)
    fields = {
        "container": container,
        "outcome": outcome,
        "documents": batch.documents,
        "messages_sent": len(batch.invalidations) if outcome == "delivered" else 0,
        "skipped_own_cluster": batch.own_cluster,
        "poison": len(batch.poison),
        "lag_seconds": None if lag is None else round(lag, 3),
        "duration_ms": round(seconds * 1000, 1),
        "topic": topic,
    }
    # The fields go both into the text, for the host's own log stream, and
    # into the record, where an OpenTelemetry exporter makes them custom dimensions.
    text = " ".join(f"{name}={value}" for name, value in fields.items())
    log.log(logging.INFO if outcome == "delivered" else logging.WARNING, "Change batch %s", text, extra=fields)
