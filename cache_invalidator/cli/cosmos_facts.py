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


@dataclasses.dataclass(frozen=True)
class CosmosFacts:
    """What the Cosmos DB adapter read, as plain data."""

    endpoint: str
    database_exists: bool
    database_rid: Optional[str] = None
    containers: Mapping[str, ContainerFacts] = dataclasses.field(default_factory=dict)
    # Lease documents (id, Owner, _ts), None when the lease container is missing.
    leases: Optional[list[Mapping]] = None


def cosmos_endpoint(env: Mapping[str, str]) -> tuple[Optional[str], str]:
    """(account endpoint, how the app authenticates), as the Functions host chooses: the connection string wins."""
    connection = (env.get("COSMOSDB") or "").strip()
    if connection:
        return parse_connection_string(connection).get("AccountEndpoint"), "connection string"
    endpoint = (env.get("COSMOSDB__accountEndpoint") or "").strip()
    return (endpoint or None), "DefaultAzureCredential (managed identity)"
