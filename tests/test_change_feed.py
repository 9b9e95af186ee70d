"""From a document written to Cosmos DB to its invalidation on Kafka, through the tests' own change feed processor.

Microsoft's change feed processor drives the app in tests/runtime/test_runtime_trigger_listener.py: every
change, updates and soft deletes, poison, start "now", shared leases, a killed instance, two regions. What
remains here is what that processor cannot show: the leases in the format of the .NET extension, the one Azure
runs (`check` reading them, another owner resuming from their continuations), and the host's retry policy, which
hands a failed batch again whole, in place, where the Java processor gives up the lease and reads it again.

Documents are written into the whisks and subjects containers of the Cosmos DB emulator (or
COSMOSDB_TEST_CONNECTION's account) with azure-cosmos; tests/change_feed_processor.py reads their change
feed as the host's Cosmos DB trigger does (a lease per feed range in the lease container, a checkpoint
only after the function returned, a failed batch handed again) and hands each batch, as the host's JSON
text, to the function of the app loaded from function_app.py. Then the topic is read back whole.

The documents and the messages each must yield are tests/written_changes.py's: the topic must hold exactly
the expected messages, byte for byte, none missing, and none twice unless its batch was handed again.
"""

import io

import pytest

from cache_invalidator.cli.main import main
from tests.app_loading import library_invoker, load_function_app
from tests.change_feed_processor import ChangeFeedProcessor
from tests.kafka_reading import new_topic_name, read_topic
from tests.lease_documents import LEASES, lease_store_prefix
from tests.written_changes import (FUNCTIONS, WHISKS_CHANGED, WHISKS_CREATED, app_settings_over, expected_messages,
                                   with_containers, write)


@pytest.fixture
def database(cosmos_database):
    return with_containers(cosmos_database)


@pytest.fixture
def region_settings(cosmos_emulator, database, kafka_broker):
    """App settings of a region, for a topic and further settings (CLUSTER_ID, ...)."""
    return lambda topic, **extra: app_settings_over(cosmos_emulator, database, kafka_broker, topic, **extra)


@pytest.fixture
def start_region(monkeypatch):
    """Loads function_app.py with a region's settings and starts a change feed processor for each function."""
    started = []

    def start(settings, owner="host-1", functions=tuple(FUNCTIONS)):
        app = load_function_app(monkeypatch, settings)
        # In Azure each region is its own worker process. Here the apps share one, and an app reads its
        # Kafka settings from the environment on first use: read them now, while its environment is in place.
        assert app.handler.settings.kafka.topic == settings["KAFKA_TOPIC"]
        processors = {name: ChangeFeedProcessor.for_function(app, name, settings, library_invoker(app), owner=owner)
                      for name in functions}
        started.extend(processors.values())
        return {name: processor.start() for name, processor in processors.items()}

    yield start
    for processor in started:
        processor.close()


def drain(processors):
    for processor in processors.values():
        processor.run_until_idle()


def continuations(processor):
    """The ContinuationToken stored in each of the processor's leases, as the lease container holds them now."""
    leases = processor.lease_container
    return {lease.token: leases.read_item(lease.document["id"], partition_key=lease.document["id"])["ContinuationToken"]
            for lease in processor.leases}


def assert_batches_handed_again_whole(processor):
    """Each failed hand-over was followed by a successful one of the same lease and batch, with the same changes."""
    delivered = {(a.lease_token, a.batch): a.changes for a in processor.attempts if a.error is None}
    for failed in processor.failures:
        assert delivered.get((failed.lease_token, failed.batch)) == failed.changes, failed


def test_leases_are_one_per_feed_range_under_the_prefix_and_check_sees_them(cosmos_emulator, topic, database,
                                                                            region_settings, start_region):
    settings = region_settings(topic, CLUSTER_ID="westeurope")
    processors = start_region(settings)
    for name, container in FUNCTIONS.items():
        store = lease_store_prefix(database, container, f"westeurope-{container}", cosmos_emulator.endpoint)
        ids = sorted(lease.document["id"] for lease in processors[name].leases)
        ranges = list(database.get_container_client(container).read_feed_ranges())
        assert len(ids) == len(ranges) and all(i.startswith(f"{store}..") for i in ids)
    out, err = io.StringIO(), io.StringIO()
    assert main(["check", "--no-kafka"], environ=settings, stdout=out, stderr=err) == 0, out.getvalue()
    out = out.getvalue()
    assert f"ok      lease container {LEASES!r} exists with partition key /id" in out
    for name, container in FUNCTIONS.items():
        assert (f"ok      {len(processors[name].leases)} lease(s) for {container!r} (lease prefix "
                f"'westeurope-{container}'), 1 owner(s): host-1; last renewed") in out


def test_a_restarted_processor_resumes_from_the_stored_continuations(kafka_broker, topic, database, region_settings,
                                                                      start_region):
    settings = region_settings(topic)
    write(database, "whisks", WHISKS_CREATED)
    drain(start_region(settings, owner="host-1", functions=["invalidate_whisks"]))
    write(database, "whisks", WHISKS_CHANGED)
    successor = start_region(settings, owner="host-2", functions=["invalidate_whisks"])["invalidate_whisks"]
    assert {lease.document["Owner"] for lease in successor.leases} == {"host-2"}
    successor.run_until_idle()
    assert sorted(successor.handed()) == sorted(document["id"] for document, _ in WHISKS_CHANGED)
    assert sorted(read_topic(kafka_broker.bootstrap, topic)) == expected_messages(WHISKS_CREATED, WHISKS_CHANGED)


def test_a_batch_failed_for_a_missing_topic_is_not_checkpointed_and_is_handed_again_once_the_topic_exists(
        kafka_broker, database, region_settings, start_region):
    topic = new_topic_name()  # not created yet
    write(database, "whisks", WHISKS_CREATED)
    whisks = start_region(region_settings(topic), functions=["invalidate_whisks"])["invalidate_whisks"]
    before = continuations(whisks)
    outcomes = whisks.poll_round()
    assert "failed" in outcomes and "delivered" not in outcomes, outcomes
    assert all("does not exist" in str(a.error) for a in whisks.failures), whisks.failures
    assert continuations(whisks) == before  # nothing checkpointed
    kafka_broker.create_topic(topic)
    whisks.run_until_idle()
    assert_batches_handed_again_whole(whisks)
    assert sorted(read_topic(kafka_broker.bootstrap, topic)) == expected_messages(WHISKS_CREATED)


def test_batches_failed_while_the_broker_is_stopped_are_handed_again_and_nothing_is_lost(
        restartable_kafka_broker, topic, database, region_settings, start_region):
    write(database, "whisks", WHISKS_CREATED)
    whisks = start_region(region_settings(topic), functions=["invalidate_whisks"])["invalidate_whisks"]
    before = continuations(whisks)
    restartable_kafka_broker.stop()
    try:
        outcomes = whisks.poll_round()
    finally:
        restartable_kafka_broker.start()
    assert "failed" in outcomes and "delivered" not in outcomes, outcomes
    assert continuations(whisks) == before
    whisks.run_until_idle()
    assert_batches_handed_again_whole(whisks)
    arrived = read_topic(restartable_kafka_broker.bootstrap, topic)
    assert sorted(set(arrived)) == expected_messages(WHISKS_CREATED)
    # At least once: a message of a failed hand-over may still have landed, so only a retried batch's keys repeat.
    retried = {doc_id.replace("|", "/") for a in whisks.failures for doc_id, _ in a.changes}
    assert {key for key, _ in arrived if [k for k, _ in arrived].count(key) > 1} <= retried
