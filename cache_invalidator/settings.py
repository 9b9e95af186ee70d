"""App settings, parsed once into frozen objects whose errors name the setting.

Two groups are read at two moments:
- `TriggerSettings` when the Functions host indexes the app, because container
  names, lease prefixes and feed options must appear literally in the
  function metadata;
- `Settings` on the first invocation, so that a bad Kafka setting fails the
  batch (which is then retried) instead of hiding the functions.

The lease watch's schedule is read at indexing too (`watch_schedule`), for the
same reason; its other settings (`WatchSettings`) on its first run, so that a
bad one is a logged finding of the watch and never stops the triggers.

Every setting is documented in README.md and local.settings.json.example.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Optional

DEFAULT_WHISKS_CONTAINER = "whisks"
DEFAULT_SUBJECTS_CONTAINER = "subjects"
DEFAULT_LEASE_CONTAINER = "cache-invalidator-lease"
DEFAULT_TOPIC = "cacheInvalidation"
DEFAULT_INSTANCE_ID = "cache-invalidator"
DEFAULT_DELIVERY_TIMEOUT_SECONDS = 30.0
# host.json sets functionTimeout to 2 minutes. The deadline must leave the
# invocation time to raise and log before the host abandons it.
MAX_DELIVERY_TIMEOUT_SECONDS = 100.0
# The Cosmos DB extension polls each lease this often when the feed is idle.
# It bounds how stale another region's cache can get, so it stays well below
# the extension's own default of 5 s.
DEFAULT_FEED_POLL_DELAY_MS = 1000
# Large enough that a bulk import crosses in few batches, small enough that one
# batch is delivered well within the delivery deadline.
DEFAULT_MAX_ITEMS_PER_INVOCATION = 1000
# The trigger's changeFeedMode (the Cosmos DB extension's CosmosDBTriggerChangeFeedMode). Only the
# all-versions-and-deletes feed carries hard deletes, OpenWhisk's default way of deleting.
LATEST_VERSION = "LatestVersion"
ALL_VERSIONS_AND_DELETES = "AllVersionsAndDeletes"
CHANGE_FEED_MODES = (LATEST_VERSION, ALL_VERSIONS_AND_DELETES)
# A lease document records its mode, and the change feed processor refuses to read a prefix's
# leases in another mode: the all-versions-and-deletes leases live under prefixes of their own.
ALL_VERSIONS_LEASE_SUFFIX = "-avad"

# The lease watch (lease_watch.py). Every minute: a region that stopped is seen within
# a minute or two of its leases expiring.
DEFAULT_WATCH_SCHEDULE = "0 */1 * * * *"
# The extension's processor renews a lease every 17 s and another instance takes one
# not renewed for 60 s. Twice that is a lease nobody took over: no instance is alive.
DEFAULT_WATCH_STALE_SECONDS = 120
# A change this old not yet handed to a region's function: that region is behind,
# even if its leases are renewed (a function failing every batch, retried forever).
DEFAULT_WATCH_PENDING_SECONDS = 300
# One run's whole time budget: the watch shares the worker with the triggers.
DEFAULT_WATCH_TIMEOUT_SECONDS = 20.0
# A run that hits the budget ends a little after it (its last request times out then): well below host.json's
# functionTimeout of 2 minutes.
MAX_WATCH_TIMEOUT_SECONDS = 60.0

PRODUCER_PREFIX = "KAFKA_PRODUCER_"
# Properties this app owns: at-least-once delivery depends on them.
MANAGED_PRODUCER_PROPERTIES = {
    "bootstrap.servers": "KAFKA_HOSTS",
    "acks": "always all",
    "request.required.acks": "always all",
    "enable.idempotence": "always true",
    "message.timeout.ms": "KAFKA_DELIVERY_TIMEOUT_SECONDS",
    "delivery.timeout.ms": "KAFKA_DELIVERY_TIMEOUT_SECONDS",
    "delivery.report.only.error": "always true",
    "security.protocol": "KAFKA_SECURITY_PROTOCOL",
    "sasl.mechanism": "KAFKA_SASL_MECHANISM",
    "sasl.mechanisms": "KAFKA_SASL_MECHANISM",
    "sasl.username": "KAFKA_SASL_USERNAME",
    "sasl.password": "KAFKA_SASL_PASSWORD",
    "ssl.ca.location": "KAFKA_SSL_CA_LOCATION",
    # Required by KAFKA_SASL_MECHANISM, so that a client built without the mechanism refuses to start.
    "builtin.features": "KAFKA_SASL_MECHANISM",
}
# librdkafka properties whose values are credentials (sasl.oauthbearer.client.secret,
# ssl.key.password, ssl.key.pem, sasl.jaas.config ...).
SECRET_PROPERTY_WORDS = ("password", "secret", "key", "token", "jaas", "credential", "pem")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")
# librdkafka's SASL mechanisms, each with the feature of its build (`builtin.features`) it needs. Which of
# them the Kafka client at hand is built with is asked of the client itself (producer.py): the wheels of
# confluent-kafka, which the app ships, are built without Kerberos, so without GSSAPI.
SASL_MECHANISM_FEATURES = {
    "PLAIN": "sasl_plain",
    "SCRAM-SHA-256": "sasl_scram",
    "SCRAM-SHA-512": "sasl_scram",
    "OAUTHBEARER": "sasl_oauthbearer",
    "GSSAPI": "sasl_gssapi",
}

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names it."""

    def __init__(self, setting: str, problem: str):
        super().__init__(f"setting {setting}: {problem}")
        self.setting = setting


class MissingSetting(SettingsError):
    """A required setting is not set."""

    def __init__(self, setting: str, hint: str):
        super().__init__(setting, f"is required but not set ({hint})")


class InvalidSetting(SettingsError):
    """A setting is set to a value this app cannot use."""


class Secret:
    """A value that never shows itself in a repr, str or log line."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _text(env: Mapping[str, str], name: str) -> Optional[str]:
    """The setting's value with surrounding blanks removed, None when unset or blank."""
    value = env.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = _text(env, name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise InvalidSetting(name, f"expected true or false, got {value!r}")


def _integer(env: Mapping[str, str], name: str, default: Optional[int], minimum: int) -> Optional[int]:
    value = _text(env, name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise InvalidSetting(name, f"expected a whole number, got {value!r}") from None
    if number < minimum:
        raise InvalidSetting(name, f"must be at least {minimum}, got {number}")
    return number


def _seconds(env: Mapping[str, str], name: str, default: float, maximum: float) -> float:
    """A number of seconds from 1 to `maximum`: a bound that must stay below host.json's functionTimeout."""
    text = _text(env, name)
    if text is None:
        return default
    try:
        seconds = float(text)
    except ValueError:
        raise InvalidSetting(name, f"expected a number of seconds, got {text!r}") from None
    if not 1 <= seconds <= maximum:
        raise InvalidSetting(name, f"must be between 1 and {maximum:g} seconds (below host.json's functionTimeout), "
                                   f"got {text}")
    return seconds


def _container_name(env: Mapping[str, str], name: str, default: str) -> str:
    value = _text(env, name) or default
    # Cosmos DB resource names may not contain these characters.
    if any(c in value for c in "/\\#?") or len(value) > 255:
        raise InvalidSetting(name, f"{value!r} is not a valid Cosmos DB container name")
    return value


@dataclasses.dataclass(frozen=True)
class TriggerSettings:
    """What the two Cosmos DB triggers are bound to; read when the app is indexed."""

    database: str
    whisks_container: str
    subjects_container: str
    lease_container: str
    cluster_id: Optional[str]
    create_lease_container: bool
    start_from_beginning: bool
    preferred_locations: Optional[str]
    max_items_per_invocation: int
    feed_poll_delay_ms: int
    # ISO 8601 in UTC (`2026-05-01T10:00:00Z`), or None: where a feed without a lease starts.
    start_from_time: Optional[str] = None
    change_feed_mode: str = LATEST_VERSION
    # LOCAL_RUN_NAME: a run on a developer's machine, whose leases must never be a region's.
    local_run_name: Optional[str] = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "TriggerSettings":
        database = _text(env, "COSMOSDB_NAME")
        if database is None:
            raise MissingSetting("COSMOSDB_NAME", "the Cosmos DB database that holds whisks and subjects")
        uses_identity = _text(env, "COSMOSDB__accountEndpoint") is not None
        if not uses_identity and _text(env, "COSMOSDB") is None:
            raise MissingSetting(
                "COSMOSDB",
                "a Cosmos DB connection string, or COSMOSDB__accountEndpoint for a managed identity",
            )
        return cls(
            database=database,
            whisks_container=_container_name(env, "COSMOSDB_WHISKS_CONTAINER", DEFAULT_WHISKS_CONTAINER),
            subjects_container=_container_name(env, "COSMOSDB_SUBJECTS_CONTAINER", DEFAULT_SUBJECTS_CONTAINER),
            lease_container=_container_name(env, "COSMOSDB_LEASE_CONTAINER", DEFAULT_LEASE_CONTAINER),
            cluster_id=_cluster_id(env),
            # An Entra identity may read and write documents but not create
            # containers: the host would fail with 403 at start.
            create_lease_container=_flag(env, "COSMOSDB_CREATE_LEASE_CONTAINER", not uses_identity),
            start_from_beginning=_flag(env, "COSMOSDB_START_FROM_BEGINNING", False),
            preferred_locations=_text(env, "COSMOSDB_PREFERRED_LOCATIONS"),
            max_items_per_invocation=_integer(
                env, "COSMOSDB_MAX_ITEMS_PER_INVOCATION", DEFAULT_MAX_ITEMS_PER_INVOCATION, minimum=1
            ),
            feed_poll_delay_ms=_integer(env, "COSMOSDB_FEED_POLL_DELAY_MS", DEFAULT_FEED_POLL_DELAY_MS, minimum=100),
            start_from_time=_start_from_time(env),
            change_feed_mode=_change_feed_mode(env),
            local_run_name=_local_run_name(env),
        )

    @property
    def all_versions_and_deletes(self) -> bool:
        return self.change_feed_mode == ALL_VERSIONS_AND_DELETES

    @property
    def binding_change_feed_mode(self) -> Optional[str]:
        """The triggers' changeFeedMode: left out in the default mode, so that a latest-version app's metadata is
        what it always was (an extension older than 4.16 does not know the property)."""
        return self.change_feed_mode if self.all_versions_and_deletes else None

    def lease_prefix(self, container: str) -> str:
        """`<CLUSTER_ID>-<container>`, or `<container>`: the original service's pattern for whisks, kept for subjects.

        With AllVersionsAndDeletes, `-avad` follows: the processor refuses a prefix whose leases were written
        in the other mode, so the two modes never meet on one prefix. A local run's prefixes are of another form
        (`local_lease_prefix`).
        """
        if self.local_run_name:
            prefix = local_lease_prefix(self.local_run_name, container)
        else:
            prefix = f"{self.cluster_id}-{container}" if self.cluster_id else container
        return prefix + ALL_VERSIONS_LEASE_SUFFIX if self.all_versions_and_deletes else prefix


def _change_feed_mode(env: Mapping[str, str]) -> str:
    """COSMOSDB_CHANGE_FEED_MODE, refused beside a start option, which that feed cannot honour.

    The all-versions-and-deletes feed starts from now or from a lease's continuation only: the SDKs
    refuse a start from the beginning or from a time for it (ChangeFeedStartFrom in that mode), and
    the service keeps its history only as long as the account's continuous backup does.
    """
    value = _text(env, "COSMOSDB_CHANGE_FEED_MODE")
    if value is None:
        return LATEST_VERSION
    mode = next((mode for mode in CHANGE_FEED_MODES if mode.lower() == value.lower()), None)
    if mode is None:
        raise InvalidSetting("COSMOSDB_CHANGE_FEED_MODE", f"expected {' or '.join(CHANGE_FEED_MODES)}, got {value!r}")
    if mode == ALL_VERSIONS_AND_DELETES:
        for start, given in (("COSMOSDB_START_FROM_BEGINNING", _flag(env, "COSMOSDB_START_FROM_BEGINNING", False)),
                             ("COSMOSDB_START_FROM_TIME", _text(env, "COSMOSDB_START_FROM_TIME"))):
            if given:
                raise InvalidSetting(
                    start, f"is set together with COSMOSDB_CHANGE_FEED_MODE={ALL_VERSIONS_AND_DELETES}, whose feed "
                           f"starts only from now or from its leases; remove {start}")
    return mode


# -- a local run's leases ------------------------------------------------------------------------
# A developer's run against an account shares its lease container with the regions. With a region's prefix it
# would take a share of that region's leases and checkpoint changes its controllers then never receive. So it
# reads under `local.<name>.<container>`: no region's `<CLUSTER_ID>-<container>` or `<container>` is of that form,
# and the lease watch, which takes `<cluster>-<container>` for a region, reads none of them (a run that stopped
# is no stale region). The name has no `-`, so no part of it can read as `<cluster>-<container>`.
_LOCAL_RUN_NAME_CHARACTERS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@")


def local_lease_prefix(name: str, container: str) -> str:
    """A local run's lease prefix for a container: `local.<LOCAL_RUN_NAME>.<container>`."""
    return f"local.{name}.{container}"


def _local_run_name(env: Mapping[str, str]) -> Optional[str]:
    name = _text(env, "LOCAL_RUN_NAME")
    if name is not None and (not set(name) <= _LOCAL_RUN_NAME_CHARACTERS or len(name) > 64):
        raise InvalidSetting("LOCAL_RUN_NAME", f"{name!r} is not a local run's name: at most 64 letters, digits, "
                                               f"'_', '.' and '@'")
    return name


def _start_from_time(env: Mapping[str, str]) -> Optional[str]:
    """COSMOSDB_START_FROM_TIME as the trigger's startFromTime: ISO 8601 in UTC with a `Z`.

    A time without an offset is refused rather than guessed: the host's time
    zone is not the operator's, and a start time of local kind once kept the
    extension's processor from starting (Azure/azure-webjobs-sdk-extensions#817).
    """
    value = _text(env, "COSMOSDB_START_FROM_TIME")
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value[:-1] + "+00:00" if value[-1:] in "zZ" else value)
    except ValueError:
        raise InvalidSetting(
            "COSMOSDB_START_FROM_TIME", f"expected an ISO 8601 time such as 2026-05-01T10:00:00Z, got {value!r}"
        ) from None
    if moment.tzinfo is None:
        raise InvalidSetting(
            "COSMOSDB_START_FROM_TIME", f"{value!r} has no time zone: end it with Z (UTC) or an offset such as +02:00"
        )
    # The Cosmos DB extension's listener throws when it starts with both ("Only one of StartFromBeginning
    # or StartFromTime can be used", CosmosDBTriggerListener.InitializeBuilder): the function would read
    # no change at all. Refused here, by name, instead.
    if _flag(env, "COSMOSDB_START_FROM_BEGINNING", False):
        raise InvalidSetting(
            "COSMOSDB_START_FROM_TIME", "is set together with COSMOSDB_START_FROM_BEGINNING=true, which the Cosmos DB "
                                        "extension refuses (its trigger would not start); set only one of them"
        )
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cluster_id(env: Mapping[str, str]) -> Optional[str]:
    return _text(env, "CLUSTER_ID")


def watch_schedule(env: Mapping[str, str]) -> str:
    """The lease watch's NCRONTAB schedule (six fields, seconds first), read when the app is indexed."""
    schedule = _text(env, "LEASE_WATCH_SCHEDULE") or DEFAULT_WATCH_SCHEDULE
    fields = schedule.split()
    allowed = set("0123456789*/,-?") | set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
    if len(fields) != 6 or not all(set(field) <= allowed for field in fields):
        raise InvalidSetting(
            "LEASE_WATCH_SCHEDULE",
            f"expected an NCRONTAB expression of six fields, seconds first (e.g. {DEFAULT_WATCH_SCHEDULE!r}), "
            f"got {schedule!r}",
        )
    return " ".join(fields)


def declared_soft_delete_ttl(env: Mapping[str, str]) -> Optional[int]:
    """OpenWhisk's soft-delete TTL in seconds as the deployment declares it, None when unset.

    Not read by the functions: `check` warns of soft deletes whose ttl is shorter, and infra/ derives
    the oldest-pending-change alert from the same value.
    """
    return _integer(env, "OPENWHISK_SOFT_DELETE_TTL_SECONDS", None, minimum=1)


@dataclasses.dataclass(frozen=True)
class WatchSettings:
    """What the lease watch reads and when it judges a region stale or behind; read on its first run."""

    # Cluster ids of the regions that should have leases, so that one that never started is reported too.
    expected_regions: tuple[str, ...] = ()
    stale_seconds: int = DEFAULT_WATCH_STALE_SECONDS
    pending_seconds: int = DEFAULT_WATCH_PENDING_SECONDS
    timeout_seconds: float = DEFAULT_WATCH_TIMEOUT_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "WatchSettings":
        regions = []
        for region in (_text(env, "LEASE_WATCH_REGIONS") or "").split(","):
            region = region.strip()
            if not region:
                continue
            if any(c in region for c in "/\\#?") or any(c.isspace() for c in region):
                raise InvalidSetting("LEASE_WATCH_REGIONS", f"{region!r} is not a cluster id (a lease prefix part)")
            if region not in regions:
                regions.append(region)
        return cls(
            expected_regions=tuple(regions),
            stale_seconds=_integer(env, "LEASE_WATCH_STALE_SECONDS", DEFAULT_WATCH_STALE_SECONDS, minimum=1),
            pending_seconds=_integer(env, "LEASE_WATCH_PENDING_SECONDS", DEFAULT_WATCH_PENDING_SECONDS, minimum=1),
            timeout_seconds=_seconds(env, "LEASE_WATCH_TIMEOUT_SECONDS", DEFAULT_WATCH_TIMEOUT_SECONDS,
                                     MAX_WATCH_TIMEOUT_SECONDS),
        )


@dataclasses.dataclass(frozen=True)
class KafkaSettings:
    """Where and how invalidations are produced."""

    hosts: str
    topic: str
    delivery_timeout_seconds: float
    security_protocol: Optional[str] = None
    sasl_mechanism: Optional[str] = None
    sasl_username: Optional[str] = None
    sasl_password: Optional[Secret] = None
    ssl_ca_location: Optional[str] = None
    # librdkafka properties from KAFKA_PRODUCER_*, as (property, value, setting).
    extra_properties: tuple[tuple[str, "str | Secret", str], ...] = ()

    def producer_config(self) -> dict[str, object]:
        """librdkafka's configuration, with its own dotted keys (see its CONFIGURATION.md)."""
        config: dict[str, object] = {
            # librdkafka waits this long for a topic it cannot see before it fails
            # the topic's messages; by default 30 s, which would hide a missing
            # topic behind a plain timeout.
            "topic.metadata.propagation.max.ms": int(self.delivery_timeout_seconds * 1000 / 2),
            # Every invocation waits for its own acknowledgements, so lingering
            # (librdkafka's default is 5 ms) only adds latency to each batch;
            # messages produced while a request is in flight are batched anyway.
            "linger.ms": 0,
        }
        config.update(
            (prop, value.reveal() if isinstance(value, Secret) else value) for prop, value, _ in self.extra_properties
        )
        config.update(
            {
                "bootstrap.servers": self.hosts,
                "acks": "all",
                "enable.idempotence": True,
                "message.timeout.ms": int(self.delivery_timeout_seconds * 1000),
                # A delivery report reaches Python only for a failed message:
                # a report per acknowledged message costs as much as the rest of
                # a batch's work (see producer.py for how a batch knows it is done).
                "delivery.report.only.error": True,
            }
        )
        if self.security_protocol:
            config["security.protocol"] = self.security_protocol
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
            # librdkafka refuses a required feature its build lacks, naming it; the error then names
            # KAFKA_SASL_MECHANISM, where without it the client would fail later with no setting to blame.
            config["builtin.features"] = SASL_MECHANISM_FEATURES[self.sasl_mechanism]
        if self.sasl_username is not None:
            config["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            config["sasl.password"] = self.sasl_password.reveal()
        if self.ssl_ca_location:
            config["ssl.ca.location"] = self.ssl_ca_location
        return config

    def setting_of(self, prop: str) -> str:
        """The app setting behind a librdkafka property, to name it in errors."""
        for name, _, setting in self.extra_properties:
            if name == prop:
                return setting
        if prop in MANAGED_PRODUCER_PROPERTIES:
            return MANAGED_PRODUCER_PROPERTIES[prop]
        # librdkafka may report a property by another name (linger.ms is an alias of
        # queue.buffering.max.ms), or none: name every setting the operator set that shapes the client.
        return " or ".join(setting for _, setting in self.operator_properties()) or "KAFKA_HOSTS"

    def operator_properties(self) -> list[tuple[str, str]]:
        """(librdkafka property, setting) of each optional Kafka setting that is set: what an operator may get wrong."""
        optional = (("security.protocol", "KAFKA_SECURITY_PROTOCOL", self.security_protocol),
                    ("sasl.mechanism", "KAFKA_SASL_MECHANISM", self.sasl_mechanism),
                    ("sasl.username", "KAFKA_SASL_USERNAME", self.sasl_username),
                    ("sasl.password", "KAFKA_SASL_PASSWORD", self.sasl_password),
                    ("ssl.ca.location", "KAFKA_SSL_CA_LOCATION", self.ssl_ca_location))
        return ([(prop, setting) for prop, setting, value in optional if value is not None]
                + [(prop, setting) for prop, _, setting in self.extra_properties])

    def secrets(self) -> list[str]:
        """Every secret value, so that error texts can be scrubbed of them."""
        values = [self.sasl_password] + [value for _, value, _ in self.extra_properties]
        return [value.reveal() for value in values if isinstance(value, Secret) and value.reveal()]


@dataclasses.dataclass(frozen=True)
class Settings:
    """What an invocation needs: translation options and Kafka."""

    kafka: KafkaSettings
    instance_id: str = DEFAULT_INSTANCE_ID
    cluster_id: Optional[str] = None
    invalidate_auth_keys: bool = False

    def translation_options(self) -> dict[str, object]:
        """The keyword arguments of translation.translate that these settings decide."""
        return {
            "instance_id": self.instance_id,
            "cluster_id": self.cluster_id,
            "invalidate_auth_keys": self.invalidate_auth_keys,
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Settings":
        return cls(
            kafka=_kafka_settings(env),
            instance_id=_text(env, "INVALIDATION_INSTANCE_ID") or DEFAULT_INSTANCE_ID,
            cluster_id=_cluster_id(env),
            invalidate_auth_keys=_flag(env, "INVALIDATE_AUTH_KEYS", False),
        )


def _kafka_settings(env: Mapping[str, str]) -> KafkaSettings:
    hosts = _text(env, "KAFKA_HOSTS")
    if hosts is None:
        raise MissingSetting("KAFKA_HOSTS", "Kafka bootstrap servers, host:port[,host:port...]")
    for server in hosts.split(","):
        host, _, port = server.strip().rpartition(":")
        if not host or not port.isdigit():
            raise InvalidSetting("KAFKA_HOSTS", f"expected host:port[,host:port...], got {hosts!r}")

    timeout = _seconds(env, "KAFKA_DELIVERY_TIMEOUT_SECONDS", DEFAULT_DELIVERY_TIMEOUT_SECONDS,
                       MAX_DELIVERY_TIMEOUT_SECONDS)

    protocol = _text(env, "KAFKA_SECURITY_PROTOCOL")
    if protocol is not None:
        protocol = protocol.upper()
        if protocol not in SECURITY_PROTOCOLS:
            raise InvalidSetting("KAFKA_SECURITY_PROTOCOL", f"expected one of {', '.join(SECURITY_PROTOCOLS)}, got {protocol!r}")
    mechanism, username, password = _sasl(env, protocol)

    return KafkaSettings(
        hosts=hosts,
        topic=_topic(env),
        delivery_timeout_seconds=timeout,
        security_protocol=protocol,
        sasl_mechanism=mechanism,
        sasl_username=username,
        sasl_password=Secret(password) if password is not None else None,
        ssl_ca_location=_text(env, "KAFKA_SSL_CA_LOCATION"),
        extra_properties=_producer_properties(env),
    )


def _sasl(env: Mapping[str, str], protocol: Optional[str]) -> tuple[Optional[str], Optional[str], Optional[str]]:
    """(mechanism, username, password), each None when unset; errors name the setting to change."""
    mechanism = _text(env, "KAFKA_SASL_MECHANISM")
    if mechanism is not None:
        mechanism = mechanism.upper()
        if mechanism not in SASL_MECHANISM_FEATURES:
            raise InvalidSetting("KAFKA_SASL_MECHANISM", f"expected one of {', '.join(SASL_MECHANISM_FEATURES)}, "
                                                         f"got {mechanism!r}")
    # A password may legitimately start or end with blanks: keep it verbatim.
    password = env.get("KAFKA_SASL_PASSWORD") or None
    username = env.get("KAFKA_SASL_USERNAME") or None
    if (password is None) != (username is None):
        missing = "KAFKA_SASL_PASSWORD" if password is None else "KAFKA_SASL_USERNAME"
        raise MissingSetting(missing, "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD go together")
    for setting, value in (("KAFKA_SASL_USERNAME", username), ("KAFKA_SASL_MECHANISM", mechanism)):
        if value is not None and protocol not in SASL_PROTOCOLS:
            raise InvalidSetting("KAFKA_SECURITY_PROTOCOL", f"must be SASL_SSL or SASL_PLAINTEXT when {setting} is set")
    if protocol in SASL_PROTOCOLS and mechanism is None:
        # No default: librdkafka's own, GSSAPI, is not built into the client this app ships, and any
        # other guess would fail as an authentication error that reads like a wrong password.
        raise MissingSetting("KAFKA_SASL_MECHANISM", f"KAFKA_SECURITY_PROTOCOL={protocol} needs the mechanism the "
                                                     f"brokers expect, one of {_built_in_mechanisms()}")
    if username is None and mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        raise MissingSetting("KAFKA_SASL_USERNAME", f"KAFKA_SASL_MECHANISM={mechanism} needs KAFKA_SASL_USERNAME and "
                                                    f"KAFKA_SASL_PASSWORD")
    return mechanism, username, password


def _built_in_mechanisms() -> str:
    """The SASL mechanisms the Kafka client is built with, as the client itself says (for an error message)."""
    from .producer import built_in_sasl_mechanisms

    return ", ".join(built_in_sasl_mechanisms())


def _topic(env: Mapping[str, str]) -> str:
    topic = _text(env, "KAFKA_TOPIC") or DEFAULT_TOPIC
    if len(topic) > 249 or not all(c.isascii() and (c.isalnum() or c in "._-") for c in topic):
        raise InvalidSetting("KAFKA_TOPIC", f"{topic!r} is not a valid Kafka topic name")
    return topic


def _producer_properties(env: Mapping[str, str]) -> tuple[tuple[str, str, str], ...]:
    properties = []
    for setting in sorted(env):
        if not setting.startswith(PRODUCER_PREFIX) or setting == PRODUCER_PREFIX:
            continue
        prop = setting[len(PRODUCER_PREFIX):].lower().replace("_", ".")
        if prop in MANAGED_PRODUCER_PROPERTIES:
            raise InvalidSetting(
                setting, f"{prop} is managed by this app ({MANAGED_PRODUCER_PROPERTIES[prop]}); remove this setting"
            )
        value = env[setting]
        properties.append((prop, Secret(value) if _looks_secret(prop) else value, setting))
    return tuple(properties)


def _looks_secret(prop: str) -> bool:
    return any(word in prop for word in SECRET_PROPERTY_WORDS)
