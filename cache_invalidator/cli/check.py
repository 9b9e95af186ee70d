"""`check`: a region's settings, its Kafka topic and its Cosmos DB containers and leases, in one report.

Everything here but the Cosmos DB reading (cosmos.py) is plain Python or
confluent-kafka, so that it is tested against a real broker; the Cosmos DB
findings are judged from plain facts (`CosmosFacts`, cosmos_facts.py) by
`assess_cosmos`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Optional, TextIO
from urllib.parse import urlparse

import confluent_kafka
from confluent_kafka import KafkaError, KafkaException

from ..lease_watch import lease_mode
from ..producer import client_rejection, setting_hint as kafka_hint
from ..settings import (ALL_VERSIONS_AND_DELETES, ALL_VERSIONS_LEASE_SUFFIX, LATEST_VERSION, KafkaSettings, Secret,
                        Settings, SettingsError, TriggerSettings)
from .appsettings import key_vault_reference_problem, key_vault_references
from .cosmos_facts import (DEFAULT_MIN_SOFT_DELETE_TTL, ChangeFeedSample, ContainerFacts, CosmosFacts, FeedProbe,
                           FeedSampleBounds)
from .errors import CosmosUnavailable
from .report import Report, Section, parse_connection_string, redacted_connection_string, secret_values

DEFAULT_TIMEOUT_SECONDS = 10.0
# Leases are renewed every 17 s by default; one not renewed for this long has no running owner.
STALE_LEASE_SECONDS = 300
_SHOWN_OWNERS = 5

# librdkafka's own log lines would interleave with the report: it reports through error_cb instead.
_quiet_kafka_log = logging.getLogger("cache_invalidator.cli.kafka")
_quiet_kafka_log.addHandler(logging.NullHandler())
_quiet_kafka_log.propagate = False


# -- settings -----------------------------------------------------------------------------------


# Valid stand-ins for a bad or missing setting, only to look for further problems; never shown.
_STAND_INS = {
    "COSMOSDB_NAME": "stand-in",
    "COSMOSDB": "AccountEndpoint=https://stand-in/;AccountKey=stand-in;",
    "KAFKA_HOSTS": "stand-in:9092",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "stand-in",
    "KAFKA_SASL_PASSWORD": "stand-in",
}


def _stand_in(setting: str, env: Mapping[str, str]) -> Optional[str]:
    if setting == "KAFKA_SECURITY_PROTOCOL":
        # A SASL protocol only where SASL settings would need one: otherwise it asks for a mechanism nobody meant.
        sasl = any((env.get(name) or "").strip() for name in ("KAFKA_SASL_USERNAME", "KAFKA_SASL_MECHANISM"))
        return "SASL_SSL" if sasl else "PLAINTEXT"
    return _STAND_INS.get(setting)


def parse_with_all_errors(parse: Callable[[Mapping[str, str]], object], env: Mapping[str, str]):
    """(parsed or None, every error found): after an error, the bad setting is replaced or dropped and parsing goes on."""
    env = dict(env)
    errors: list[SettingsError] = []
    for _ in range(50):
        try:
            parsed = parse(env)
        except SettingsError as error:
            if any(e.setting == error.setting for e in errors):
                return None, errors
            errors.append(error)
            stand_in = _stand_in(error.setting, env)
            if stand_in is not None:
                env[error.setting] = stand_in
            elif error.setting in env:
                del env[error.setting]
            else:
                return None, errors
        else:
            return (parsed if not errors else None), errors
    return None, errors


@dataclasses.dataclass
class ParsedSettings:
    trigger: Optional[TriggerSettings]
    settings: Optional[Settings]
    errors: list[SettingsError]
    # Settings that hold a Key Vault reference: parsed with a stand-in or left out, never used or shown.
    references: tuple[str, ...] = ()

    def references_read_by(self, part: str) -> list[str]:
        """The Key Vault references among the settings that `part` ("Kafka" or "Cosmos DB") would use."""
        return [name for name in self.references if _part_reading(name) == part]


def _part_reading(setting: str) -> Optional[str]:
    """Which part of the check uses a setting beyond parsing it: "Kafka", "Cosmos DB" or None."""
    if setting.startswith("KAFKA_"):
        return "Kafka"
    if setting.startswith(("COSMOSDB", "CLUSTER_ID", "LEASE_WATCH_")):
        return "Cosmos DB"
    return None


def parse_settings(env: Mapping[str, str]) -> ParsedSettings:
    references = tuple(key_vault_references(env))
    # A reference is no value: parse with a stand-in where one keeps the rest parsing, so that no parse
    # error quotes it and every other problem is still found; the parts that would use it are skipped.
    env = {name: value for name, value in env.items() if name not in references}
    env.update((name, _stand_in(name, env)) for name in references if _stand_in(name, env) is not None)
    trigger, trigger_errors = parse_with_all_errors(TriggerSettings.from_env, env)
    settings, settings_errors = parse_with_all_errors(Settings.from_env, env)
    errors, seen = [], set()
    for error in trigger_errors + settings_errors:
        if str(error) not in seen:
            seen.add(str(error))
            errors.append(error)
    return ParsedSettings(trigger, settings, errors, references)


def settings_section(report: Report, env: Mapping[str, str], parsed: ParsedSettings, *, kafka: bool = True,
                     cosmos: bool = True, from_environment: tuple[str, ...] = ()) -> None:
    section = report.section("Settings")
    for name in parsed.references:
        # A problem where a part of the check that runs would need it; otherwise only a warning.
        part = _part_reading(name)
        needed = (part == "Kafka" and kafka) or (part == "Cosmos DB" and cosmos)
        (section.problem if needed else section.warning)(key_vault_reference_problem(name))
    for name in from_environment:
        section.info(f"{name}: the environment's value, in place of the Key Vault reference in the settings file")
    for error in parsed.errors:
        section.problem(str(error))
    rows: list[tuple[str, str]] = []
    env = {name: value for name, value in env.items() if name not in parsed.references}
    connection = (env.get("COSMOSDB") or "").strip()
    identity_endpoint = (env.get("COSMOSDB__accountEndpoint") or "").strip()
    if connection:
        rows.append(("COSMOSDB", redacted_connection_string(connection)))
        pairs = parse_connection_string(connection)
        if not pairs.get("AccountEndpoint"):
            section.problem("setting COSMOSDB: the connection string has no AccountEndpoint=...")
        if not any(name.lower() == "accountkey" and value for name, value in pairs.items()):
            section.problem("setting COSMOSDB: the connection string has no AccountKey=...")
        if identity_endpoint:
            section.warning(
                "COSMOSDB and COSMOSDB__accountEndpoint are both set: the Functions host uses the connection "
                "string and ignores COSMOSDB__accountEndpoint; remove one of them"
            )
    elif identity_endpoint:
        rows.append(("COSMOSDB__accountEndpoint", f"{identity_endpoint} (DefaultAzureCredential)"))
        if not urlparse(identity_endpoint).hostname:
            section.problem(f"setting COSMOSDB__accountEndpoint: {identity_endpoint!r} is not a URL")
    trigger = parsed.trigger
    if trigger is not None:
        rows += [
            ("COSMOSDB_NAME", trigger.database),
            ("COSMOSDB_WHISKS_CONTAINER", f"{trigger.whisks_container} (lease prefix {trigger.lease_prefix(trigger.whisks_container)})"),
            ("COSMOSDB_SUBJECTS_CONTAINER", f"{trigger.subjects_container} (lease prefix {trigger.lease_prefix(trigger.subjects_container)})"),
            ("COSMOSDB_LEASE_CONTAINER", trigger.lease_container),
            ("COSMOSDB_CREATE_LEASE_CONTAINER", _flag(trigger.create_lease_container)),
            ("COSMOSDB_START_FROM_BEGINNING", _flag(trigger.start_from_beginning)),
            ("COSMOSDB_START_FROM_TIME", trigger.start_from_time or "(none: from now)"),
            ("COSMOSDB_CHANGE_FEED_MODE", trigger.change_feed_mode),
            ("COSMOSDB_PREFERRED_LOCATIONS", trigger.preferred_locations or "(the account's)"),
            ("COSMOSDB_MAX_ITEMS_PER_INVOCATION", str(trigger.max_items_per_invocation)),
            ("COSMOSDB_FEED_POLL_DELAY_MS", str(trigger.feed_poll_delay_ms)),
        ]
    settings = parsed.settings
    if settings is not None:
        rows += [
            ("CLUSTER_ID", settings.cluster_id or "(none: every change is sent)"),
            ("INVALIDATION_INSTANCE_ID", settings.instance_id),
            ("INVALIDATE_AUTH_KEYS", _flag(settings.invalidate_auth_keys)),
        ]
        rows += _kafka_rows(settings.kafka)
    elif trigger is not None:
        rows.append(("CLUSTER_ID", trigger.cluster_id or "(none: every change is sent)"))
    rows = [(name, value) for name, value in rows if name not in parsed.references]
    rows += [(name, "(a Key Vault reference: not resolved here)") for name in parsed.references]
    width = max((len(name) for name, _ in rows), default=0)
    for name, value in rows:
        section.info(f"{name:<{width}}  {value}")


def _kafka_rows(kafka: KafkaSettings) -> list[tuple[str, str]]:
    rows = [
        ("KAFKA_HOSTS", kafka.hosts),
        ("KAFKA_TOPIC", kafka.topic),
        ("KAFKA_DELIVERY_TIMEOUT_SECONDS", f"{kafka.delivery_timeout_seconds:g}"),
        ("KAFKA_SECURITY_PROTOCOL", kafka.security_protocol or "(PLAINTEXT)"),
    ]
    if kafka.sasl_mechanism:
        rows.append(("KAFKA_SASL_MECHANISM", kafka.sasl_mechanism))
    if kafka.sasl_username is not None:
        rows.append(("KAFKA_SASL_USERNAME", kafka.sasl_username))
    if kafka.sasl_password is not None:
        rows.append(("KAFKA_SASL_PASSWORD", "***"))
    if kafka.ssl_ca_location:
        rows.append(("KAFKA_SSL_CA_LOCATION", kafka.ssl_ca_location))
    for prop, value, setting in kafka.extra_properties:
        rows.append((setting, f"{prop}={'***' if isinstance(value, Secret) else value}"))
    return rows


def _flag(value: bool) -> str:
    return "true" if value else "false"


# -- Kafka --------------------------------------------------------------------------------------


def kafka_section(report: Report, kafka: Optional[KafkaSettings], timeout: float,
                  references: Sequence[str] = ()) -> None:
    section = report.section("Kafka")
    if references:
        section.skipped(f"{', '.join(references)} holds a Key Vault reference (see Settings): nothing was sent to "
                        f"the brokers")
        return
    if kafka is None:
        section.skipped("the Kafka settings have problems (see Settings)")
        return
    errors: list[KafkaError] = []
    config = kafka.producer_config()
    config["error_cb"] = errors.append
    config["logger"] = _quiet_kafka_log
    config["socket.timeout.ms"] = max(1000, int(timeout * 1000))
    try:
        # The app's own producer configuration: a property librdkafka rejects is found here too.
        client = confluent_kafka.Producer(config)
    except KafkaException as exc:
        # What the app's first invocation would raise, word for word.
        section.problem(str(client_rejection(kafka, exc)))
        return
    try:
        _inspect_cluster(section, client, kafka, errors, timeout)
    finally:
        client.purge()
        client.flush(0)
        if hasattr(client, "close"):
            client.close()


def _inspect_cluster(section: Section, client, kafka: KafkaSettings, errors: list[KafkaError], timeout: float) -> None:
    started = time.monotonic()
    try:
        # All topics, not just ours: asking for one topic by name may create it on a broker that auto-creates.
        metadata = client.list_topics(timeout=timeout)
    except KafkaException as exc:
        client.poll(0)  # serves error_cb: the client's own last error says more than a timeout
        error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        if errors and (error is None or error.code() in (KafkaError._TIMED_OUT, KafkaError._TRANSPORT)):
            error = errors[-1]
        reason = f"{error.name()}: {error.str()}" if error is not None else str(exc)
        section.problem(
            f"no cluster metadata from KAFKA_HOSTS={kafka.hosts} within {timeout:g} s: {reason}{kafka_hint(error, kafka)}"
        )
        return
    brokers = sorted(f"{b.host}:{b.port}" for b in metadata.brokers.values())
    section.ok(f"{len(brokers)} broker(s) answer in {time.monotonic() - started:.1f} s: {', '.join(brokers)}")
    topic = metadata.topics.get(kafka.topic)
    missing = topic is None or (
        topic.error is not None and topic.error.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC)
    )
    if missing:
        who = f", or the user {kafka.sasl_username!r} may not describe it" if kafka.sasl_username else ""
        section.problem(
            f"topic {kafka.topic!r} does not exist{who}: create it, or correct KAFKA_TOPIC "
            f"(the app never creates it)"
        )
        return
    if topic.error is not None:
        section.problem(f"topic {kafka.topic!r}: {topic.error.name()}: {topic.error.str()}{kafka_hint(topic.error, kafka)}")
        return
    partitions = topic.partitions
    section.ok(f"topic {kafka.topic!r} exists with {len(partitions)} partition(s)")
    leaderless = sorted(p.id for p in partitions.values() if p.leader < 0 or p.error is not None)
    if leaderless:
        section.problem(f"topic {kafka.topic!r}: partition(s) {', '.join(map(str, leaderless))} have no leader")


# -- Cosmos DB ----------------------------------------------------------------------------------


def cosmos_section(
    report: Report,
    env: Mapping[str, str],
    trigger: Optional[TriggerSettings],
    cluster_id: Optional[str],
    timeout: float,
    gather: Optional[Callable[..., CosmosFacts]] = None,
    sample: Optional[FeedSampleBounds] = None,
    min_soft_delete_ttl: int = 0,
    sampler: Optional[Callable[..., Mapping[str, ChangeFeedSample]]] = None,
    prober: Optional[Callable[..., Mapping[str, FeedProbe]]] = None,
    references: Sequence[str] = (),
) -> Optional[CosmosFacts]:
    """The Cosmos DB findings; returns what was read, None when nothing could be."""
    section = report.section("Cosmos DB")
    if references:
        section.skipped(f"{', '.join(references)} holds a Key Vault reference (see Settings): Cosmos DB was not read")
        return None
    if trigger is None:
        section.skipped("the Cosmos DB settings have problems (see Settings)")
        return None
    if gather is None:
        try:
            from .cosmos import gather_facts as gather
        except ImportError as exc:
            section.problem(f"the CLI's requirements are missing ({exc.name}): pip install -r requirements-cli.txt")
            return None
    try:
        facts = gather(env, trigger, timeout=timeout)
    except CosmosUnavailable as exc:
        section.problem(str(exc))
        return None
    assess_cosmos(section, facts, trigger, cluster_id, now=time.time())
    if trigger.all_versions_and_deletes and facts.database_exists:
        probe_section(section, env, trigger, timeout, prober)
    if sample is not None and facts.database_exists:
        sample_section(section, env, trigger, cluster_id, timeout, sample, min_soft_delete_ttl, sampler)
    return facts


def assess_cosmos(section: Section, facts: CosmosFacts, trigger: TriggerSettings,
                  cluster_id: Optional[str], now: float) -> None:
    """Findings from what Cosmos DB holds: containers, the lease container's key, this deployment's leases."""
    section.ok(f"account {facts.endpoint} answers")
    if facts.database_exists is False:
        section.problem(f"database {trigger.database!r} (COSMOSDB_NAME) does not exist")
        return
    if facts.database_exists:
        section.ok(f"database {trigger.database!r} exists")
    else:  # None: no container found, and a role on the containers alone may not read the database
        section.info(f"database {trigger.database!r} (COSMOSDB_NAME) could not be read: the account refused (403)")
    monitored = []
    for setting, name in (("COSMOSDB_WHISKS_CONTAINER", trigger.whisks_container),
                          ("COSMOSDB_SUBJECTS_CONTAINER", trigger.subjects_container)):
        container = facts.containers.get(name)
        if container is None or not container.exists:
            section.problem(f"container {name!r} ({setting}) does not exist in database {trigger.database!r}")
        else:
            section.ok(f"container {name!r} exists")
            assess_default_ttl(section, container)
            monitored.append(container)
    lease = facts.containers.get(trigger.lease_container)
    if lease is None or not lease.exists:
        if trigger.create_lease_container:
            section.warning(
                f"lease container {trigger.lease_container!r} does not exist; the Functions host creates it "
                f"at start (COSMOSDB_CREATE_LEASE_CONTAINER is true)"
            )
        else:
            section.problem(
                f"lease container {trigger.lease_container!r} (COSMOSDB_LEASE_CONTAINER) does not exist, and the "
                f"host will not create it (a managed identity cannot): create it with partition key /id"
            )
        return
    paths = list(lease.partition_key_paths)
    if paths == ["/id"]:
        section.ok(f"lease container {trigger.lease_container!r} exists with partition key /id")
    else:
        section.problem(
            f"lease container {trigger.lease_container!r} has partition key {', '.join(paths) or '(none)'}; "
            f"the change feed processor needs /id: create a new one with /id"
        )
    if facts.leases is not None:
        host = (urlparse(facts.endpoint).hostname or "").lower()
        for container in monitored:
            assess_leases(section, facts.leases, container, trigger, cluster_id, host,
                          facts.database_rid or "", now)
            assess_old_service_leases(section, facts.leases, container, trigger, host, now)


@dataclasses.dataclass
class _LeaseGroup:
    leases: int = 0
    documents: int = 0
    owners: set = dataclasses.field(default_factory=set)
    unowned: int = 0
    newest: Optional[int] = None
    # The change feed mode each lease records (lease_watch.lease_mode), counted; None: not recorded yet.
    modes: dict = dataclasses.field(default_factory=dict)


def assess_leases(section: Section, leases: list[Mapping], container: ContainerFacts, trigger: TriggerSettings,
                  cluster_id: Optional[str], host: str, database_rid: str, now: float) -> None:
    """This deployment's leases of one monitored container, and what other deployments' leases suggest.

    The change feed processor of the Cosmos DB extension v4 (SDK v3) names its
    documents `<lease prefix><account host>_<database rid>_<container rid>`
    followed by `..<lease token>` for a lease, `.info` or `.lock` for its store
    marker and lock. The Functions host passes leaseContainerPrefix as the
    prefix, so the part before the host tells which deployment wrote a lease.
    """
    prefix = trigger.lease_prefix(container.name)
    marker = f"_{database_rid}_{container.rid}"
    groups: dict[str, _LeaseGroup] = {}
    other_endpoints: dict[str, _LeaseGroup] = {}
    for document in leases:
        doc_id = document.get("id")
        if not isinstance(doc_id, str):
            continue
        at = doc_id.find(marker)
        if at < 0:
            continue
        head, tail = doc_id[:at], doc_id[at + len(marker):]
        if host and head.lower().endswith(host):
            group = groups.setdefault(head[:len(head) - len(host)], _LeaseGroup())
        else:
            group = other_endpoints.setdefault(head, _LeaseGroup())
        group.documents += 1
        if tail.startswith(".."):
            group.leases += 1
            owner = document.get("Owner") or document.get("owner")
            if owner:
                group.owners.add(str(owner))
            else:
                group.unowned += 1
            ts = document.get("_ts")
            if isinstance(ts, int) and (group.newest is None or ts > group.newest):
                group.newest = ts
            mode = lease_mode(document)
            group.modes[mode] = group.modes.get(mode, 0) + 1

    ours = groups.pop(prefix, None)
    label = f"{container.name!r} (lease prefix {prefix!r})"
    if ours is None or ours.leases == 0:
        section.warning(
            f"no leases for {label}: the function has not started on this container yet, or the running app "
            f"uses another CLUSTER_ID or COSMOSDB_LEASE_CONTAINER"
        )
    else:
        owners = sorted(ours.owners)
        shown = ", ".join(owners[:_SHOWN_OWNERS]) + (", ..." if len(owners) > _SHOWN_OWNERS else "")
        text = f"{ours.leases} lease(s) for {label}, {len(owners)} owner(s)"
        text += f": {shown}" if owners else ""
        if ours.unowned:
            text += f"; {ours.unowned} without owner"
        age = None if ours.newest is None else max(0, int(now - ours.newest))
        if age is not None:
            text += f"; last renewed {_age(age)} ago"
        section.ok(text)
        if age is not None and age > STALE_LEASE_SECONDS:
            section.warning(
                f"the leases for {label} were not renewed for {_age(age)}: is the Function App running?"
            )
        assess_lease_modes(section, ours, label, trigger.change_feed_mode)
    other_mode = ALL_VERSIONS_AND_DELETES if trigger.change_feed_mode == LATEST_VERSION else LATEST_VERSION
    other_prefix = dataclasses.replace(trigger, change_feed_mode=other_mode).lease_prefix(container.name)
    left = groups.pop(other_prefix, None)
    if left is not None and left.leases:
        assess_other_mode_leases(section, left, container.name, other_prefix, other_mode, trigger.change_feed_mode,
                                 now)

    others = {name: group for name, group in groups.items() if group.leases or group.documents}
    if others:
        listed = ", ".join(f"{name or '(empty)'!r} ({group.leases} leases)" for name, group in sorted(others.items()))
        section.info(f"other deployments read {container.name!r} too, with lease prefixes {listed}")
    suffix = f"-{container.name}"
    for name in sorted(others if cluster_id else ()):
        if name.endswith(ALL_VERSIONS_LEASE_SUFFIX):
            name = name[:-len(ALL_VERSIONS_LEASE_SUFFIX)]
        if name == container.name:
            other_cluster = None
        elif name.endswith(suffix):
            other_cluster = name[:-len(suffix)]
        else:
            continue  # another app's change feed processor
        if other_cluster is None:
            section.warning(
                f"a deployment without CLUSTER_ID (lease prefix {name!r}) reads {container.name!r}: "
                f"in a multi-region setup every region needs its own CLUSTER_ID"
            )
        elif other_cluster != cluster_id and other_cluster.strip().lower() == cluster_id.strip().lower():
            section.warning(
                f"lease prefix {name!r} differs from this deployment's {prefix!r} only in case or blanks: "
                f"two regions probably share the CLUSTER_ID {cluster_id!r}"
            )
    if not cluster_id and others:
        section.warning(
            f"CLUSTER_ID is empty while other deployments read {container.name!r} "
            f"(prefixes {', '.join(repr(n) for n in sorted(others))}): give every region its own CLUSTER_ID, "
            f"or its own changes are sent back to it and a second region without one would share these leases"
        )
    for head, group in sorted(other_endpoints.items()):
        if head.startswith(prefix):
            section.warning(
                f"leases {head!r}...: a deployment with this lease prefix {prefix!r} reads {container.name!r} "
                f"through another endpoint: two regions share the CLUSTER_ID {cluster_id or '(none)'!r}"
            )
        else:
            section.info(f"{group.leases} lease(s) {head!r}... read {container.name!r} through another endpoint")


# The processors' refusal to read a lease in another mode than it records: the .NET SDK's
# DocumentServiceLeaseManager.VerifyChangeFeedProcessorMode ("Switching ChangeFeedMode ... is not allowed"),
# checked against the first lease of the prefix when the processor starts.
_MODE_REFUSAL = "the change feed processor refuses to start on them (\"Switching ChangeFeedMode ... is not allowed\")"


def assess_lease_modes(section: Section, group: _LeaseGroup, label: str, mode: str) -> None:
    """This deployment's leases must record its COSMOSDB_CHANGE_FEED_MODE, or the trigger never starts."""
    other = sum(count for recorded, count in group.modes.items() if recorded not in (mode, None))
    if other:
        section.problem(
            f"{other} of the {group.leases} lease(s) for {label} record another change feed mode than "
            f"COSMOSDB_CHANGE_FEED_MODE={mode}: {_MODE_REFUSAL}. Delete them, or set the mode they record "
            f"(docs/DEPLOY.md, moving a region between modes)")
    elif mode == ALL_VERSIONS_AND_DELETES and group.modes.get(None):
        section.info(f"{group.modes[None]} lease(s) for {label} record no mode yet (a Java processor's lease before "
                     f"its first checkpoint)")


def assess_other_mode_leases(section: Section, group: _LeaseGroup, container: str, prefix: str, mode: str,
                             configured: str, now: float) -> None:
    """This region's leases of the mode it does not read: left from before a move between modes, or still running."""
    age = None if group.newest is None else max(0, int(now - group.newest))
    renewed = f", last renewed {_age(age)} ago" if age is not None else ""
    text = (f"{group.leases} lease(s) of the {mode} feed of {container!r} under this region's prefix {prefix!r}"
            f"{renewed}, while COSMOSDB_CHANGE_FEED_MODE={configured}")
    if age is not None and age <= STALE_LEASE_SECONDS:
        section.warning(f"{text}: an app of this region still reads that feed, and both send the changes they share "
                        f"(duplicates, no loss). Stop it once this mode's leases are caught up (docs/DEPLOY.md)")
    else:
        section.info(f"{text}: left from the other mode, and read as a stale region by the lease watch; delete them "
                     f"once the move is done (docs/DEPLOY.md)")


def _age(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


# -- what OpenWhisk writes: default TTL, soft deletes, _clusterId; the Scala service's leases ---
#
# OpenWhisk's CosmosDBArtifactStore (common/scala/.../database/cosmosdb/) soft-deletes, with `_deleted`
# and a `ttl`, only when whisk.cosmosdb.soft-delete-ttl is set, and stamps `_clusterId` only when
# whisk.cosmosdb.cluster-id is set; both are commented out in its application.conf. A hard delete is
# not in the latest-version change feed, so no other region hears of it.

# OpenWhisk's stores per container: the key under whisk.cosmosdb.collections.
_STORES = {"COSMOSDB_WHISKS_CONTAINER": "WhiskEntity", "COSMOSDB_SUBJECTS_CONTAINER": "WhiskAuth"}


def _soft_delete_setting(store: str) -> str:
    return (f"whisk.cosmosdb.soft-delete-ttl (environment CONFIG_whisk_cosmosdb_softDeleteTtl), or for this "
            f"container whisk.cosmosdb.collections.{store}.soft-delete-ttl "
            f"(CONFIG_whisk_cosmosdb_collections_{store}_softDeleteTtl)")


_CLUSTER_ID_SETTING = "whisk.cosmosdb.cluster-id (environment CONFIG_whisk_cosmosdb_clusterId)"


def assess_default_ttl(section: Section, container: ContainerFacts) -> None:
    """A soft delete's ttl acts only when the container has time to live on; OpenWhisk turns it on only on
    containers it creates (defaultTtl -1, CosmosDBSupport.newDatabaseCollection)."""
    if container.default_ttl is None:
        section.warning(
            f"container {container.name!r} has no default time to live: the ttl that OpenWhisk gives a soft delete "
            f"(whisk.cosmosdb.soft-delete-ttl) never takes effect and soft-deleted documents stay for ever "
            f"(harmless for invalidation; they only accumulate). OpenWhisk turns it on only in containers it "
            f"creates: turn it on without a default, defaultTtl -1 (az cosmosdb sql container update ... --ttl -1)"
        )
    elif container.default_ttl > 0:
        section.warning(
            f"container {container.name!r} has a default time to live of {_age(container.default_ttl)}: every "
            f"OpenWhisk document in it expires that long after its last change; set defaultTtl to -1 (on, no default)"
        )


def probe_section(section: Section, env: Mapping[str, str], trigger: TriggerSettings, timeout: float,
                  prober: Optional[Callable[..., Mapping[str, FeedProbe]]]) -> None:
    """Whether the account serves each container's all-versions-and-deletes feed: one read from now of each."""
    if prober is None:
        from .cosmos import probe_all_versions_feeds as prober
    try:
        probes = prober(env, trigger, timeout=timeout)
    except CosmosUnavailable as exc:
        section.problem(f"reading the all-versions-and-deletes feed: {exc}")
        return
    for name in dict.fromkeys([trigger.whisks_container, trigger.subjects_container]):
        if name in probes:
            assess_all_versions_feed(section, probes[name])


def assess_all_versions_feed(section: Section, probe: FeedProbe) -> None:
    """COSMOSDB_CHANGE_FEED_MODE=AllVersionsAndDeletes needs an account that serves that feed."""
    if probe.served:
        section.ok(f"the account serves the all-versions-and-deletes change feed of {probe.container!r} "
                   f"(read from now, {probe.request_charge:g} RU)")
        return
    section.problem(
        f"the account refuses the all-versions-and-deletes change feed of {probe.container!r} "
        f"({probe.status}: {probe.message}): COSMOSDB_CHANGE_FEED_MODE={ALL_VERSIONS_AND_DELETES} needs continuous "
        f"backup on the account and its all-versions-and-deletes feature turned on (docs/DEPLOY.md); until then the "
        f"triggers read nothing, or set COSMOSDB_CHANGE_FEED_MODE={LATEST_VERSION} with soft deletes")


def sample_section(section: Section, env: Mapping[str, str], trigger: TriggerSettings, cluster_id: Optional[str],
                   timeout: float, bounds: FeedSampleBounds, min_soft_delete_ttl: int,
                   sampler: Optional[Callable[..., Mapping[str, ChangeFeedSample]]]) -> None:
    """Reads a bounded sample of each container's recent change feed and judges what the controllers wrote."""
    if sampler is None:
        from .cosmos import sample_change_feeds as sampler
    try:
        samples = sampler(env, trigger, bounds, timeout=timeout)
    except CosmosUnavailable as exc:
        section.problem(f"sampling the change feed: {exc}")
        return
    for setting, name in (("COSMOSDB_WHISKS_CONTAINER", trigger.whisks_container),
                          ("COSMOSDB_SUBJECTS_CONTAINER", trigger.subjects_container)):
        if name in samples:
            assess_change_feed(section, samples[name], _STORES[setting], cluster_id, bounds, min_soft_delete_ttl,
                               trigger.change_feed_mode)


def assess_change_feed(section: Section, sample: ChangeFeedSample, store: str, cluster_id: Optional[str],
                       bounds: FeedSampleBounds, min_soft_delete_ttl: int,
                       change_feed_mode: str = LATEST_VERSION) -> None:
    """Soft deletes, their ttl and `_clusterId` in one container's sample; each warning names OpenWhisk's setting.

    Warnings are kept for evidence. A latest-version feed never shows a hard delete, so a sample without a soft
    delete cannot tell a deployment whose controllers deleted nothing in the window from one whose controllers
    hard-delete: that is said, with both remedies, as information.
    """
    name, changes = sample.container, sample.changes
    bound = {"documents": f"; stopped at the {bounds.max_documents}-document bound",
             "request units": f"; stopped at the {bounds.max_request_units:g}-RU bound"}.get(sample.stopped_by, "")
    section.info(
        f"change feed of {name!r}: {len(changes)} change(s) in the last {_age(bounds.window_seconds)}, "
        f"{sample.documents_read} document(s) read, {sample.request_charge:g} RU charged{bound}"
    )
    if not changes:
        section.info(f"no change of {name!r} in the last {_age(bounds.window_seconds)}: soft deletes and "
                     f"_clusterId cannot be judged (--sample-window looks further back)")
        return
    stamps: dict[Optional[str], int] = {}
    for change in changes:
        stamps[change.cluster_id] = stamps.get(change.cluster_id, 0) + 1
    seen = ", ".join(f"{value!r} {count}" for value, count in sorted(
        ((v, c) for v, c in stamps.items() if v is not None), key=lambda item: (-item[1], item[0])))
    unstamped = stamps.get(None, 0)
    section.info(f"_clusterId of the changes of {name!r}: {seen or '(none)'}"
                 + (f"; without _clusterId {unstamped}" if unstamped else ""))

    soft_deletes = [change for change in changes if change.deleted]
    if change_feed_mode == ALL_VERSIONS_AND_DELETES:
        # Hard deletes and expiring soft deletes both reach the all-versions-and-deletes feed: neither is lost.
        section.info(f"deletes of {name!r} reach the other regions through the all-versions-and-deletes feed, "
                     f"hard or soft ({len(soft_deletes)} soft delete(s) in this sample)")
        soft_deletes = []
    elif not soft_deletes:
        section.info(
            f"no soft delete among the {len(changes)} change(s) of {name!r}: this cannot tell whether nothing was "
            f"deleted in the window or the controllers hard-delete, as OpenWhisk does by default (a hard delete never "
            f"reaches the latest-version feed, so no sample shows one). If they hard-delete, deletes reach no other "
            f"region. Either set {_soft_delete_setting(store)} on every controller, or read the all-versions-and-"
            f"deletes feed, which carries hard deletes (COSMOSDB_CHANGE_FEED_MODE={ALL_VERSIONS_AND_DELETES}; README, "
            f"\"Deletes across regions\")"
        )
    short = sorted(change.ttl for change in soft_deletes if change.ttl is not None and change.ttl < min_soft_delete_ttl)
    if short:
        section.warning(
            f"{len(short)} soft delete(s) of {name!r} carry a ttl below {_age(min_soft_delete_ttl)} "
            f"(--min-soft-delete-ttl), the shortest {_age(short[0])}: an expired delete leaves the change feed, so a "
            f"region whose app is down longer, or a replay reaching further back, never sees it. Raise "
            f"{_soft_delete_setting(store)} beyond the longest outage plus the replay horizon"
        )
    if unstamped:
        section.warning(
            f"{unstamped} of the {len(changes)} change(s) of {name!r} carry no _clusterId: the controllers that wrote "
            f"them do not set {_CLUSTER_ID_SETTING}, so their own region invalidates them again (a cache miss each). "
            f"Set it on every controller to its region's CLUSTER_ID"
        )
    if cluster_id and cluster_id not in stamps:
        section.warning(
            f"this region's CLUSTER_ID {cluster_id!r} is on none of the {len(changes)} change(s) of {name!r}: if this "
            f"region's controllers wrote any, their {_CLUSTER_ID_SETTING} is not {cluster_id!r}, and every change "
            f"of theirs comes back to them (skipped_own_cluster=0 on every batch line). Set it to {cluster_id!r} "
            f"there, or CLUSTER_ID to their value, never to another region's (its changes would be skipped here)"
        )


def _is_store_marker(doc_id: str) -> bool:
    """The lease store's `.info` (initialised) and `.lock` (initialising) documents: no lease of a feed range."""
    return doc_id.endswith((".info", ".lock"))


def assess_old_service_leases(section: Section, leases: list[Mapping], container: ContainerFacts,
                              trigger: TriggerSettings, host: str, now: float) -> None:
    """Lease documents of OpenWhisk's Scala cache-invalidator on the same lease container.

    Its Java change feed processors named them by names where the .NET SDK
    uses resource ids: `<lease prefix><host>_<database>_<container>` then
    `..<token>` (azure-cosmos 3.x, ChangeFeedProcessorBuilderImpl.getLeasePrefix
    with CosmosDatabase.id()) or `.info.<partition>` (azure-cosmos-changefeedprocessor
    0.9.2), and `.info`, `.lock`. The app's processor lists `<prefix><host>_<rids>..`
    and reads the marker `<prefix><host>_<rids>.info`, so it neither takes these
    over nor is blocked by them.
    """
    marker = f"_{trigger.database}_{container.name}"
    groups: dict[str, list[Mapping]] = {}
    for document in leases:
        doc_id = document.get("id")
        if not isinstance(doc_id, str):
            continue
        at = doc_id.rfind(marker)
        if at < 0 or not doc_id[at + len(marker):].startswith("."):
            continue
        groups.setdefault(doc_id[:at], []).append(document)
    ours = trigger.lease_prefix(container.name)
    for head, documents in sorted(groups.items()):
        prefix = head[:len(head) - len(host)] if host and head.lower().endswith(host) else head
        # Only a lease is renewed while its processor runs. The store's markers are written
        # once, and Microsoft's Java processor (azure-cosmos 4.x) writes a name-based `.info`
        # beside its own resource-id leases, so a fresh marker alone says nothing of the Scala service.
        stamps = [d.get("_ts") for d in documents if type(d.get("_ts")) is int and not _is_store_marker(d["id"])]
        age = None if not stamps else max(0, int(now - max(stamps)))
        renewed = f", last written {_age(age)} ago" if age is not None else ""
        text = (f"{len(documents)} lease document(s) {head + marker!r}... of the Scala cache-invalidator "
                f"(lease prefix {prefix!r}) for {container.name!r}{renewed}")
        if prefix == ours and age is not None and age <= STALE_LEASE_SECONDS:
            section.warning(f"{text}: the Scala service still runs with this region's prefix; stop it once this app "
                            f"reads the feed (both send the same invalidations: duplicates, no loss)")
        else:
            section.info(f"{text}: the app neither reads nor takes them over (it names its leases by resource ids); "
                         f"delete them once the migration is done (docs/OPERATIONS.md)")


# -- the lease watch ----------------------------------------------------------------------------


def lease_watch_section(report: Report, env: Mapping[str, str], trigger: Optional[TriggerSettings],
                        look: Optional[Callable[[], object]] = None) -> None:
    """What the watch_leases function logs, as a table: every region's leases, through the same code."""
    section = report.section("Lease watch (every region's leases)")
    if trigger is None:
        section.skipped("the Cosmos DB settings have problems (see Settings)")
        return
    if look is None:
        try:
            import azure.cosmos  # noqa: F401  (the watch imports it when it runs; say plainly when it is missing)
        except ImportError as exc:
            section.problem(f"the CLI's requirements are missing ({exc.name}): pip install -r requirements-cli.txt")
            return
        from ..lease_watch import LeaseWatch

        watch = LeaseWatch(env, trigger, operator=True)
        try:
            run = watch.look()
        finally:
            watch.close()
    else:
        run = look()
    add_watch_table(section, run)


_WATCH_COLUMNS = ("region", "container", "mode", "status", "leases", "owners", "renewed", "checkpoint", "pending",
                  "oldest pending")


def add_watch_table(section: Section, run) -> None:
    """One row per region and container; a region stale, behind or missing is a warning, an unread store a problem."""
    from ..lease_watch import HEALTHY, UNREADABLE

    rows = []
    for finding in run.findings:
        if finding.status == UNREADABLE:
            section.problem(f"the leases could not be read: {finding.reason}")
            continue
        owners = ", ".join(finding.owners[:_SHOWN_OWNERS]) + (", ..." if len(finding.owners) > _SHOWN_OWNERS else "")
        rows.append((finding, (
            finding.region, finding.container, finding.mode or "-", finding.status, str(finding.leases), owners or "-",
            "-" if finding.renewed_seconds_ago is None else f"{_age(int(finding.renewed_seconds_ago))} ago",
            "-" if finding.oldest_checkpoint is None else f"lsn {finding.oldest_checkpoint}",
            "-" if finding.pending_changes is None else str(finding.pending_changes),
            "-" if finding.oldest_pending_seconds is None else _age(int(finding.oldest_pending_seconds)),
        )))
    if not rows:
        return
    widths = [max(len(column), *(len(cells[i]) for _, cells in rows)) for i, column in enumerate(_WATCH_COLUMNS)]
    section.info("  ".join(f"{column:<{width}}" for column, width in zip(_WATCH_COLUMNS, widths)).rstrip())
    for finding, cells in rows:
        text = "  ".join(f"{cell:<{width}}" for cell, width in zip(cells, widths)).rstrip()
        if finding.status == HEALTHY:
            section.ok(text)
        else:
            section.warning(f"{text}\n{finding.reason}")
    section.info(f"{run.requests} request(s), {run.request_charge:g} RU, {run.duration_ms:.0f} ms")


# -- the command --------------------------------------------------------------------------------


def run_check(env: Mapping[str, str], out: TextIO, *, source: str, kafka: bool = True, cosmos: bool = True,
              timeout: float = DEFAULT_TIMEOUT_SECONDS,
              gather: Optional[Callable[..., CosmosFacts]] = None,
              sample: Optional[FeedSampleBounds] = None, min_soft_delete_ttl: int = DEFAULT_MIN_SOFT_DELETE_TTL,
              sampler: Optional[Callable[..., Mapping[str, ChangeFeedSample]]] = None,
              watch_look: Optional[Callable[[], object]] = None, from_environment: tuple[str, ...] = (),
              prober: Optional[Callable[..., Mapping[str, FeedProbe]]] = None) -> int:
    """Prints the report; 0 when there is no problem, else 1."""
    report = Report(f"cache-invalidator check: settings from {source}", secrets=secret_values(env))
    parsed = parse_settings(env)
    settings_section(report, env, parsed, kafka=kafka, cosmos=cosmos, from_environment=from_environment)
    if kafka:
        kafka_section(report, parsed.settings.kafka if parsed.settings else None, timeout,
                      references=parsed.references_read_by("Kafka"))
    if cosmos:
        cluster_id = parsed.trigger.cluster_id if parsed.trigger else None
        facts = cosmos_section(report, env, parsed.trigger, cluster_id, timeout, gather=gather, sample=sample,
                               min_soft_delete_ttl=min_soft_delete_ttl, sampler=sampler, prober=prober,
                               references=parsed.references_read_by("Cosmos DB"))
        if facts is not None and facts.leases is not None:
            # Only once the lease container answered: otherwise the Cosmos DB section has said why not.
            lease_watch_section(report, env, parsed.trigger, look=watch_look)
    report.render(out)
    return 1 if report.problems else 0
