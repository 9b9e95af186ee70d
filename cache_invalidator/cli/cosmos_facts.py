"""What the Cosmos DB adapter (cosmos.py) hands the judge (check.py), as plain data.

Both import this module and neither imports the other for it: the adapter
reads an account into these facts, check.py judges them, and tests hand
check.py facts without an account.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Optional

from .report import parse_connection_string


@dataclasses.dataclass(frozen=True)
class ContainerFacts:
    """What Cosmos DB says about a container; `exists` False when it answered 404."""

    name: str
    exists: bool
    rid: Optional[str] = None
    partition_key_paths: tuple[str, ...] = ()
    # The container's defaultTtl: None when time to live is off, -1 when on without a default.
    default_ttl: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class CosmosFacts:
    """What the Cosmos DB adapter read, as plain data."""

    endpoint: str
    # None: no container was found and the account refused to read the database (a role on its containers only).
    database_exists: Optional[bool]
    database_rid: Optional[str] = None
    containers: Mapping[str, ContainerFacts] = dataclasses.field(default_factory=dict)
    # Lease documents (id, Owner, _ts), None when the lease container is missing.
    leases: Optional[list[Mapping]] = None


@dataclasses.dataclass(frozen=True)
class FeedProbe:
    """Whether the account serves a container's all-versions-and-deletes change feed, from one read from now."""

    container: str
    served: bool
    status: Optional[int] = None  # the refusal's HTTP status
    message: str = ""  # the refusal's first line
    request_charge: float = 0.0


def cosmos_endpoint(env: Mapping[str, str]) -> tuple[Optional[str], str]:
    """(account endpoint, how the app authenticates), as the Functions host chooses: the connection string wins."""
    connection = (env.get("COSMOSDB") or "").strip()
    if connection:
        return parse_connection_string(connection).get("AccountEndpoint"), "connection string"
    endpoint = (env.get("COSMOSDB__accountEndpoint") or "").strip()
    return (endpoint or None), "DefaultAzureCredential (managed identity)"


# -- a sample of the change feed, for what OpenWhisk's controllers write ----------------------


DEFAULT_SAMPLE_WINDOW_SECONDS = 24 * 3600
DEFAULT_SAMPLE_MAX_DOCUMENTS = 1000
DEFAULT_SAMPLE_MAX_REQUEST_UNITS = 100.0
# A soft delete must outlive the longest outage of a region's app plus how far back a replay reaches.
DEFAULT_MIN_SOFT_DELETE_TTL = 24 * 3600


@dataclasses.dataclass(frozen=True)
class FeedSampleBounds:
    """How far back, and how much, `check` reads of each container's change feed."""

    window_seconds: int
    max_documents: int
    max_request_units: float


@dataclasses.dataclass(frozen=True)
class ChangeFacts:
    """One change of the sample, reduced to what is judged: never the document (subjects hold API keys)."""

    ts: Optional[int]
    deleted: bool
    # The document's own ttl when it is a whole number, else None.
    ttl: Optional[int]
    # `_clusterId` when it is a string, else None.
    cluster_id: Optional[str]


@dataclasses.dataclass(frozen=True)
class ChangeFeedSample:
    """The changes of one container whose _ts lies in the window, and what reading them cost."""

    container: str
    since: int
    changes: tuple[ChangeFacts, ...]
    documents_read: int
    request_charge: float
    # "documents" or "request units" when a bound stopped the reading, None when every feed range ended.
    stopped_by: Optional[str] = None


def change_facts(document: object) -> ChangeFacts:
    """The facts of one change-feed document; anything unexpected is simply absent."""
    if not isinstance(document, Mapping):
        return ChangeFacts(None, False, None, None)
    ts, ttl, cluster_id = document.get("_ts"), document.get("ttl"), document.get("_clusterId")
    return ChangeFacts(
        ts=ts if type(ts) is int else None,
        deleted=document.get("_deleted") is True,
        ttl=ttl if type(ttl) is int else None,
        cluster_id=cluster_id if isinstance(cluster_id, str) else None,
    )
