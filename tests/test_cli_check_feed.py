"""`check` against Cosmos DB (the emulator): what OpenWhisk's controllers write, and the Scala service's leases.

Two deployments, each in a database of its own:
- right: whisks and subjects with time to live on (defaultTtl -1, as OpenWhisk creates them), documents written as
  controllers write them with whisk.cosmosdb.cluster-id and whisk.cosmosdb.soft-delete-ttl set (`_clusterId` on
  every change, deletes as `"_deleted": true` with a `ttl`);
- misconfigured: containers created without a default time to live, deletes done as hard deletes (the document is
  gone, and so is its change), and `_clusterId` missing or another region's, never this region's.

The emulator ignores the change feed's start time (tests/test_cosmos_emulator.py), so the sample reads each feed from
its beginning and judges only the changes whose _ts lies in the window; a real account starts at the window.
"""

import io
from urllib.parse import urlparse

import pytest
from azure.cosmos import PartitionKey

from cache_invalidator.cli.main import main
from tests.lease_documents import LEASES, lease_store_prefix, lease_timestamp, write_leases

WEEK = 7 * 86400


def run(argv, environ):
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, environ=environ, stdout=out, stderr=err)
    print(out.getvalue())  # the report, with the RU the sample charged: shown with -s
    return code, out.getvalue()


def deployment(database, default_ttl):
    for name in ("whisks", "subjects"):
        database.create_container(name, partition_key=PartitionKey(path="/id"), default_ttl=default_ttl)
    database.create_container(LEASES, partition_key=PartitionKey(path="/id"))
    return database


def settings_for(cosmos_emulator, database):
    return {"COSMOSDB": cosmos_emulator.connection_string, "COSMOSDB_NAME": database.id, "CLUSTER_ID": "westeurope",
            "KAFKA_HOSTS": "127.0.0.1:9"}


def action(name, cluster=None, **fields):
    document = {"id": f"guest|{name}", "entityType": "action", "namespace": "guest", "name": name, **fields}
    if cluster:
        document["_clusterId"] = cluster
    return document


def subject(name, cluster=None, **fields):
    document = {"id": name, "subject": name, "namespaces": [{"name": name, "uuid": f"uuid-{name}", "key": "k"}],
                **fields}
    if cluster:
        document["_clusterId"] = cluster
    return document


@pytest.fixture
def right(cosmos_emulator, cosmos_database):
    database = deployment(cosmos_database, default_ttl=-1)
    whisks, subjects = database.get_container_client("whisks"), database.get_container_client("subjects")
    whisks.upsert_item(action("hello", "westeurope"))
    whisks.upsert_item(action("bye", "eastus"))
    whisks.upsert_item(action("bye", "eastus", _deleted=True, ttl=WEEK))
    subjects.upsert_item(subject("alice", "westeurope"))
    subjects.upsert_item(subject("bob", "eastus", _deleted=True, ttl=WEEK))
    for name in ("whisks", "subjects"):
        write_leases(database, name, f"westeurope-{name}", cosmos_emulator.endpoint, ["host-a"])
    return settings_for(cosmos_emulator, database)


@pytest.fixture
def misconfigured(cosmos_emulator, cosmos_database):
    database = deployment(cosmos_database, default_ttl=None)
    whisks, subjects = database.get_container_client("whisks"), database.get_container_client("subjects")
    whisks.upsert_item(action("hello"))
    whisks.upsert_item(action("bye", "eastus"))
    whisks.upsert_item(action("gone"))
    whisks.delete_item("guest|gone", partition_key="guest|gone")  # a hard delete: nothing of it stays in the feed
    subjects.upsert_item(subject("alice"))
    for name in ("whisks", "subjects"):
        write_leases(database, name, f"westeurope-{name}", cosmos_emulator.endpoint, ["host-a"])
    return settings_for(cosmos_emulator, database)


def warnings_of(out):
    return [line.strip()[len("WARNING "):] for line in out.splitlines() if line.strip().startswith("WARNING ")]


def test_a_right_deployment_gives_no_warning(right):
    code, out = run(["check", "--no-kafka"], right)
    assert code == 0 and "WARNING" not in out and "0 warnings" in out, out
    assert "_clusterId of the changes of 'whisks': 'eastus' 1, 'westeurope' 1" in out


def test_the_sample_reports_what_it_read_and_the_ru_charged(right):
    _, out = run(["check", "--no-kafka"], right)
    lines = [line for line in out.splitlines() if "change feed of 'whisks':" in line]
    assert len(lines) == 1 and "3 change(s) in the last 24 h" not in lines[0]  # bye's two writes are one change
    assert "2 change(s) in the last 24 h, 2 document(s) read" in lines[0] and " RU charged" in lines[0], lines


def test_a_misconfigured_deployment_warns_of_each_problem_naming_openwhisks_setting(misconfigured):
    code, out = run(["check", "--no-kafka"], misconfigured)
    assert code == 0, out  # warnings: the app itself is deployed right
    warnings = warnings_of(out)
    no_ttl = [w for w in warnings if "no default time to live" in w]
    assert len(no_ttl) == 2 and all("defaultTtl -1" in w for w in no_ttl), warnings
    # No warning for it: a latest-version feed shows no hard delete, so no sample is evidence of one.
    hard = [line.strip() for line in out.splitlines() if "or the controllers hard-delete" in line]
    assert [w.split("'")[1] for w in hard] == ["whisks", "subjects"] and not [
        w for w in warnings if "hard-delete" in w], out
    assert "whisk.cosmosdb.collections.WhiskEntity.soft-delete-ttl" in hard[0]
    assert "CONFIG_whisk_cosmosdb_collections_WhiskAuth_softDeleteTtl" in hard[1]
    unstamped = [w for w in warnings if "carry no _clusterId" in w]
    assert [w.split(" change")[0] for w in unstamped] == ["1 of the 2", "1 of the 1"], warnings
    assert all("CONFIG_whisk_cosmosdb_clusterId" in w for w in unstamped)
    not_ours = [w for w in warnings if "CLUSTER_ID 'westeurope' is on none of the" in w]
    assert len(not_ours) == 2 and all("skipped_own_cluster=0" in w for w in not_ours), warnings


def test_a_short_soft_delete_ttl_is_a_warning_with_the_threshold_from_the_option(right):
    _, out = run(["check", "--no-kafka", "--min-soft-delete-ttl", "8d"], right)
    assert any(w.startswith("1 soft delete(s) of 'whisks' carry a ttl below 192 h") for w in warnings_of(out)), out


def test_the_threshold_is_the_deployments_declared_soft_delete_ttl_unless_the_option_says_otherwise(right):
    declared = {**right, "OPENWHISK_SOFT_DELETE_TTL_SECONDS": str(8 * 86400)}
    _, out = run(["check", "--no-kafka"], declared)
    assert any(w.startswith("1 soft delete(s) of 'whisks' carry a ttl below 192 h") for w in warnings_of(out)), out
    _, out = run(["check", "--no-kafka", "--min-soft-delete-ttl", "1d"], declared)
    assert not any("carry a ttl below" in w for w in warnings_of(out)), out


def test_a_declared_soft_delete_ttl_that_is_not_a_number_fails_naming_the_setting(right):
    err = io.StringIO()
    code = main(["check", "--no-kafka"], environ={**right, "OPENWHISK_SOFT_DELETE_TTL_SECONDS": "30 d"},
                stdout=io.StringIO(), stderr=err)
    assert code == 1 and "OPENWHISK_SOFT_DELETE_TTL_SECONDS" in err.getvalue() and "'30 d'" in err.getvalue()


def test_the_document_bound_stops_the_sample(right):
    _, out = run(["check", "--no-kafka", "--sample-max-documents", "1"], right)
    assert "1 change(s) in the last 24 h, 1 document(s) read" in out and "stopped at the 1-document bound" in out


def test_no_sample_reads_no_change_feed(right):
    _, out = run(["check", "--no-kafka", "--no-sample"], right)
    assert "change feed of" not in out


# -- the Scala service's leases ---------------------------------------------------------------------


def write_scala_service_leases(database, monitored, lease_prefix, endpoint, tokens=("0", "1")):
    """Lease documents as the Scala cache-invalidator's processor (azure-cosmos 3.x) wrote them.

    ChangeFeedProcessorBuilderImpl.getLeasePrefix: `<lease prefix><host>_<database id>_<container id>`, the ids being
    names (CosmosDatabase.id(), CosmosContainer.id()); LeaseStoreManagerImpl adds `..<lease token>`; a lease's fields
    are ServiceItemLease's (id, LeaseToken, Owner, ContinuationToken, timestamp); the store's marker is `.info`.
    """
    store = f"{lease_prefix}{urlparse(endpoint).hostname}_{database.id}_{monitored}"
    leases = database.get_container_client(LEASES)
    leases.create_item({"id": f"{store}.info"})
    for token in tokens:
        leases.create_item({"id": f"{store}..{token}", "LeaseToken": token, "Owner": "cache-invalidator",
                            "ContinuationToken": '"42"', "timestamp": lease_timestamp(), "properties": {}})
    return store


def test_check_reports_the_scala_services_leases_apart_from_the_apps(cosmos_emulator, right):
    database = cosmos_emulator.client().get_database_client(right["COSMOSDB_NAME"])
    store = write_scala_service_leases(database, "whisks", "westeurope-whisks", cosmos_emulator.endpoint)
    _, out = run(["check", "--no-kafka"], right)
    assert f"3 lease document(s) '{store}'... of the Scala cache-invalidator (lease prefix 'westeurope-whisks') " \
           f"for 'whisks', last written" in out
    assert "the Scala service still runs with this region's prefix" in out  # just written: as if it still ran
    ours = [line for line in out.splitlines() if "lease(s) for 'whisks' (lease prefix 'westeurope-whisks')" in line]
    assert len(ours) == 1 and ours[0].strip().startswith("ok      4 lease(s)"), ours  # the emulator's four ranges, not 6


def test_the_apps_lease_queries_find_none_of_the_scala_services_documents(cosmos_emulator, right):
    # What the .NET SDK's processor, with the app's lease prefix, reads of the lease container: the marker
    # `<store prefix>.info` (DocumentServiceLeaseStoreCosmos.IsInitializedAsync) and the leases
    # `STARTSWITH(c.id, '<store prefix>..')` (DocumentServiceLeaseContainerCosmos.GetAllLeasesAsync).
    database = cosmos_emulator.client().get_database_client(right["COSMOSDB_NAME"])
    old = write_scala_service_leases(database, "whisks", "westeurope-whisks", cosmos_emulator.endpoint)
    store = lease_store_prefix(database, "whisks", "westeurope-whisks", cosmos_emulator.endpoint)
    leases = database.get_container_client(LEASES)
    found = [row["id"] for row in leases.query_items(
        "SELECT c.id FROM c WHERE STARTSWITH(c.id, @prefix)", parameters=[{"name": "@prefix", "value": f"{store}.."}],
        enable_cross_partition_query=True)]
    assert found and not any(doc_id.startswith(old) for doc_id in found)
    markers = [row["id"] for row in leases.query_items(
        "SELECT c.id FROM c WHERE c.id = @id", parameters=[{"name": "@id", "value": f"{store}.info"}],
        enable_cross_partition_query=True)]
    assert markers == [f"{store}.info"] and not store.startswith(old) and not old.startswith(store)


def test_the_request_unit_bound_stops_the_sample(right):
    _, out = run(["check", "--no-kafka", "--sample-max-ru", "1"], right)
    lines = [line for line in out.splitlines() if "change feed of 'whisks':" in line]
    assert len(lines) == 1 and lines[0].endswith("stopped at the 1-RU bound"), lines
