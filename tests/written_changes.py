"""The documents the change-feed tests write into Cosmos DB, the invalidations each must yield, and a region's settings.

Shared by tests/test_change_feed.py (the app called directly) and tests/runtime/test_runtime_trigger_listener.py
(Microsoft's change feed processor, through Microsoft's worker runtime). Every document of one write phase
yields keys that no other document of that phase yields, so a topic must hold exactly the expected messages:
none missing, none twice unless a batch was handed again.
"""

from devhost.trigger_listener import wait_for
from tests.app_loading import BASE_SETTINGS
from tests.contract import contract_json

# How long a test waits for every written change to be handed and answered ok.
DELIVERY_TIMEOUT = 120.0
DEADLINE = "2"  # KAFKA_DELIVERY_TIMEOUT_SECONDS: a failed batch fails fast
MAX_ITEMS = "3"  # COSMOSDB_MAX_ITEMS_PER_INVOCATION: several batches per feed range
FUNCTIONS = {"invalidate_whisks": "whisks", "invalidate_subjects": "subjects"}

# (document, the keys it must invalidate). Actions in packages, packages, rules, limits, subjects.
WHISKS_CREATED = [({"id": "guest|hello", "exec": {"kind": "nodejs:20"}}, ["guest/hello"]),
                  ({"id": "guest|pkg"}, ["guest/pkg"]),
                  ({"id": "guest|pkg|hello"}, ["guest/pkg/hello"]),
                  ({"id": "guest|rule1", "trigger": "/guest/t1", "action": "/guest/hello"}, ["guest/rule1"])]
WHISKS_CREATED += [({"id": f"ns{i}|action{i}", "version": "0.0.1"}, [f"ns{i}/action{i}"]) for i in range(16)]
SUBJECTS_CREATED = [
    # The subject's own key and its namespace's are the same message here: sent once.
    ({"id": "alice", "subject": "alice", "namespaces": [{"name": "alice", "uuid": "u-alice", "key": "k-alice"},
                                                        {"name": "team-a", "uuid": "u-team", "key": "k-team"}]},
     ["alice", "team-a"]),
    ({"id": "carol", "subject": "carol", "namespaces": [{"name": "carol-ns", "uuid": "u-c", "key": "k-c"}]},
     ["carol", "carol-ns"]),
    ({"id": "guest|limits", "concurrentInvocations": 30}, ["guest/limits", "guest"]),
]
SUBJECTS_CREATED += [({"id": f"user{i}", "subject": f"user{i}", "namespaces": [{"name": f"user{i}-ns"}]},
                      [f"user{i}", f"user{i}-ns"]) for i in range(8)]
# Written after the creates were checkpointed: updates and soft deletes (OpenWhisk's store deletes so).
WHISKS_CHANGED = [({"id": "guest|hello", "exec": {"kind": "python:3.11"}}, ["guest/hello"]),
                  ({"id": "guest|pkg|hello", "_deleted": True}, ["guest/pkg/hello"]),
                  ({"id": "ns3|action3", "version": "0.0.2"}, ["ns3/action3"])]
SUBJECTS_CHANGED = [
    ({"id": "alice", "subject": "alice", "namespaces": [{"name": "alice"}, {"name": "team-b"}]}, ["alice", "team-b"]),
    ({"id": "carol", "subject": "carol", "_deleted": True, "namespaces": [{"name": "carol-ns"}]}, ["carol", "carol-ns"]),
    ({"id": "guest|limits", "concurrentInvocations": 60, "_deleted": True}, ["guest/limits", "guest"]),
]
# The poison a container can hold: namespace entries without a string name yield no key, the subject's own
# key is still sent. An id with '/' cannot be written: azure-cosmos refuses it before sending ("Id contains
# illegal chars."), as the service does, so it never reaches a change feed.
POISON_SUBJECTS = [({"id": "bob", "subject": "bob", "namespaces": [{"uuid": "no-name"}, "junk", {"name": 7}, []]},
                    ["bob"])]


def message(key):
    """The contract's message for a key, as (Kafka key, value)."""
    return key, contract_json({"instanceId": "cache-invalidator", "key": {"mainId": key}})


def expected_messages(*phases):
    """Every message the phases' documents must yield, sorted."""
    return sorted(message(key) for phase in phases for _, keys in phase for key in keys)


def with_containers(database):
    """The database with whisks and subjects; the lease container is left to the trigger to create."""
    from azure.cosmos import PartitionKey

    for name in FUNCTIONS.values():
        database.create_container(name, partition_key=PartitionKey(path="/id"))
    return database


def write(database, container, phase):
    """Upserts the phase's documents into the container, in order."""
    client = database.get_container_client(container)
    for document, _ in phase:
        client.upsert_item(document)


REGIONS = ("westeurope", "eastus")
# Each document stamped by one cluster, by the other, or by none.
STAMPED_WHISKS = [({"id": f"guest|{stamp or 'nobody'}{i}", **({"_clusterId": stamp} if stamp else {})},
                   [f"guest/{stamp or 'nobody'}{i}"]) for stamp in (*REGIONS, None) for i in range(5)]
STAMPED_SUBJECTS = [({"id": f"{stamp or 'nobody'}-user{i}", "namespaces": [{"name": f"{stamp or 'nobody'}-ns{i}"}],
                     **({"_clusterId": stamp} if stamp else {})},
                     [f"{stamp or 'nobody'}-user{i}", f"{stamp or 'nobody'}-ns{i}"])
                    for stamp in (*REGIONS, None) for i in range(3)]


def not_stamped_by(cluster_id, phase):
    """The documents of a phase that a region with this CLUSTER_ID must invalidate."""
    return [(document, keys) for document, keys in phase if document.get("_clusterId") != cluster_id]


def app_settings_over(cosmos_emulator, database, kafka_broker, topic, **extra):
    """A region's app settings: this account and database from the beginning of the feed, the test broker, `topic`."""
    return {**BASE_SETTINGS, "COSMOSDB": cosmos_emulator.connection_string, "COSMOSDB_NAME": database.id,
            "COSMOSDB_START_FROM_BEGINNING": "true", "COSMOSDB_MAX_ITEMS_PER_INVOCATION": MAX_ITEMS,
            "KAFKA_HOSTS": kafka_broker.bootstrap, "KAFKA_TOPIC": topic, "KAFKA_DELIVERY_TIMEOUT_SECONDS": DEADLINE,
            **extra}


def written(database, *containers):
    """(id, _etag) of every document now in the containers: the changes the feed must hand over."""
    return {(row["id"], row["_etag"]) for name in containers
            for row in database.get_container_client(name).query_items(
                "SELECT c.id, c._etag FROM c", enable_cross_partition_query=True)}


def wait_delivered(instances, database, containers=("whisks", "subjects"), timeout=DELIVERY_TIMEOUT, ids=None):
    """Waits until every change now in the containers (of these ids) was handed in a batch an instance answered ok."""
    changes = {c for c in written(database, *containers) if ids is None or c[0] in ids}

    def done():
        return changes <= {c for instance in instances for c in instance.delivered()}

    try:
        wait_for(done, timeout, "every change delivered")
    except TimeoutError:
        missing = changes - {c for instance in instances for c in instance.delivered()}
        stderr = "\n".join(f"--- {i.host_name} ---\n{i.stderr}" for i in instances)
        raise AssertionError(f"{len(missing)} of {len(changes)} changes not delivered within {timeout:.0f} s, "
                             f"e.g. {sorted(missing)[:3]}\n{stderr}") from None
