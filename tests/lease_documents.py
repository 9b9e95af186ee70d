"""The lease container's documents, as the Cosmos DB extension's change feed processor writes them.

The format is that of Microsoft.Azure.Cosmos, the .NET SDK v3 (Azure/azure-cosmos-dotnet-v3), whose change
feed processor the Functions host's Cosmos DB extension runs:

- ids: `GetLeasePrefix` (ChangeFeedProcessor/Utils/CosmosContainerExtensions.cs) makes the store prefix
  `<lease prefix><account endpoint host>_<database rid>_<container rid>`; `GetPartitionLeasePrefix`
  (LeaseManagement/DocumentServiceLeaseStoreManagerOptions.cs) adds `..`, and
  `DocumentServiceLeaseManagerCosmos.CreateLeaseIfNotExistAsync(PartitionKeyRange, ...)` the partition key
  range's id as the lease token;
- a lease's fields: `DocumentServiceLeaseCore` (LeaseManagement/DocumentServiceLeaseCore.cs): id, version
  (0, `DocumentServiceLeaseVersion.PartitionKeyRangeBasedLease`), LeaseToken, FeedRange (a `FeedRangeEpk`),
  Owner, ContinuationToken, properties, timestamp, and Mode ("Incremental Feed" for the latest-version feed);
- the store's marker `<store prefix>.info` ({"id"}) and initialization lock `<store prefix>.lock` ({"id", "ttl"})
  (LeaseManagement/DocumentServiceLeaseStoreCosmos.cs).

The Functions host passes the trigger's leaseContainerPrefix as the lease prefix.

Microsoft's Java processor (Azure/azure-sdk-for-java, sdk/cosmos/azure-cosmos/src/main/java/com/azure/cosmos/
implementation/changefeed/) writes its EPK-based leases otherwise (`write_java_leases`), as
epkversion/ServiceItemLeaseV1.java serialises them: id `<store prefix>..<min>-<max>`, the store prefix made
as .NET makes it, with resource ids (epkversion/ChangeFeedProcessorImplBase.getLeasePrefix), and the lease
token from the range's bounds (epkversion/LeaseStoreManagerImpl.createLeaseIfNotExist), LeaseToken, Owner,
timestamp (an Instant's text), version 1 (LeaseVersion.EPK_RANGE_BASED_LEASE), feedRange ({"Range": ...}) and a
ContinuationToken that is base64 JSON of a ChangeFeedStateV1 (common/ChangeFeedStateV1.populatePropertyBag:
V, Rid, Mode, StartFrom, Continuation; the continuation's own bag, feedranges/
FeedRangeCompositeContinuationImpl.populatePropertyBag: V, Rid, Continuation = [{token, range}], Range). The
names of the bags' keys are Constants.Properties (CHANGE_FEED_STATE_*, FEED_RANGE_COMPOSITE_CONTINUATION_*).
"""

import base64
import json
from datetime import datetime, timedelta, timezone
from urllib.parse import urlparse

from azure.core import MatchConditions

LEASES = "cache-invalidator-lease"


def lease_timestamp(seconds_ago=0.0):
    """A lease's `timestamp`, as DocumentServiceLeaseCore serialises it (UTC, ISO 8601)."""
    return (datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_store_prefix(database, monitored, lease_prefix, endpoint):
    """`<lease prefix><account endpoint host>_<database rid>_<container rid>` of the monitored container."""
    host = urlparse(endpoint).hostname
    container = database.get_container_client(monitored)
    return f"{lease_prefix}{host}_{database.read()['_rid']}_{container.read()['_rid']}"


def write_leases(database, monitored, lease_prefix, endpoint, owners, *, lease_container=LEASES,
                 continuation='"12"', renewed_seconds_ago=0.0, mode="Incremental Feed"):
    """Writes the store's marker, its lock and one lease per partition key range of `monitored`, owned in turn
    by `owners`, each with `continuation` as its ContinuationToken (a text, or a callable of the range's
    (min, max) giving one) and `mode` as its Mode ("Full-Fidelity Feed" for the all-versions-and-deletes
    feed: the A-IM header value DocumentServiceLeaseManager compares). Returns the lease ids."""
    store = lease_store_prefix(database, monitored, lease_prefix, endpoint)
    container = database.get_container_client(monitored)
    leases = database.get_container_client(lease_container)
    leases.create_item({"id": f"{store}.info"})
    leases.create_item({"id": f"{store}.lock", "ttl": 60})
    ids = []
    # The partition key ranges, as the processor reads them (GET .../pkranges); no public call of azure-cosmos has them.
    ranges = container.client_connection._ReadPartitionKeyRanges(container.container_link)
    for i, pk_range in enumerate(ranges):
        lease = {
            "id": f"{store}..{pk_range['id']}",
            "version": 0,
            "LeaseToken": pk_range["id"],
            "FeedRange": {"Range": {"min": pk_range["minInclusive"], "max": pk_range["maxExclusive"],
                                    "isMinInclusive": True, "isMaxInclusive": False}},
            "Owner": owners[i % len(owners)],
            "ContinuationToken": (continuation((pk_range["minInclusive"], pk_range["maxExclusive"]))
                                  if callable(continuation) else continuation),
            "properties": {},
            "timestamp": lease_timestamp(renewed_seconds_ago),
            "Mode": mode,
        }
        leases.create_item(lease)
        ids.append(lease["id"])
    return ids


def write_java_leases(database, monitored, lease_prefix, endpoint, owners, continuation, *,
                      lease_container=LEASES, mode="INCREMENTAL"):
    """Writes one EPK-based lease per partition key range of `monitored` as the Java processor's
    ServiceItemLeaseV1, owned in turn by `owners`; `continuation((min, max))` gives each range's etag, and
    `mode` the state's Mode (ChangeFeedMode's name: FULL_FIDELITY for the all-versions-and-deletes feed).
    Returns the lease ids."""
    store = lease_store_prefix(database, monitored, lease_prefix, endpoint)
    container = database.get_container_client(monitored)
    rid = container.read()["_rid"]
    leases = database.get_container_client(lease_container)
    ids = []
    ranges = container.client_connection._ReadPartitionKeyRanges(container.container_link)
    for i, pk_range in enumerate(ranges):
        low, high = pk_range["minInclusive"], pk_range["maxExclusive"]
        scope = {"min": low, "max": high, "isMinInclusive": True, "isMaxInclusive": False}
        state = {"V": 1, "Rid": rid, "Mode": mode, "StartFrom": {"Type": "NOW"},
                 "Continuation": {"V": 1, "Rid": rid,
                                  "Continuation": [{"token": continuation((low, high)), "range": scope}],
                                  "Range": scope}}
        lease = {
            "id": f"{store}..{low}-{high}",
            "LeaseToken": f"{low}-{high}",
            "ContinuationToken": base64.b64encode(json.dumps(state).encode()).decode(),
            # Instant.toString(): nanoseconds where the clock has them.
            "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f000Z"),
            "Owner": owners[i % len(owners)],
            "version": 1,
            "feedRange": {"Range": scope},
        }
        leases.create_item(lease)
        ids.append(lease["id"])
    return ids


def renew_leases(database, ids, *, lease_container=LEASES):
    """Renews the leases as their owner does: a new timestamp, replaced only if nobody changed the lease since it
    was read (DocumentServiceLeaseManagerCosmos.RenewAsync through DocumentServiceLeaseUpdaterCosmos)."""
    leases = database.get_container_client(lease_container)
    for lease_id in ids:
        document = leases.read_item(lease_id, partition_key=lease_id)
        leases.replace_item(lease_id, {**document, "timestamp": lease_timestamp()}, etag=document["_etag"],
                            match_condition=MatchConditions.IfNotModified)


def feed_range_of(bounds):
    low, high = bounds
    return {"Range": {"min": low, "max": high, "isMinInclusive": True, "isMaxInclusive": False}}


class Checkpoints:
    """The etag a processor would checkpoint after handing the first `handed` changes of each feed range.

    A continuation for write_leases or write_java_leases: called with a range's (min, max), it reads that range's
    change feed and gives the read's `etag` response header, which the .NET processor stores as the lease's
    ContinuationToken (AutoCheckpointer, after the delegate returned). `count` adds up the changes handed.
    """

    def __init__(self, container, handed=None):
        self.container = container
        self.handed = handed  # None: every change so far
        self.count = 0  # changes handed over, across the ranges

    def __call__(self, bounds):
        headers = []
        # Copied at once: the SDK later replaces the etag in the same headers with its own continuation form.
        hook = lambda response: headers.append(dict(response.http_response.headers))  # noqa: E731
        if self.handed is None:
            pages = self.container.query_items_change_feed(feed_range=feed_range_of(bounds), start_time="Now",
                                                           raw_response_hook=hook).by_page()
        else:
            pages = self.container.query_items_change_feed(feed_range=feed_range_of(bounds), start_time="Beginning",
                                                           max_item_count=self.handed, raw_response_hook=hook).by_page()
        self.count += len(list(next(pages, [])))
        return headers[-1]["etag"]
