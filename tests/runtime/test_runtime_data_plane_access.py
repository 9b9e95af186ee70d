"""What Microsoft's change feed processor asks of Cosmos DB while it runs the app's two triggers, request by request.

The emulator logs every request (tests/cosmos_emulator.py, cosmos_requests); tests/data_plane_access.py names the
data-plane action each one needs and judges it against the grants infra/ gives a region's identity: Cosmos DB
Built-in Data Reader on whisks and subjects, Data Contributor on the lease container, nothing on the database or
the account. The processor here is the Java SDK's (devhost/trigger_listener.py); in Azure the extension runs the
.NET SDK's, whose calls are read from its source in docs/DEPLOY.md ("Who may do what"). The two differ in one
request, asserted below: the Java processor reads the database to learn its _rid, which the .NET processor takes
from the container's _rid since SDK 3.32.0 (CosmosContainerExtensions.GetMonitoredDatabaseAndContainerRidAsync).
"""

import json

from azure.cosmos import PartitionKey

from tests.data_plane_access import (READ_CHANGE_FEED, READ_METADATA, REGION_IDENTITY, WRITES, grants_of, refused,
                                     summary)
from tests.lease_documents import LEASES
from tests.written_changes import (SUBJECTS_CHANGED, SUBJECTS_CREATED, WHISKS_CHANGED, WHISKS_CREATED,
                                   app_settings_over, wait_delivered, with_containers, write)

NAMES = {"whisks": "whisks", "subjects": "subjects", "lease": LEASES}


def test_the_processor_reads_the_watched_containers_and_writes_only_its_leases(
        cosmos_emulator, cosmos_database, kafka_broker, topic, start_instance, cosmos_requests, record_property):
    database = with_containers(cosmos_database)
    # As a deployment has it: the lease container exists, and the app may not create it.
    database.create_container(LEASES, partition_key=PartitionKey(path="/id"))
    write(database, "whisks", WHISKS_CREATED)
    write(database, "subjects", SUBJECTS_CREATED)
    settings = app_settings_over(cosmos_emulator, database, kafka_broker, topic, COSMOSDB_FEED_POLL_DELAY_MS="100",
                                 COSMOSDB_CREATE_LEASE_CONTAINER="false")
    cosmos_requests.mark()
    instance = start_instance(settings, "instance-1")
    wait_delivered([instance], database)
    write(database, "whisks", WHISKS_CHANGED)
    write(database, "subjects", SUBJECTS_CHANGED)
    wait_delivered([instance], database)
    instance.close()  # releases its leases, as a host that shuts down
    asked = [r for r in cosmos_requests.requests() if "java" in r.user_agent]

    table = summary(asked, NAMES)
    record_property("processor_requests_by_container_and_action", json.dumps(table, sort_keys=True))
    print("\nrequests of Microsoft's (Java) change feed processor, by container and action:\n"
          + json.dumps(table, indent=1, sort_keys=True))
    # The one request a region's grants refuse: the database's read, which the .NET processor does not make.
    grants = grants_of(REGION_IDENTITY, database.id, NAMES)
    assert refused(asked, grants) == {("GET", f"/dbs/{database.id}", READ_METADATA)}
    # The watched containers: metadata and change feeds read, nothing written.
    watched = {r.action for r in asked if r.container in ("whisks", "subjects")}
    assert READ_CHANGE_FEED in watched and watched & WRITES == set(), watched
    # The lease container: the leases created, renewed, checkpointed and released.
    leases = {r.action.rsplit("/", 1)[1] for r in asked if r.container == LEASES}
    assert {"create", "replace"} <= leases, leases
