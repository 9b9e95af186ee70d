"""The one seam to Kafka: deliver a batch of invalidations, or raise.

One confluent-kafka producer per process and configuration, shared by both
functions. The Functions worker runs synchronous functions side by side in a
thread pool; confluent-kafka's Producer is thread-safe, and each invocation
waits for the delivery reports of its own messages only (a `flush()` would
also wait for the other function's).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Optional

import confluent_kafka
from confluent_kafka import KafkaError, KafkaException

from .settings import InvalidSetting, KafkaSettings
from .translation import Invalidation

_client_log = logging.getLogger("cache_invalidator.kafka")
# How long one poll of the background thread blocks; it returns at once when a
# delivery report arrives, so this only bounds how fast close() is noticed.
_POLL_SECONDS = 0.2
# While the local queue is full, produce() is retried this often.
_QUEUE_FULL_BACKOFF_SECONDS = 0.005


_SPECIFIC_CLIENT_ERRORS = (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError._SSL)
_GENERIC_CLIENT_ERRORS = (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT)


class DeliveryError(RuntimeError):
    """Kafka did not acknowledge every invalidation of a batch in time; the batch must be handed again."""


class _BatchReceipts:
    """Counts the delivery reports of one batch's messages."""

    def __init__(self, expected: int):
        self._lock = threading.Lock()
        self._pending = expected
        self.failed = 0
        self.error: Optional[KafkaError] = None
        self.all_reported = threading.Event()
        if expected == 0:
            self.all_reported.set()

    def on_delivery(self, error: Optional[KafkaError], _message) -> None:
        with self._lock:
            self._pending -= 1
            if error is not None:
                self.failed += 1
                self.error = error
            if self._pending == 0:
                self.all_reported.set()

    def never_sent(self, count: int, error: KafkaError) -> None:
        with self._lock:
            self._pending -= count
            self.failed += count
            self.error = error
            if self._pending == 0:
                self.all_reported.set()


class InvalidationProducer:
    """A shared Kafka producer that delivers batches at least once, each within a deadline."""

    def __init__(self, settings: KafkaSettings):
        self.settings = settings
        self._last_error: Optional[KafkaError] = None
        self._last_error_at = 0.0
        config = settings.producer_config()
        config["error_cb"] = self._on_client_error
        # librdkafka's own log lines go to Python logging, served by poll(), not to stderr.
        config["logger"] = _client_log
        try:
            self._producer = confluent_kafka.Producer(config)
        except KafkaException as exc:
            raise self._invalid_property(exc) from None
        self._closed = threading.Event()
        self._poller = threading.Thread(target=self._serve_delivery_reports, name="kafka-delivery-reports", daemon=True)
        self._poller.start()

    @property
    def broken(self) -> bool:
        """True after a fatal error, which leaves an idempotent producer unusable."""
        error = self._last_error
        return error is not None and error.fatal()

    def deliver(self, invalidations: Sequence[Invalidation]) -> None:
        """Returns once Kafka acknowledged every invalidation; raises DeliveryError otherwise, within the deadline."""
        started = time.monotonic()
        deadline = started + self.settings.delivery_timeout_seconds
        topic = self.settings.topic
        receipts = _BatchReceipts(len(invalidations))
        for index, invalidation in enumerate(invalidations):
            error = self._produce(topic, invalidation, receipts, deadline)
            if error is not None:
                receipts.never_sent(len(invalidations) - index, error)
                break
        receipts.all_reported.wait(max(0.0, deadline - time.monotonic()))
        if receipts.all_reported.is_set() and receipts.failed == 0:
            return
        raise DeliveryError(self._describe_failure(receipts, len(invalidations), started))

    def close(self, timeout: float = 5.0) -> None:
        """Delivers what is queued within the timeout, drops the rest, and releases the client."""
        self._producer.flush(timeout)
        self._closed.set()
        self._poller.join()
        self._producer.purge()
        self._producer.close()

    def _produce(self, topic: str, invalidation: Invalidation, receipts: _BatchReceipts, deadline: float) -> Optional[KafkaError]:
        while True:
            try:
                self._producer.produce(topic, invalidation.value, invalidation.key, on_delivery=receipts.on_delivery)
                return None
            except BufferError:
                # The local queue is full of unacknowledged messages: wait for room.
                if time.monotonic() >= deadline:
                    return KafkaError(KafkaError._QUEUE_FULL, "the local producer queue stayed full until the deadline")
                time.sleep(_QUEUE_FULL_BACKOFF_SECONDS)
            except KafkaException as exc:
                return exc.args[0]

    def _serve_delivery_reports(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(_POLL_SECONDS)

    def _on_client_error(self, error: KafkaError) -> None:
        now = time.monotonic()
        previous = self._last_error
        # librdkafka follows an authentication or TLS failure with a generic
        # "all brokers down"; keep the error that says what to fix.
        if (
            previous is not None
            and previous.code() in _SPECIFIC_CLIENT_ERRORS
            and error.code() in _GENERIC_CLIENT_ERRORS
            and now - self._last_error_at < self.settings.delivery_timeout_seconds
        ):
            return
        self._last_error = error
        self._last_error_at = now

    def _describe_failure(self, receipts: _BatchReceipts, total: int, started: float) -> str:
        error = receipts.error
        client_error = ""
        if (error is None or error.code() == KafkaError._MSG_TIMED_OUT) and self._last_error is not None:
            # A timeout says little; the client's latest error says why.
            error = self._last_error
            client_error = f" (client error {time.monotonic() - self._last_error_at:.0f} s ago)"
        if receipts.all_reported.is_set():
            what = f"{receipts.failed} of {total} invalidations failed"
        else:
            what = f"{total} invalidations were not all acknowledged within {self.settings.delivery_timeout_seconds:g} s"
        reason = self._scrub(error.str()) if error is not None else "no acknowledgement"
        code = f"{error.name()}: " if error is not None else ""
        hint = setting_hint(error, self.settings)
        return f"{what} on Kafka topic {self.settings.topic!r}: {code}{reason}{client_error}{hint}; the batch will be retried"

    def _invalid_property(self, exc: KafkaException) -> InvalidSetting:
        text = self._scrub(str(exc.args[0].str() if exc.args else exc))
        prop = text.split('"')[-2] if text.count('"') >= 2 else ""
        setting = self.settings.setting_of(prop) if prop else "KAFKA_PRODUCER_*"
        return InvalidSetting(setting, f"rejected by the Kafka client: {text}")

    def _scrub(self, text: str) -> str:
        for secret in self.settings.secrets():
            text = text.replace(secret, "***")
        return text


def setting_hint(error: Optional[KafkaError], settings: KafkaSettings) -> str:
    """Names the setting an operator should check for a Kafka error."""
    if error is None:
        return f" (check KAFKA_HOSTS={settings.hosts})"
    code = error.code()
    if code in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION):
        return " (the topic does not exist: create it, or correct KAFKA_TOPIC)"
    if code in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED):
        return " (check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM)"
    if code in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED):
        return " (the KAFKA_SASL_USERNAME user may not write to the topic)"
    if code == KafkaError._SSL:
        return " (check KAFKA_SSL_CA_LOCATION and KAFKA_SECURITY_PROTOCOL)"
    return f" (check KAFKA_HOSTS={settings.hosts} and KAFKA_SECURITY_PROTOCOL)"


_producers: dict[KafkaSettings, InvalidationProducer] = {}
_producers_lock = threading.Lock()


def shared_producer(settings: KafkaSettings) -> InvalidationProducer:
    """The process's producer for these settings, created on first use and replaced after a fatal error."""
    with _producers_lock:
        producer = _producers.get(settings)
        if producer is not None and producer.broken:
            producer.close(0)
            producer = None
        if producer is None:
            producer = _producers[settings] = InvalidationProducer(settings)
        return producer


def close_shared_producers(timeout: float = 5.0) -> None:
    """Closes every shared producer; for tests and orderly shutdown."""
    with _producers_lock:
        producers = list(_producers.values())
        _producers.clear()
    for producer in producers:
        producer.close(timeout)
