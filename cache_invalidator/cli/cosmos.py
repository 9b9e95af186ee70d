"""The thin azure-cosmos adapter: a client as the Functions host makes one, facts for `check`, pages for `replay`.

Kept to the calls that need a real Cosmos DB account; what is decided from
their results lives in check.py and replay.py, which are tested without one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Optional
from urllib.parse import urlparse

from azure.core.exceptions import AzureError, ClientAuthenticationError, ServiceRequestError
from azure.cosmos import ContainerProxy, CosmosClient, DatabaseProxy
from azure.cosmos.exceptions import CosmosHttpResponseError, CosmosResourceNotFoundError

from ..lease_watch import database_rid_of
from ..settings import TriggerSettings
from .cosmos_facts import (ChangeFeedSample, ContainerFacts, CosmosFacts, FeedProbe, FeedSampleBounds, change_facts,
                           cosmos_endpoint)
from .errors import CosmosUnavailable
from .replay import stop_after_until
from .report import parse_connection_string

# Changes per page of a replay: like the triggers' COSMOSDB_MAX_ITEMS_PER_INVOCATION default.
DEFAULT_PAGE_SIZE = 1000
_EMULATOR_HOSTS = ("localhost", "127.0.0.1", "::1")


def open_client(env: Mapping[str, str], trigger: TriggerSettings, *, timeout: float) -> tuple[CosmosClient, str]:
    """(client, account endpoint): COSMOSDB's key when set, else DefaultAzureCredential for COSMOSDB__accountEndpoint."""
    endpoint, _ = cosmos_endpoint(env)
    setting = "COSMOSDB" if (env.get("COSMOSDB") or "").strip() else "COSMOSDB__accountEndpoint"
    if not endpoint:
        raise CosmosUnavailable(f"setting {setting}: no account endpoint")
    options: dict = {"connection_timeout": timeout, "timeout": max(timeout * 3, 30)}
    if trigger.preferred_locations:
        options["preferred_locations"] = [loc.strip() for loc in trigger.preferred_locations.split(",") if loc.strip()]
    if urlparse(endpoint).hostname in _EMULATOR_HOSTS:
        # The emulator's certificate is self-signed; nothing leaves the machine.
        options["connection_verify"] = False
    if setting == "COSMOSDB":
        key = next((v for k, v in parse_connection_string(env["COSMOSDB"]).items() if k.lower() == "accountkey"), "")
        credential = key
    else:
        from azure.identity import DefaultAzureCredential

        client_id = (env.get("COSMOSDB__clientId") or "").strip() or None
        credential = DefaultAzureCredential(managed_identity_client_id=client_id)
    with _reported(setting, endpoint):
        return CosmosClient(endpoint, credential=credential, **options), endpoint


@contextlib.contextmanager
def _reported(setting: str, endpoint: str):
    """Turns azure errors into CosmosUnavailable naming the setting to check."""
    try:
        yield
    except CosmosUnavailable:
        raise
    except ClientAuthenticationError as exc:
        raise CosmosUnavailable(
            f"setting {setting}: no Entra ID token for {endpoint} ({_first_line(exc)}); sign in (az login) "
            f"or set the AZURE_* variables DefaultAzureCredential reads"
        ) from None
    except CosmosHttpResponseError as exc:
        if exc.status_code == 401:
            what = "the AccountKey of COSMOSDB" if setting == "COSMOSDB" else "the Entra ID token"
            raise CosmosUnavailable(f"setting {setting}: {endpoint} rejected {what} (401)") from None
        if exc.status_code == 403:
            raise CosmosUnavailable(
                f"setting {setting}: {endpoint} refused access (403): {_first_line(exc)}; with an identity, it "
                f"needs Cosmos DB Built-in Data Reader on the whisks, subjects and lease containers "
                f"(docs/DEPLOY.md, \"Who may do what\")"
            ) from None
        raise CosmosUnavailable(f"setting {setting}: {endpoint} answered {exc.status_code}: {_first_line(exc)}") from None
    except ServiceRequestError as exc:
        raise CosmosUnavailable(f"setting {setting}: cannot reach {endpoint}: {_first_line(exc)}") from None
    except AzureError as exc:
        raise CosmosUnavailable(f"setting {setting}: {endpoint}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _setting(env: Mapping[str, str]) -> str:
    return "COSMOSDB" if (env.get("COSMOSDB") or "").strip() else "COSMOSDB__accountEndpoint"


def _container_facts(database: DatabaseProxy, name: str) -> ContainerFacts:
    try:
        properties = database.get_container_client(name).read()
    except CosmosResourceNotFoundError:
        return ContainerFacts(name, exists=False)
    paths = tuple((properties.get("partitionKey") or {}).get("paths") or ())
    default_ttl = properties.get("defaultTtl")
    return ContainerFacts(name, exists=True, rid=properties.get("_rid"), partition_key_paths=paths,
                          default_ttl=default_ttl if type(default_ttl) is int else None)


def gather_facts(env: Mapping[str, str], trigger: TriggerSettings, *, timeout: float) -> CosmosFacts:
    """Reads the three containers and the lease documents; the database only when no container was found.

    The database's _rid is taken from a container's (database_rid_of), so that a role on the three
    containers is enough (docs/DEPLOY.md, "Who may do what").
    """
    client, endpoint = open_client(env, trigger, timeout=timeout)
    with _reported(_setting(env), endpoint), client:
        database = client.get_database_client(trigger.database)
        names = dict.fromkeys([trigger.whisks_container, trigger.subjects_container, trigger.lease_container])
        containers = {name: _container_facts(database, name) for name in names}
        found = next((facts.rid for facts in containers.values() if facts.exists and facts.rid), None)
        if found is None:
            exists = _database_exists(database)
            if exists is False:
                return CosmosFacts(endpoint, database_exists=False)
            return CosmosFacts(endpoint, exists, None, containers, None)
        leases = None
        if containers[trigger.lease_container].exists:
            # Mode, or for a Java lease version, feedRange and ContinuationToken: the mode a lease records.
            leases = list(database.get_container_client(trigger.lease_container).query_items(
                "SELECT c.id, c.Owner, c._ts, c.Mode, c.version, c.feedRange, c.ContinuationToken FROM c",
                enable_cross_partition_query=True))
        return CosmosFacts(endpoint, True, database_rid_of(found), containers, leases)


def _database_exists(database: DatabaseProxy) -> Optional[bool]:
    """Whether the database exists; None when the account refuses to say (403: a role on its containers only)."""
    try:
        database.read()
    except CosmosResourceNotFoundError:
        return False
    except CosmosHttpResponseError as exc:
        if exc.status_code == 403:
            return None
        raise
    return True


def open_containers(env: Mapping[str, str], trigger: TriggerSettings, names: list[str], *,
                    timeout: float) -> tuple[CosmosClient, dict[str, ContainerProxy]]:
    """The named containers, each checked to exist."""
    client, endpoint = open_client(env, trigger, timeout=timeout)
    with _reported(_setting(env), endpoint):
        database = client.get_database_client(trigger.database)
        containers = {}
        for name in names:
            container = database.get_container_client(name)
            try:
                container.read()
            except CosmosResourceNotFoundError:
                _require_database(database, trigger.database)
                raise CosmosUnavailable(f"container {name!r} does not exist in database {trigger.database!r}") from None
            containers[name] = container
        return client, containers


def _require_database(database: DatabaseProxy, name: str) -> None:
    """Raises naming COSMOSDB_NAME when the database itself is missing: a missing container is then no news."""
    if _database_exists(database) is False:
        raise CosmosUnavailable(f"database {name!r} (COSMOSDB_NAME) does not exist")


def mark_all_versions_feeds(env: Mapping[str, str], trigger: TriggerSettings, *, timeout: float) -> dict[str, str]:
    """Where whisks' and subjects' all-versions-and-deletes feeds stand now: a continuation of each, to replay from.

    That feed can be read from now or from a continuation only, never from a time; a mark taken before a region
    moves to it lets `replay --from-mark` send what the region's new leases, which start from their own now, miss.
    """
    names = list(dict.fromkeys([trigger.whisks_container, trigger.subjects_container]))
    client, containers = open_containers(env, trigger, names, timeout=timeout)
    marks = {}
    with _reported(_setting(env), client.client_connection.url_connection), client:
        for name, container in containers.items():
            for _ in container.query_items_change_feed(mode="AllVersionsAndDeletes", start_time="Now").by_page():
                pass  # from now: every feed range answers "nothing yet" (304) once, and the state holds each one's etag
            # The state of the whole read, as the SDK's own ChangeFeedIterable._unpack takes it: a page's
            # continuation is only set when the page holds changes, and a read from now has none.
            marks[name] = container.client_connection.last_response_headers.get("etag")
    return marks


def marked_pages(container: ContainerProxy, mark: str, *, setting: str = "COSMOSDB",
                 page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[list]:
    """The container's all-versions-and-deletes changes from a mark (mark_all_versions_feeds) up to now.

    The mark holds every feed range's place, and one reading goes through them in turn, so it is read to its end:
    replay_pages leaves out changes after until_ts by their metadata.crts.
    """
    endpoint = container.client_connection.url_connection
    with _reported(setting, endpoint):
        for page in container.query_items_change_feed(continuation=mark, max_item_count=page_size).by_page():
            page = list(page)
            if page:
                yield page


def change_feed_pages(container: ContainerProxy, since: datetime, until_ts: Optional[int], *,
                      setting: str = "COSMOSDB", page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[list]:
    """The container's changes from `since`, feed range by feed range, as pages; each range up to until_ts or its end.

    A server may hand changes from before `since` too (the emulator ignores the
    start time): replay_pages leaves them out by their _ts.
    """
    endpoint = container.client_connection.url_connection
    with _reported(setting, endpoint):
        for feed_range in container.read_feed_ranges():
            pages = container.query_items_change_feed(
                feed_range=feed_range, start_time=since, max_item_count=page_size).by_page()
            yield from stop_after_until((list(page) for page in pages), until_ts)


# Changes per page of a sample: small, so that the document bound is kept closely.
_SAMPLE_PAGE_SIZE = 100


def sample_change_feeds(env: Mapping[str, str], trigger: TriggerSettings, bounds: FeedSampleBounds, *,
                        timeout: float, now: Optional[float] = None) -> dict[str, ChangeFeedSample]:
    """A bounded sample of the recent change feed of whisks and subjects; a missing container is left out."""
    client, endpoint = open_client(env, trigger, timeout=timeout)
    since = int((time.time() if now is None else now) - bounds.window_seconds)
    samples = {}
    with _reported(_setting(env), endpoint), client:
        database = client.get_database_client(trigger.database)
        for name in dict.fromkeys([trigger.whisks_container, trigger.subjects_container]):
            try:
                samples[name] = _sample(database.get_container_client(name), name, since, bounds)
            except CosmosResourceNotFoundError:
                continue
    return samples


def _sample(container: ContainerProxy, name: str, since: int, bounds: FeedSampleBounds) -> ChangeFeedSample:
    """Reads the feed ranges in turn from `since`, until each ends or a bound is reached.

    A server may hand changes from before the start time (the emulator ignores
    it): those are read and charged but not judged, as replay leaves them out.
    """
    charges: list[float] = []

    def charged(response) -> None:
        charges.append(float(response.http_response.headers.get("x-ms-request-charge") or 0))

    start = datetime.fromtimestamp(since, timezone.utc)
    changes, read, stopped_by = [], 0, None
    for feed_range in container.read_feed_ranges():
        pages = container.query_items_change_feed(
            feed_range=feed_range, start_time=start, max_item_count=min(_SAMPLE_PAGE_SIZE, bounds.max_documents),
            raw_response_hook=charged).by_page()
        for page in pages:
            for document in page:
                read += 1
                facts = change_facts(document)
                if facts.ts is None or facts.ts >= since:
                    changes.append(facts)
                if read >= bounds.max_documents:
                    stopped_by = "documents"
                    break
            if stopped_by is None and sum(charges) >= bounds.max_request_units:
                stopped_by = "request units"
            if stopped_by:
                break
        if stopped_by:
            break
    return ChangeFeedSample(name, since, tuple(changes), read, round(sum(charges), 2), stopped_by)


def probe_all_versions_feeds(env: Mapping[str, str], trigger: TriggerSettings, *,
                             timeout: float) -> dict[str, FeedProbe]:
    """Reads whisks' and subjects' all-versions-and-deletes feed from now, as the triggers would start it.

    azure-cosmos asks for it with `A-IM: Full-Fidelity Feed` and the wire format version 2021-09-15; an
    account without continuous backup or without the feature answers 400. A missing container is left out.
    """
    client, endpoint = open_client(env, trigger, timeout=timeout)
    probes = {}
    with _reported(_setting(env), endpoint), client:
        database = client.get_database_client(trigger.database)
        for name in dict.fromkeys([trigger.whisks_container, trigger.subjects_container]):
            charges: list[float] = []

            def charged(response) -> None:
                charges.append(float(response.http_response.headers.get("x-ms-request-charge") or 0))

            container = database.get_container_client(name)
            try:
                pages = container.query_items_change_feed(mode="AllVersionsAndDeletes", start_time="Now",
                                                          max_item_count=1, raw_response_hook=charged).by_page()
                next(pages, None)
            except CosmosResourceNotFoundError:
                continue
            except CosmosHttpResponseError as exc:
                if exc.status_code not in (400, 403):
                    raise
                probes[name] = FeedProbe(name, False, exc.status_code, _first_line(exc), round(sum(charges), 2))
                continue
            probes[name] = FeedProbe(name, True, request_charge=round(sum(charges), 2))
    return probes
