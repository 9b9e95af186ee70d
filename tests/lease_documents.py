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
"""

from datetime import datetime, timezone
from urllib.parse import urlparse

LEASES = "cache-invalidator-lease"


def lease_timestamp():
    """A lease's `timestamp`, as DocumentServiceLeaseCore serialises it (UTC, ISO 8601)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_store_prefix(database, monitored, lease_prefix, endpoint):
    """`<lease prefix><account endpoint host>_<database rid>_<container rid>` of the monitored container."""
    host = urlparse(endpoint).hostname
    container = database.get_container_client(monitored)
    return f"{lease_prefix}{host}_{database.read()['_rid']}_{container.read()['_rid']}"


def write_leases(database, monitored, lease_prefix, endpoint, owners, *, lease_container=LEASES,
                 continuation='"12"'):
    """Writes the store's marker, its lock and one lease per partition key range of `monitored`, owned in turn
    by `owners`, each with `continuation` as its ContinuationToken. Returns the lease ids."""
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
            "ContinuationToken": continuation,
            "properties": {},
            "timestamp": lease_timestamp(),
            "Mode": "Incremental Feed",
        }
        leases.create_item(lease)
        ids.append(lease["id"])
    return ids
