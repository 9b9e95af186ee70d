"""The one seam to Kafka: deliver a batch of invalidations, or raise.

One confluent-kafka producer per process and configuration, shared by both
functions. The Functions worker runs synchronous functions side by side in a
thread pool; confluent-kafka's Producer is thread-safe.

How a batch knows that Kafka acknowledged it: a delivery report per message
would cost a Python call and a Message object each, as much as all the rest
of a batch's work, so the producer reports only failures
(delivery.report.only.error) and a batch waits until the producer's queue has
drained (flush). That queue also holds the messages of batches produced beside
it, so a batch may wait for those too; to keep every drain finite, a batch
that arrives while a flush runs joins the queue when that flush ends
(_QueueDrain). Events (delivery reports, errors, librdkafka's log lines) are
served by those flushes.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections.abc import Sequence
from typing import Optional

import confluent_kafka
from confluent_kafka import KafkaError, KafkaException

from .settings import SASL_MECHANISM_FEATURES, InvalidSetting, KafkaSettings
from .translation import Invalidation

_client_log = logging.getLogger("cache_invalidator.kafka")
# While the local queue is full, the producer serves its events this long before trying again.
_QUEUE_FULL_POLL_SECONDS = 0.005


_SPECIFIC_CLIENT_ERRORS = (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError._SSL)
_GENERIC_CLIENT_ERRORS = (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT)


class DeliveryError(RuntimeError):
    """Kafka did not acknowledge every invalidation of a batch in time; the batch must be handed again."""


class _BatchFailures:
    """The delivery reports of one batch's messages, which name failures only."""

    __slots__ = ("errors",)

    def __init__(self):
        self.errors: list[KafkaError] = []

    def __call__(self, error: Optional[KafkaError], _message) -> None:
        # list.append is atomic: any thread serving the producer's events may report.
        self.errors.append(error)


class _QueueDrain:
    """Drains the producer's queue for every batch that waits on it, one flush at a time.

    One thread flushes while the others wait for its outcome: librdkafka hands
    each event to one poller only, so two threads flushing at once would each
    sleep through the other's events. Batches arriving meanwhile are held back
    until the running flush ends, so that every flush ends.
    """

    def __init__(self, flush):
        self._flush = flush
        self._changed = threading.Condition(threading.Lock())
        self._flushing = False
        self._flushes = 0  # flushes ended so far
        self._emptied = 0  # the number of the last flush that left the queue empty

    def admit(self, timeout: float) -> bool:
        """Waits until the flush running now, if any, has ended; False if that took longer than the timeout.

        Waiting for that flush's end, not for a moment when none runs, lets every
        waiting batch in at once, before any one of them can start the next flush.
        Each thread adds one batch per flush at most, so a flush still ends.
        """
        with self._changed:
            if not self._flushing:
                return True
            running = self._flushes
            return self._changed.wait_for(lambda: self._flushes != running, timeout)

    def wait_empty(self, deadline: float) -> bool:
        """True once the queue has been empty since the caller's messages joined it; False at the deadline."""
        with self._changed:
            since = self._flushes
            while self._flushing:
                # The running flush covers messages queued before it ends, the caller's among them.
                self._changed.wait(max(0.0, deadline - time.monotonic()))
                if self._emptied > since:
                    return True
                if time.monotonic() >= deadline:
                    return False
            self._flushing = True
        left = None
        try:
            left = self._flush(max(0.0, deadline - time.monotonic()))
        finally:
            with self._changed:
                self._flushing = False
                self._flushes += 1
                if left == 0:
                    self._emptied = self._flushes
                self._changed.notify_all()
        return left == 0


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
            raise client_rejection(settings, exc) from None
        self._drain = _QueueDrain(self._producer.flush)

    @property
    def broken(self) -> bool:
        """True after a fatal error, which leaves an idempotent producer unusable."""
        error = self._last_error
        return error is not None and error.fatal()

    def deliver(self, invalidations: Sequence[Invalidation]) -> None:
        """Returns once Kafka acknowledged every invalidation; raises DeliveryError otherwise, within the deadline."""
        deadline = time.monotonic() + self.settings.delivery_timeout_seconds
        total = len(invalidations)
        if not self._drain.admit(self.settings.delivery_timeout_seconds):
            raise DeliveryError(self._describe_failure(
                f"{total} invalidations could not be queued within {self.settings.delivery_timeout_seconds:g} s "
                "while earlier batches were still being acknowledged", None))
        failures = _BatchFailures()
        produce, topic = self._producer.produce, self.settings.topic
        queued = 0
        error: Optional[KafkaError] = None
        try:
            for key, value in invalidations:
                produce(topic, value, key, on_delivery=failures)
                queued += 1
        except (BufferError, KafkaException):
            queued, error = self._produce_rest(invalidations, queued, failures, deadline)
        if error is not None:
            raise DeliveryError(self._describe_failure(f"{total - queued} of {total} invalidations could not be queued", error))
        drained = self._drain.wait_empty(deadline)
        if failures.errors:
            raise DeliveryError(self._describe_failure(f"{len(failures.errors)} of {total} invalidations failed",
                                                       failures.errors[-1]))
        if not drained:
            raise DeliveryError(self._describe_failure(
                f"{total} invalidations were not all acknowledged within {self.settings.delivery_timeout_seconds:g} s",
                None))

    def _produce_rest(self, invalidations: Sequence[Invalidation], queued: int, failures: _BatchFailures,
                      deadline: float) -> tuple[int, Optional[KafkaError]]:
        """Queues the invalidations from `queued` on, waiting while the local queue is full.

        Returns how many are queued in all, and the error that stopped it, if any."""
        for key, value in invalidations[queued:]:
            while True:
                try:
                    self._producer.produce(self.settings.topic, value, key, on_delivery=failures)
                    break
                except BufferError:
                    # The local queue is full of unacknowledged messages: serve its events to make room.
                    if time.monotonic() >= deadline:
                        return queued, KafkaError(KafkaError._QUEUE_FULL,
                                                  "the local producer queue stayed full until the deadline")
                    self._producer.poll(_QUEUE_FULL_POLL_SECONDS)
                except KafkaException as exc:
                    return queued, exc.args[0]
            queued += 1
        return queued, None

    def close(self, timeout: float = 5.0) -> None:
        """Delivers what is queued within the timeout, drops the rest, and releases the client."""
        self._producer.flush(timeout)
        self._producer.purge()
        self._producer.close()

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

    def _describe_failure(self, what: str, error: Optional[KafkaError]) -> str:
        client_error = ""
        if (error is None or error.code() == KafkaError._MSG_TIMED_OUT) and self._last_error is not None:
            # A timeout says little; the client's latest error says why.
            error = self._last_error
            client_error = f" (client error {time.monotonic() - self._last_error_at:.0f} s ago)"
        reason = scrub(error.str(), self.settings) if error is not None else "no acknowledgement"
        code = f"{error.name()}: " if error is not None else ""
        hint = setting_hint(error, self.settings)
        return f"{what} on Kafka topic {self.settings.topic!r}: {code}{reason}{client_error}{hint}; the batch will be retried"


def scrub(text: str, settings: KafkaSettings) -> str:
    """The text with every secret of the settings replaced by ***."""
    for secret in settings.secrets():
        text = text.replace(secret, "***")
    return text


def client_rejection(settings: KafkaSettings, exc: KafkaException) -> InvalidSetting:
    """The error of a configuration the Kafka client refused, naming the setting behind it (the app and `check`)."""
    error = exc.args[0] if exc.args else None
    text = scrub(error.str() if isinstance(error, KafkaError) else str(exc), settings)
    # librdkafka quotes the property it refuses last: `Invalid value "x" for configuration property "linger.ms"`.
    # Otherwise it may name properties in passing ("ssl.ca.location failed: ..."): the operator's among them.
    prop = text.split('"')[-2] if text.count('"') >= 2 else ""
    named = [setting for name, setting in settings.operator_properties()
             if re.search(rf"(?<![\w.]){re.escape(name)}(?![\w.])", text)]
    setting = settings.setting_of(prop) if prop or not named else " or ".join(named)
    if prop == "builtin.features" and settings.sasl_mechanism:
        return InvalidSetting(setting, f"{settings.sasl_mechanism} is not built into the Kafka client "
                                       f"({client_version()}: {text}); it is built with "
                                       f"{', '.join(built_in_sasl_mechanisms())}")
    return InvalidSetting(setting, f"rejected by the Kafka client: {text}")


def client_version() -> str:
    # libversion() is librdkafka's (version, number); version() is the package's, a string or a pair by release.
    package = confluent_kafka.version()
    package = package[0] if isinstance(package, tuple) else package
    return f"confluent-kafka {package}, librdkafka {confluent_kafka.libversion()[0]}"


@functools.cache
def built_in_sasl_mechanisms() -> tuple[str, ...]:
    """The SASL mechanisms this build of the Kafka client can do, asked of the client itself.

    librdkafka's `builtin.features` may be set to the features an application
    needs, and a client whose build lacks one is refused (CONFIGURATION.md);
    so each mechanism's feature is asked for in turn, by a client that never
    connects anywhere. The answer is the build's, not a list kept here.
    """
    quiet = logging.getLogger("cache_invalidator.kafka.features")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    built = []
    for mechanism, feature in SASL_MECHANISM_FEATURES.items():
        try:
            # No bootstrap.servers: the client is made and closed without a connection.
            client = confluent_kafka.Producer({"builtin.features": feature, "logger": quiet})
        except KafkaException as exc:
            # "Unsupported value" is a feature librdkafka knows and this build lacks; any other refusal
            # (an "Invalid value", a name it does not know) is a mistake here, not an answer.
            if "Unsupported value" not in str(exc):
                raise
            continue
        client.close()
        built.append(mechanism)
    return tuple(built)


def setting_hint(error: Optional[KafkaError], settings: KafkaSettings) -> str:
    """Names the setting an operator should check for a Kafka error."""
    if error is None:
        return f" (check KAFKA_HOSTS={settings.hosts})"
    code = error.code()
    if code in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION):
        return " (the topic does not exist: create it, or correct KAFKA_TOPIC)"
    if code in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED):
        return " (check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM)"
    if code == KafkaError.TOPIC_AUTHORIZATION_FAILED:
        return " (the KAFKA_SASL_USERNAME user may not write to the topic: grant it Write on KAFKA_TOPIC)"
    if code == KafkaError.CLUSTER_AUTHORIZATION_FAILED:
        # The producer is idempotent, so it first asks for a producer id. Brokers
        # before Kafka 2.8 grant that only with the IdempotentWrite ACL on the
        # cluster (later ones with Write on a topic), and OpenWhisk's ansible deploys 2.7.
        return (
            " (the broker refused the idempotent producer's id: on Kafka before 2.8, as OpenWhisk's ansible "
            "deploys, the KAFKA_SASL_USERNAME user needs the IdempotentWrite ACL on the cluster, e.g. kafka-acls "
            "--add --allow-principal User:<user> --operation IdempotentWrite --cluster; idempotence cannot be "
            "turned off, it keeps a retried batch in order)"
        )
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
