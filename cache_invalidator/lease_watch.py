"""Regions watch each other: every region's leases, read from the one lease container, judged and logged.

A region whose app is stopped, crash-loops or lost its trigger listener writes no
batch line, so the batch line's alerts never fire for it. Every region's leases
live in the one lease container, though, so each region can see whether every
other region's leases are renewed and how far their continuations trail the feed.

What is computed follows the .NET SDK's change feed estimator
(Azure/azure-cosmos-dotnet-v3, Microsoft.Azure.Cosmos/src/ChangeFeedProcessor/):
`ChangeFeedEstimatorCore.GetCurrentStateIterator` hands out a
`ChangeFeedEstimatorIterator`, whose `GetRemainingWorkAsync` reads, for each
lease, one page of at most one change from the lease's continuation and takes
    pending = LSN of the response's session token - (the first change's `_lsn` - 1),
or 0 when the page is empty (304), 1 when the lease has no continuation yet or
a number cannot be read. Here the same read also gives the first pending
change's `_ts`: the age of the oldest change not yet handed to that region's
function. The request charges of every read are summed, as the estimator sums
them into its response's RequestCharge.

Two lease shapes are read (tests/lease_documents.py writes both):
- the .NET processor's `DocumentServiceLeaseCore` (what the Functions host's
  Cosmos DB extension writes): `LeaseToken`, `FeedRange` {"Range": {min, max}},
  `Owner`, `ContinuationToken` = the etag of the last checkpointed read, and
  `timestamp`, set at every renewal and checkpoint;
- the Java processor's EPK-based `ServiceItemLeaseV1` (azure-sdk-for-java,
  com/azure/cosmos/implementation/changefeed/epkversion/): `version` 1,
  `LeaseToken` "<min>-<max>", `feedRange` {"Range": ...}, `Owner`, `timestamp`,
  and a `ContinuationToken` that is a base64 JSON `ChangeFeedStateV1`
  (common/ChangeFeedStateV1.java) whose `Continuation.Continuation[].token` is
  the etag.

Each lease reads its change feed in the mode it records (its `Mode`, `lease_mode`): a lease of the
all-versions-and-deletes feed is estimated from a read of that feed, whose first change holds its LSN
and time in `metadata.lsn` and `metadata.crts`. (The .NET estimator reads every lease in the
latest-version mode, ChangeFeedEstimatorIterator, which would miss pending deletes.) A region's leases
of each mode are judged apart: during a move between modes both may run.

Nothing is written, and a run is bounded by WatchSettings.timeout_seconds. A
read that fails (a deleted lease container, a lost connection, a refused key)
becomes a finding logged at ERROR, never an exception: the function's log line is
what the alerts read. Only this module imports azure-cosmos, and only when a
watch runs, so that the triggers' cold start does not grow.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Optional
from urllib.parse import urlparse

from .envelope import is_envelope
from .settings import (ALL_VERSIONS_AND_DELETES, ALL_VERSIONS_LEASE_SUFFIX, LATEST_VERSION, SettingsError,
                       TriggerSettings, WatchSettings)

log = logging.getLogger("cache_invalidator")

HEALTHY, STALE, BEHIND, MISSING, UNREADABLE = "healthy", "stale", "behind", "missing", "unreadable"
_LEVELS = {HEALTHY: logging.INFO, STALE: logging.WARNING, BEHIND: logging.WARNING,
           MISSING: logging.ERROR, UNREADABLE: logging.ERROR}
# A region's lease prefix is `<cluster>-<container>`; without a CLUSTER_ID it is `<container>`.
NO_CLUSTER = "(none)"
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


# -- what a lease says --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Lease:
    """One lease document, in either processor's shape."""

    lease_id: str
    token: str
    owner: Optional[str]
    renewed_at: Optional[float]  # epoch seconds of `timestamp`, else of `_ts`
    continuation: Optional[str]  # the etag the lease's next read starts from; None before its first checkpoint
    feed_range: Optional[tuple[str, str]]  # (min, max) effective partition keys
    shape: str  # "dotnet" or "java"
    mode: Optional[str] = None  # the change feed mode the lease records (lease_mode), None when it records none yet


def read_lease(document: Mapping) -> Lease:
    """A lease document as the .NET (DocumentServiceLeaseCore) or Java (ServiceItemLeaseV1) processor writes it."""
    java = document.get("version") == 1 and "feedRange" in document
    continuation = document.get("ContinuationToken")
    owner = document.get("Owner")
    return Lease(
        lease_id=str(document.get("id")),
        token=str(document.get("LeaseToken") or str(document.get("id", "")).rpartition("..")[2]),
        owner=str(owner) if owner else None,
        renewed_at=_renewal_time(document),
        continuation=etag_of(continuation) if isinstance(continuation, str) and continuation else None,
        feed_range=_range_of(document.get("feedRange" if java else "FeedRange")),
        shape="java" if java else "dotnet",
        mode=lease_mode(document),
    )


# The .NET processor records a lease's mode as the A-IM header value it reads with (DocumentServiceLeaseCore
# `Mode`; absent on leases older than the mode, which are latest-version: DocumentServiceLeaseManager.
# VerifyChangeFeedProcessorMode); the Java processor in its continuation's ChangeFeedStateV1 `Mode`.
_RECORDED_MODES = {"incremental feed": LATEST_VERSION, "full-fidelity feed": ALL_VERSIONS_AND_DELETES,
                   "incremental": LATEST_VERSION, "full_fidelity": ALL_VERSIONS_AND_DELETES,
                   LATEST_VERSION.lower(): LATEST_VERSION, ALL_VERSIONS_AND_DELETES.lower(): ALL_VERSIONS_AND_DELETES}


def lease_mode(document: Mapping) -> Optional[str]:
    """The change feed mode a lease document records: LatestVersion, AllVersionsAndDeletes, or None if unknown.

    The processors refuse to read a lease in another mode than the one it records, so this decides whether the
    region's app can start on it.
    """
    if document.get("version") == 1 and "feedRange" in document:  # Java's ServiceItemLeaseV1
        continuation = document.get("ContinuationToken")
        try:
            state = json.loads(base64.b64decode(continuation, validate=True).decode("utf-8"))
        except (TypeError, ValueError):
            return None  # no continuation yet: the mode is written with the first one
        mode = state.get("Mode", state.get("mode")) if isinstance(state, Mapping) else None
    else:
        mode = document.get("Mode")
        if mode is None:
            return LATEST_VERSION
    return _RECORDED_MODES.get(mode.lower()) if isinstance(mode, str) else None


def prefix_mode(prefix: str) -> str:
    """The mode this app reads a lease prefix in: AllVersionsAndDeletes under `...-avad`, else LatestVersion."""
    return ALL_VERSIONS_AND_DELETES if prefix.endswith(ALL_VERSIONS_LEASE_SUFFIX) else LATEST_VERSION


def _range_of(feed_range: Any) -> Optional[tuple[str, str]]:
    inner = feed_range.get("Range") if isinstance(feed_range, Mapping) else None
    if isinstance(inner, Mapping) and isinstance(inner.get("min"), str) and isinstance(inner.get("max"), str):
        return inner["min"], inner["max"]
    return None


def etag_of(continuation: str) -> Optional[str]:
    """The etag a lease's next read starts from.

    A .NET lease holds the etag itself (`"12"` on an account; the emulator's etag is a JSON cursor). A Java
    lease holds a base64 JSON ChangeFeedStateV1, whose `Continuation.Continuation[0].token` is the etag; a
    continuation written by azure-cosmos for Python (the tests' processor) is its base64 JSON state, with the
    etag at `continuation.continuation[0].token`.
    """
    try:
        state = json.loads(base64.b64decode(continuation, validate=True).decode("utf-8"))
    except ValueError:
        return continuation
    if not isinstance(state, Mapping):
        return continuation
    inner = state.get("Continuation", state.get("continuation"))
    tokens = inner.get("Continuation", inner.get("continuation")) if isinstance(inner, Mapping) else None
    if isinstance(tokens, list) and tokens and isinstance(tokens[0], Mapping):
        etag = tokens[0].get("token")
        return etag if isinstance(etag, str) and etag else None
    return None  # a state that starts from a time or the beginning: no checkpoint yet


def etag_lsn(etag: Optional[str]) -> Optional[int]:
    """The LSN an etag names: `"12"` on an account, `{"lsn": 12, ...}` from the emulator."""
    if not etag:
        return None
    text = etag.strip().strip('"')
    if text.isdigit():
        return int(text)
    try:
        cursor = json.loads(etag)
    except ValueError:
        return None
    lsn = cursor.get("lsn") if isinstance(cursor, Mapping) else None
    return lsn if isinstance(lsn, int) and not isinstance(lsn, bool) else None


def _renewal_time(document: Mapping) -> Optional[float]:
    stamp = document.get("timestamp")
    if isinstance(stamp, str):
        try:
            # .NET writes 7 fractional digits, Java Instant.toString() up to 9: seconds are enough.
            head, _, fraction = stamp.rstrip("Z").partition(".")
            at = datetime.fromisoformat(head + "+00:00").timestamp()
            return at + (float("0." + fraction[:6]) if fraction[:6].isdigit() else 0.0)
        except ValueError:
            pass
    ts = document.get("_ts")
    return float(ts) if isinstance(ts, (int, float)) and not isinstance(ts, bool) else None


def database_rid_of(container_rid: str) -> str:
    """The database's _rid inside a container's _rid, as the .NET SDK's change feed processor takes it.

    A container's _rid is 8 bytes, its database's 4 first, in base64 with `-` for `/` (ResourceIdentifier in
    Microsoft.Azure.Cosmos/src/Pagination/; CosmosContainerExtensions.GetMonitoredDatabaseAndContainerRidAsync
    reads it so since SDK 3.32.0). Reading the database itself would need a role on the whole database, which
    neither the app's identity nor an operator holds (docs/DEPLOY.md, "Who may do what").
    """
    try:
        raw = base64.b64decode(container_rid.replace("-", "/"), validate=True)
    except ValueError:
        raw = b""
    if len(raw) < 8:
        raise ValueError(f"{container_rid!r} is not a container's _rid")
    return base64.b64encode(raw[:4]).decode().replace("/", "-")


def lease_prefix_of(lease_id: str, marker: str, account_host: str, container: str) -> Optional[str]:
    """The lease prefix of a lease id `<prefix><host>_<database rid>_<container rid>..<token>`, None if not one of
    `container`'s. `marker` is `_<database rid>_<container rid>..`.

    The host is the account endpoint's host as the writing region's client saw it; a region may reach the account
    through another endpoint, so when the host is not this region's, the prefix ends at the container's name.
    """
    at = lease_id.find(marker)
    if at < 0:
        return None
    head = lease_id[:at]
    if account_host and head.lower().endswith(account_host.lower()):
        return head[:len(head) - len(account_host)]
    end = head.rfind(container)
    while end >= 0:
        if end == 0 or head[end - 1] == "-":
            return head[:end + len(container)]
        end = head.rfind(container, 0, end)
    return None


def region_of(prefix: str, container: str) -> Optional[str]:
    """The cluster id of a lease prefix `<cluster>-<container>`; NO_CLUSTER for `<container>`; None otherwise.
    A prefix of the all-versions-and-deletes feed ends in `-avad` besides."""
    if prefix.endswith(ALL_VERSIONS_LEASE_SUFFIX):
        prefix = prefix[:-len(ALL_VERSIONS_LEASE_SUFFIX)]
    if prefix == container:
        return NO_CLUSTER
    suffix = f"-{container}"
    if prefix.endswith(suffix) and len(prefix) > len(suffix):
        return prefix[:-len(suffix)]
    return None


# -- the estimator's arithmetic -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PendingWork:
    """The estimate for one lease: changes not yet handed to its region's function, and the first one's `_ts`."""

    changes: int
    oldest_ts: Optional[float] = None


def session_lsn(session_token: Optional[str]) -> int:
    """The LSN of a session token `<pk range id>:<version>#<global lsn>#...`, as ExtractLsnFromSessionToken; 0 if none."""
    if not session_token:
        return 0
    segments = session_token[session_token.find(":") + 1:].split("#")
    return _number(segments[1] if len(segments) >= 2 else segments[0])


def _number(text: Any) -> int:
    """As the estimator's TryConvertToNumber: 0 when the text is not a number."""
    try:
        return int(str(text))
    except (TypeError, ValueError):
        return 0


def estimate(session_token: Optional[str], first_change: Optional[Mapping],
             continuation: Optional[str] = None) -> PendingWork:
    """GetRemainingWorkAsync's estimate from a read of at most one change from the lease's continuation.

    Where the change carries no `_lsn` (the emulator writes none; an account does), the continuation's own LSN
    stands in for "the first change's LSN - 1": it is the LSN of the last change handed over. That difference,
    latest LSN less the lease's continuation LSN, is how the Java processor estimates its own lag
    (azure-sdk-for-java, changefeed/epkversion/ChangeFeedProcessorImplBase.getCurrentState).
    """
    latest = session_lsn(session_token)
    if first_change is None:
        return PendingWork(0)  # nothing after the continuation (a 304, or an empty page)
    if is_envelope(first_change):
        # The all-versions-and-deletes feed keeps a change's LSN and time in its metadata (envelope.py).
        metadata = first_change["metadata"] if isinstance(first_change["metadata"], Mapping) else {}
        first_change = {name: metadata[key] for name, key in (("_lsn", "lsn"), ("_ts", "crts")) if key in metadata}
    ts = first_change.get("_ts")
    oldest = float(ts) if isinstance(ts, (int, float)) and not isinstance(ts, bool) else None
    if "_lsn" in first_change:
        last_handed = _number(first_change.get("_lsn")) - 1
    else:
        last_handed = etag_lsn(continuation) if etag_lsn(continuation) is not None else -1
    if last_handed < 0:
        return PendingWork(1, oldest)  # as the estimator: at least this change is pending
    return PendingWork(max(0, latest - last_handed), oldest)


# -- judging ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RegionFinding:
    """What one run saw of one region's leases on one container: one log line."""

    region: str
    container: str
    status: str
    lease_prefix: Optional[str] = None
    leases: int = 0
    owners: tuple[str, ...] = ()
    unowned: int = 0
    renewed_seconds_ago: Optional[float] = None  # of the least recently renewed lease
    # The lowest LSN the leases' continuations name: a lease records where it stands, not when it got there.
    oldest_checkpoint: Optional[int] = None
    unchecked_leases: int = 0  # leases without a continuation yet
    pending_changes: Optional[int] = None
    oldest_pending_seconds: Optional[float] = None
    reason: str = ""
    mode: Optional[str] = None  # the change feed mode of the prefix; None for a region with no leases

    @property
    def level(self) -> int:
        return _LEVELS[self.status]


def judge_region(region: str, container: str, prefix: Optional[str], leases: list[Lease],
                 pending: Mapping[str, PendingWork], settings: WatchSettings, now: float, *,
                 refused: Optional[Mapping[str, str]] = None) -> RegionFinding:
    """A region's finding on one container from its leases and their estimates (keyed by lease id).

    `refused` holds, by lease id, why a lease's feed could not be read for its estimate.
    """
    if not leases:
        return RegionFinding(region, container, MISSING, prefix,
                             reason=f"no leases for lease prefix {prefix!r} or {prefix + ALL_VERSIONS_LEASE_SUFFIX!r}: "
                                    f"the region's app has never started on {container!r}, or uses another "
                                    f"CLUSTER_ID or lease container")
    mode = prefix_mode(prefix or "")
    owners = tuple(sorted({lease.owner for lease in leases if lease.owner}))
    renewals = [lease.renewed_at for lease in leases if lease.renewed_at is not None]
    renewed_ago = max(0.0, now - min(renewals)) if renewals else None
    continuations = [lease.continuation for lease in leases if lease.continuation]
    estimates = [pending[lease.lease_id] for lease in leases if lease.lease_id in pending]
    oldest_ts = [work.oldest_ts for work in estimates if work.oldest_ts is not None]
    oldest_pending = max(0.0, now - min(oldest_ts)) if oldest_ts else (0.0 if estimates else None)
    finding = dict(
        lease_prefix=prefix, leases=len(leases), owners=owners,
        unowned=sum(1 for lease in leases if not lease.owner),
        renewed_seconds_ago=None if renewed_ago is None else round(renewed_ago, 1),
        oldest_checkpoint=min((etag_lsn(c) for c in continuations if etag_lsn(c) is not None), default=None),
        unchecked_leases=len(leases) - len(continuations),
        pending_changes=sum(work.changes for work in estimates) if estimates else None,
        oldest_pending_seconds=None if oldest_pending is None else round(oldest_pending, 1),
    )
    unestimated = len(leases) - len(estimates)
    # Leases the run had no time for, or whose feed refused the read, are left out of pending_changes: say so.
    refusals = sorted({(refused or {})[lease.lease_id] for lease in leases if lease.lease_id in (refused or {})})
    why = "; ".join(refusals) or "LEASE_WATCH_TIMEOUT_SECONDS, or a continuation the account refused"
    note = f"; {unestimated} of {len(leases)} lease(s) not estimated ({why})" if unestimated else ""
    finding["mode"] = mode
    if renewed_ago is None or renewed_ago > settings.stale_seconds:
        return RegionFinding(region, container, STALE, **finding,
                             reason=_stale_reason(leases, container, owners, settings.stale_seconds, now) + note)
    if oldest_pending is not None and oldest_pending > settings.pending_seconds:
        return RegionFinding(region, container, BEHIND, **finding,
                             reason=f"oldest change not yet handed to the region's function is {oldest_pending:.0f} s "
                                    f"old, over {settings.pending_seconds} s (LEASE_WATCH_PENDING_SECONDS), while its "
                                    f"leases are renewed: its batches fail and are retried, or it cannot keep up{note}")
    return RegionFinding(region, container, HEALTHY, **finding, reason=note[2:])


def _stale_reason(leases: list[Lease], container: str, owners: tuple[str, ...], stale_seconds: int,
                  now: float) -> str:
    """What a stale region's leases show: none of them renewed, or only some, and what that means.

    A running instance renews the leases it holds every 17 s and takes over any lease not renewed for 60 s,
    so a lease older than the threshold is one that no instance holds. An expired lease keeps the name of
    its last owner: `owners` counts those names, not instances alive.
    """
    renewals = [lease.renewed_at for lease in leases if lease.renewed_at is not None]
    threshold = f"in the last {stale_seconds} s (LEASE_WATCH_STALE_SECONDS)"
    if not renewals:
        return (f"none of its {len(leases)} lease(s) records a renewal time: nothing shows that an instance of the "
                f"region's app ever held them")
    unrenewed = [now - at for at in renewals if now - at > stale_seconds]
    if len(unrenewed) < len(leases):
        return (f"{len(unrenewed)} of its {len(leases)} lease(s) not renewed {threshold}, the oldest "
                f"{max(unrenewed):.0f} s ago: the region's app runs (it renews the others), but no instance took "
                f"those over once they expired, so their part of the feed of {container!r} is not read for that region")
    named = f" (the {len(owners)} owner(s) they name held them last)" if owners else ""
    return (f"none of its {len(leases)} lease(s) renewed {threshold}, the latest {now - max(renewals):.0f} s ago: "
            f"no instance of the region's app holds them, so nothing reads the feed of {container!r} for that "
            f"region{named}")


def judge(leases_by_prefix: Mapping[str, Mapping[str, list[Lease]]], pending: Mapping[str, PendingWork],
          containers: list[str], settings: WatchSettings, now: float, *,
          refused: Optional[Mapping[str, str]] = None) -> list[RegionFinding]:
    """One finding per region, container and mode: every region found (by lease prefix), and every expected one
    (missing when it has leases of neither mode)."""
    findings = []
    for container in containers:
        by_prefix = leases_by_prefix.get(container, {})
        regions: dict[tuple[str, str], str] = {}
        for prefix in by_prefix:
            region = region_of(prefix, container)
            if region is not None:
                regions[(region, prefix_mode(prefix))] = prefix
        for region in settings.expected_regions:
            if not any(found == region for found, _ in regions):
                regions[(region, LATEST_VERSION)] = f"{region}-{container}"
        for region, mode in sorted(regions):
            prefix = regions[(region, mode)]
            findings.append(judge_region(region, container, prefix, list(by_prefix.get(prefix, [])), pending,
                                         settings, now, refused=refused))
    return findings


# -- the log line -------------------------------------------------------------------------------


@dataclasses.dataclass
class WatchRun:
    """One run: a finding per region and container, or the one finding that the leases could not be read."""

    watcher: str
    findings: list[RegionFinding]
    request_charge: float = 0.0
    duration_ms: float = 0.0
    requests: int = 0


# The watch line's fields, in the order the values are logged; `reason` last, as it holds blanks.
WATCH_FIELDS = ("watcher", "region", "container", "mode", "status", "leases", "owners", "unowned", "renewed_seconds_ago",
                "oldest_checkpoint", "unchecked_leases", "pending_changes", "oldest_pending_seconds",
                "request_charge", "duration_ms", "reason")
_WATCH_LINE = "Lease watch " + " ".join(f"{name}=%s" for name in WATCH_FIELDS)


def line_values(run: WatchRun, finding: RegionFinding) -> tuple:
    return (run.watcher, finding.region, finding.container, finding.mode or "-", finding.status, finding.leases, len(finding.owners),
            finding.unowned, finding.renewed_seconds_ago, finding.oldest_checkpoint, finding.unchecked_leases,
            finding.pending_changes, finding.oldest_pending_seconds, round(run.request_charge, 2),
            round(run.duration_ms, 1), finding.reason or "-")


def report(run: WatchRun) -> None:
    """One line per region and container, at INFO when healthy, WARNING when stale or behind, ERROR otherwise."""
    for finding in run.findings:
        values = line_values(run, finding)
        # As the batch line: the fields in the text for the host's log stream, and in the record for exporters.
        log.log(finding.level, _WATCH_LINE, *values, extra=dict(zip(WATCH_FIELDS, values)))


# -- reading (azure-cosmos, imported on the first run) ------------------------------------------


class WatchUnreadable(Exception):
    """The leases could not be read; the message says what failed and names the setting to check."""


class _Charges:
    """Sums the request charge of every response, as the estimator sums its reads' charges."""

    def __init__(self):
        self.total = 0.0
        self.requests = 0
        self.last_headers: Mapping = {}

    def __call__(self, response) -> None:
        headers = response.http_response.headers
        self.requests += 1
        self.last_headers = headers
        try:
            self.total += float(headers.get("x-ms-request-charge") or 0)
        except ValueError:
            pass


def open_client(env: Mapping[str, str], trigger: TriggerSettings, timeout: float, *, operator: bool = False):
    """(client, endpoint, setting): an azure-cosmos client through the triggers' connection `COSMOSDB`.

    The connection string's key when COSMOSDB is set (the host prefers it too), else the managed identity named by
    COSMOSDB__credential / COSMOSDB__clientId, as the extension reads an identity-based connection. On an
    operator's machine (`check`) there is no managed identity: DefaultAzureCredential finds their sign-in.
    """
    from azure.cosmos import CosmosClient

    connection = (env.get("COSMOSDB") or "").strip()
    setting = "COSMOSDB" if connection else "COSMOSDB__accountEndpoint"
    if connection:
        pairs = dict(part.split("=", 1) for part in connection.split(";") if "=" in part)
        endpoint = pairs.get("AccountEndpoint", "").strip()
        credential: Any = next((v for k, v in pairs.items() if k.strip().lower() == "accountkey"), "")
    else:
        endpoint = (env.get("COSMOSDB__accountEndpoint") or "").strip()
        client_id = (env.get("COSMOSDB__clientId") or "").strip() or None
        if not operator and (env.get("COSMOSDB__credential") or "").strip().lower() == "managedidentity":
            from azure.identity import ManagedIdentityCredential

            credential = ManagedIdentityCredential(client_id=client_id)
        else:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential(managed_identity_client_id=client_id)
    if not urlparse(endpoint).hostname:
        raise WatchUnreadable(f"setting {setting}: no account endpoint")
    options: dict = {
        # Bounded: a run must end well within its own budget, never hold a worker thread long.
        "connection_timeout": max(1, int(timeout / 2)), "timeout": timeout, "retry_total": 2,
        "retry_connect": 1, "retry_read": 1, "retry_backoff_max": 2,
    }
    if trigger.preferred_locations:
        options["preferred_locations"] = [loc.strip() for loc in trigger.preferred_locations.split(",") if loc.strip()]
    if urlparse(endpoint).hostname in _LOCAL_HOSTS:
        options["connection_verify"] = False  # the emulator's self-signed certificate; nothing leaves the machine
    return CosmosClient(endpoint, credential=credential, **options), endpoint, setting


def read_region_leases(client, endpoint: str, trigger: TriggerSettings, deadline: float, charges: _Charges,
                       until: float):
    """(leases by container and prefix, pending work by lease id, why a lease's feed refused its estimate by lease
    id): the lease container read and each lease estimated.

    No lease estimate starts after `deadline`, and no request outlives `until` (both time.monotonic()).
    """
    from azure.cosmos.exceptions import CosmosHttpResponseError, CosmosResourceNotFoundError

    def hook() -> dict:
        """Every request's options: the charge counter, and what is left of the run's time as its timeout."""
        return {"raw_response_hook": charges, "timeout": max(0.5, until - time.monotonic())}
    # The database is never read: its _rid is in the containers' (database_rid_of).
    database = client.get_database_client(trigger.database)
    monitored = {}
    for setting, name in (("COSMOSDB_WHISKS_CONTAINER", trigger.whisks_container),
                          ("COSMOSDB_SUBJECTS_CONTAINER", trigger.subjects_container)):
        container = database.get_container_client(name)
        try:
            monitored[name] = (container, container.read(**hook())["_rid"])
        except CosmosResourceNotFoundError:
            raise WatchUnreadable(f"container {name!r} ({setting}) does not exist in database "
                                  f"{trigger.database!r} (COSMOSDB_NAME)") from None
    lease_container = database.get_container_client(trigger.lease_container)
    try:
        documents = list(lease_container.query_items("SELECT * FROM c", enable_cross_partition_query=True, **hook()))
    except CosmosResourceNotFoundError:
        raise WatchUnreadable(f"lease container {trigger.lease_container!r} (COSMOSDB_LEASE_CONTAINER) does not "
                              f"exist in database {trigger.database!r}") from None
    host = urlparse(endpoint).hostname or ""
    by_container: dict[str, dict[str, list[Lease]]] = {}
    leases_of: dict[str, tuple] = {}
    for name, (container, rid) in monitored.items():
        marker = f"_{database_rid_of(rid)}_{rid}.."
        groups = by_container.setdefault(name, {})
        for document in documents:
            lease_id = document.get("id")
            if not isinstance(lease_id, str):
                continue
            prefix = lease_prefix_of(lease_id, marker, host, name)
            if prefix is None:
                continue
            lease = read_lease(document)
            groups.setdefault(prefix, []).append(lease)
            leases_of[lease.lease_id] = (container, rid, lease, lease.mode or prefix_mode(prefix))
    pending: dict[str, PendingWork] = {}
    refused: dict[str, str] = {}
    for lease_id, (container, rid, lease, mode) in sorted(leases_of.items()):
        if time.monotonic() > deadline:
            break  # the leases left unestimated show no pending count; the renewals are judged all the same
        try:
            pending[lease_id] = pending_work(container, rid, lease, hook(), mode=mode)
        except CosmosHttpResponseError as exc:
            # One lease's feed refused: that lease goes unestimated, and the finding says why.
            if mode == ALL_VERSIONS_AND_DELETES and exc.status_code == 400:
                # An account without continuous backup or the feature, or a continuation the feed no longer
                # holds (older than the backup window) or never wrote: the account's own words say which.
                said = (str(getattr(exc, "message", None) or exc).strip().splitlines() or [""])[0][:160]
                refused[lease_id] = (f"the account refused the all-versions-and-deletes read (400: {said}); "
                                     f"see docs/DEPLOY.md")
            log.debug("Lease watch: lease %s not estimated: %s", lease_id, type(exc).__name__)
        except ValueError as exc:  # a continuation the SDK cannot take
            log.debug("Lease watch: lease %s not estimated: %s", lease_id, type(exc).__name__)
    return by_container, pending, refused


def pending_work(container, container_rid: str, lease: Lease, request: dict, *,
                 mode: str = LATEST_VERSION) -> PendingWork:
    """The estimator's read: at most one change from the lease's continuation, over the lease's feed range, in the
    lease's change feed mode.

    `request` holds the read's options: `raw_response_hook` (a _Charges) and `timeout`.
    """
    if lease.continuation is None:
        return PendingWork(1)  # as the estimator: no continuation yet, so at least one change may be pending
    charges = request["raw_response_hook"]
    options: dict = {"max_item_count": 1, **request}
    if lease.feed_range is not None:
        # azure-cosmos resumes a feed range from its own continuation form: the lease's etag and range in it.
        low, high = lease.feed_range
        scope = {"min": low, "max": high, "isMinInclusive": True, "isMaxInclusive": False}
        state = {"v": "v2", "containerRid": container_rid, "mode": mode, "startFrom": {"Type": "Now"},
                 "continuation": {"v": "v2", "rid": container_rid,
                                  "continuation": [{"token": lease.continuation, "range": scope}],
                                  "Range": scope}}
        options["continuation"] = base64.b64encode(json.dumps(state).encode()).decode()
    else:
        # azure-cosmos refuses a partition key range in the all-versions-and-deletes mode: such a lease goes unestimated.
        if mode == ALL_VERSIONS_AND_DELETES:
            raise ValueError("a partition-key-range lease of the all-versions-and-deletes feed")
        options["partition_key_range_id"] = lease.token
        options["continuation"] = lease.continuation
    page = next(container.query_items_change_feed(**options).by_page(), None)
    changes = list(page) if page is not None else []
    session = charges.last_headers.get("x-ms-session-token")
    return estimate(session, changes[0] if changes else None, lease.continuation)


class LeaseWatch:
    """The timer function's work: settings parsed on the first run, one client kept between runs."""

    def __init__(self, env: Mapping[str, str], trigger: TriggerSettings, *, operator: bool = False):
        self._env = env
        self._trigger = trigger
        self._operator = operator  # run by `check` on an operator's machine, not in the Function App
        self._settings: "WatchSettings | SettingsError | None" = None
        self._client = None
        self._lock = threading.Lock()

    def run(self, now: Optional[float] = None) -> WatchRun:
        """Reads and judges every region's leases, logs one line per region and container; never raises."""
        run = self.look(now)
        report(run)
        return run

    def look(self, now: Optional[float] = None) -> WatchRun:
        """Reads and judges every region's leases without logging them (`check` prints them); never raises."""
        started = time.monotonic()
        watcher = self._trigger.cluster_id or NO_CLUSTER
        charges = _Charges()
        settings = self.settings
        if isinstance(settings, SettingsError):
            run = WatchRun(watcher, [RegionFinding("*", "*", UNREADABLE, reason=str(settings))])
        else:
            # One run at a time: a slow run and the next timer tick would otherwise double the reads.
            if not self._lock.acquire(blocking=False):
                run = WatchRun(watcher, [RegionFinding("*", "*", UNREADABLE,
                                                       reason="the previous run has not ended")])
            else:
                try:
                    run = self._read_and_judge(watcher, settings, charges, started, now)
                finally:
                    self._lock.release()
        run.request_charge = charges.total
        run.requests = charges.requests
        run.duration_ms = (time.monotonic() - started) * 1000
        return run

    @property
    def settings(self) -> "WatchSettings | SettingsError":
        """The watch's settings, parsed on the first run and kept; a bad one is kept as its error, to report."""
        if self._settings is None:
            try:
                self._settings = WatchSettings.from_env(self._env)
            except SettingsError as error:
                self._settings = error
        return self._settings

    def close(self) -> None:
        self._drop_client()

    def _read_and_judge(self, watcher: str, settings: WatchSettings, charges: _Charges, started: float,
                        now: Optional[float]) -> WatchRun:
        deadline = started + settings.timeout_seconds * 0.8
        containers = [self._trigger.whisks_container, self._trigger.subjects_container]
        try:
            if self._client is None:
                self._client = open_client(self._env, self._trigger, settings.timeout_seconds,
                                           operator=self._operator)
            client, endpoint, _ = self._client
            by_container, pending, refused = read_region_leases(client, endpoint, self._trigger, deadline, charges,
                                                                until=started + settings.timeout_seconds)
        except Exception as exc:  # a failure to read is the finding; the next run opens a new client
            self._drop_client()
            return WatchRun(watcher, [RegionFinding("*", "*", UNREADABLE, reason=self._describe(exc))])
        return WatchRun(watcher, judge(by_container, pending, containers, settings,
                                       time.time() if now is None else now, refused=refused))

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client[0].close()
            except Exception:  # closing a broken client tells nothing more
                pass

    def _describe(self, exc: Exception) -> str:
        if isinstance(exc, WatchUnreadable):
            return str(exc)
        setting = "COSMOSDB" if (self._env.get("COSMOSDB") or "").strip() else "COSMOSDB__accountEndpoint"
        status = getattr(exc, "status_code", None)
        text = str(getattr(exc, "message", None) or exc).strip().splitlines()
        first = text[0][:300] if text else ""
        what = f"answered {status}" if status else "could not be read"
        return f"setting {setting}: the leases {what}: {type(exc).__name__}: {first}"


_watches: dict = {}
_watches_lock = threading.Lock()


def shared_watch(env: Mapping[str, str], trigger: TriggerSettings) -> LeaseWatch:
    """The one LeaseWatch of these trigger settings in this process, so that runs share its client."""
    with _watches_lock:
        watch = _watches.get(trigger)
        if watch is None:
            watch = _watches[trigger] = LeaseWatch(env, trigger)
        return watch
