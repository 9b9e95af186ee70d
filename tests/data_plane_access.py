"""Which Cosmos DB data-plane action a request needs, and whether a set of role assignments grants it.

The emulator checks no role (scripts/cosmos), but it logs every request when asked
(COSMOS_EMULATOR_REQUEST_LOG, scripts/cosmos-emulator): the tests read what a client asked
for and judge it here, against the grants infra/ makes (infra/tests hold the plan to the same
REGION_IDENTITY and OPERATOR).

From Microsoft's Azure Cosmos DB for NoSQL reference (MicrosoftDocs/azure-databases-docs,
articles/cosmos-db/nosql/security/):
- reference-data-plane-roles.md: Cosmos DB Built-in Data Reader (...0001) holds readMetadata,
  items/read, executeQuery and readChangeFeed; Built-in Data Contributor (...0002) readMetadata,
  containers/* and containers/items/*.
- reference-data-plane-actions.md, "Required metadata": readMetadata allows, at a container's scope,
  reading that container's metadata, listing its physical partitions and resolving their
  addresses; at a database's, reading the database and listing its containers; at the account's,
  listing the databases. A query through an SDK needs executeQuery and readChangeFeed.
- The account's own properties (GET /, the regions) are read by every SDK first; a principal whose
  only role is scoped to one container reads them (Azure/azure-cosmos-dotnet-v3#3638: Data Reader
  on one container, and the one request refused was the database's read).
- A read of a container's documents as a feed, with or without A-IM (OperationType ReadFeed,
  ResourceType Document), is readChangeFeed (Azure/azure-cosmos-dotnet-v3#2927).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Iterable, Optional

ACTIONS = "Microsoft.DocumentDB/databaseAccounts"
READ_METADATA = f"{ACTIONS}/readMetadata"
CONTAINERS = f"{ACTIONS}/sqlDatabases/containers"
READ_CHANGE_FEED = f"{CONTAINERS}/readChangeFeed"
EXECUTE_QUERY = f"{CONTAINERS}/executeQuery"
ITEMS = f"{CONTAINERS}/items"
# What no data-plane role grants: creating, replacing or deleting databases and containers.
CONTROL_PLANE = "control plane (no data-plane role)"

DATA_READER_ID = "00000000-0000-0000-0000-000000000001"
DATA_CONTRIBUTOR_ID = "00000000-0000-0000-0000-000000000002"
ROLES = {
    DATA_READER_ID: ("Cosmos DB Built-in Data Reader",
                     frozenset({READ_METADATA, f"{ITEMS}/read", EXECUTE_QUERY, READ_CHANGE_FEED})),
    DATA_CONTRIBUTOR_ID: ("Cosmos DB Built-in Data Contributor",
                          frozenset({READ_METADATA, f"{CONTAINERS}/*", f"{ITEMS}/*"})),
}
WRITES = {f"{ITEMS}/create", f"{ITEMS}/replace", f"{ITEMS}/upsert", f"{ITEMS}/delete", CONTROL_PLANE}

# The grants, by the container's part in the app (its name comes from the region's settings):
# each region's identity reads the two watched containers and keeps its leases;
# an operator (`check`, `replay`) reads all three.
REGION_IDENTITY = {"whisks": DATA_READER_ID, "subjects": DATA_READER_ID, "lease": DATA_CONTRIBUTOR_ID}
OPERATOR = {"whisks": DATA_READER_ID, "subjects": DATA_READER_ID, "lease": DATA_READER_ID}


@dataclasses.dataclass(frozen=True)
class Request:
    """One logged request: the method, its path by name (`/dbs/<db>/colls/<c>/...`), the headers that matter."""

    method: str
    path: str
    headers: dict
    status: int
    sent_path: str = ""

    @property
    def user_agent(self) -> str:
        return self.headers.get("user-agent", "")

    @property
    def container(self) -> Optional[str]:
        """The container the request is on or in, None for the account and databases."""
        parts = self.path.strip("/").split("/")
        return parts[3] if len(parts) >= 4 and parts[0] == "dbs" and parts[2] == "colls" else None

    @property
    def scope(self) -> str:
        """The resource whose scope must hold the action: `/`, `/dbs/<db>` or `/dbs/<db>/colls/<c>`."""
        parts = self.path.strip("/").split("/")
        if parts[0] != "dbs" or len(parts) < 2:  # the account, or its list of databases
            return "/"
        if len(parts) <= 3:  # a database, or its list of containers
            return f"/dbs/{parts[1]}"
        return f"/dbs/{parts[1]}/colls/{parts[3]}"

    @property
    def action(self) -> str:
        """The data-plane action the request needs (module docstring)."""
        parts = self.path.strip("/").split("/") if self.path.strip("/") else []
        header = self.headers.get
        if len(parts) <= 4:
            # The account, databases, a database, its containers, a container: metadata, or the control plane.
            return READ_METADATA if self.method == "GET" else CONTROL_PLANE
        kind = parts[4]
        if kind == "pkranges":
            return READ_METADATA
        if kind != "docs":
            return f"{CONTAINERS}/{kind}"  # stored procedures, conflicts, ...: nothing the app asks for
        if len(parts) == 5:
            if self.method == "GET":
                return READ_CHANGE_FEED
            is_query = (str(header("x-ms-documentdb-isquery", "")).lower() == "true"
                        or str(header("x-ms-cosmos-is-query-plan-request", "")).lower() == "true"
                        or header("content-type", "").startswith("application/query+json"))
            if is_query:
                return EXECUTE_QUERY
            return f"{ITEMS}/upsert" if str(header("x-ms-documentdb-is-upsert", "")).lower() == "true" else f"{ITEMS}/create"
        return {"GET": f"{ITEMS}/read", "PUT": f"{ITEMS}/replace", "DELETE": f"{ITEMS}/delete",
                "PATCH": f"{ITEMS}/replace"}.get(self.method, CONTROL_PLANE)


def read_log(path: Path, start: int = 0) -> list[Request]:
    """The requests logged in `path` from byte `start` on."""
    with open(path, "rb") as log:
        log.seek(start)
        lines = log.read().decode("utf-8").splitlines()
    return [Request(entry["method"], entry["by_name"], entry["headers"], entry["status"], entry["path"])
            for entry in map(json.loads, lines) if entry]


def grants_of(parts: dict, database: str, names: dict) -> list[tuple[str, str]]:
    """(role definition id, scope) of each grant of `parts` (REGION_IDENTITY or OPERATOR), with the
    containers' names from `names` ({"whisks": ..., "subjects": ..., "lease": ...})."""
    return [(role, f"/dbs/{database}/colls/{names[part]}") for part, role in parts.items()]


def _holds(actions: frozenset, action: str) -> bool:
    return action in actions or any(held.endswith("/*") and action.startswith(held[:-1]) for held in actions)


def allowed(request: Request, grants: Iterable[tuple[str, str]]) -> bool:
    """Whether one of the grants (role definition id, scope) allows the request."""
    action, scope = request.action, request.scope
    for role, granted in grants:
        if not _holds(ROLES[role][1], action):
            continue
        if action == READ_METADATA and request.path.strip("/") == "":
            return True  # the account's own properties: any readMetadata, at any scope (module docstring)
        if scope == granted or scope.startswith(granted.rstrip("/") + "/") or granted == "/":
            return True
    return False


def refused(requests: Iterable[Request], grants: Iterable[tuple[str, str]]) -> set[tuple[str, str, str]]:
    """(method, path, action) of every request the grants do not allow."""
    grants = list(grants)
    return {(r.method, r.path, r.action) for r in requests if not allowed(r, grants)}


def summary(requests: Iterable[Request], names: dict) -> dict[str, dict[str, int]]:
    """How many requests of each action went to each container part (or `account`, `database`)."""
    part_of = {name: part for part, name in names.items()}
    table: dict[str, dict[str, int]] = {}
    for request in requests:
        where = part_of.get(request.container) or ("account" if request.scope == "/" else "database")
        action = request.action.removeprefix(f"{ACTIONS}/")
        table.setdefault(where, {}).setdefault(action, 0)
        table[where][action] += 1
    return table
