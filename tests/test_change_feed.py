"""From a document written to Cosmos DB to its invalidation on Kafka.

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
from tests.written_changes import (FUNCTIONS, MAX_ITEMS, POISON_SUBJECTS, REGIONS, STAMPED_SUBJECTS, STAMPED_WHISKS,
                                   SUBJECTS_CHANGED, SUBJECTS_CREATED, WHISKS_CHANGED, WHISKS_CREATED,
                                   app_settings_over, expected_messages, not_stamped_by, with_containers, write)


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


# -- one region ------------------------------------------------------------------------------------


def test_every_created_document_reaches_kafka_from_every_feed_range(cosmos_emulator, kafka_broker, topic, database,
                                                                    region_settings, start_region):
    write(database, "whisks", WHISKS_CREATED)
    write(database, "subjects", SUBJECTS_CREATED)
    processors = start_region(region_settings(topic))
    drain(processors)
    assert sorted(read_topic(kafka_broker.bootstrap, topic)) == expected_messages(WHISKS_CREATED, SUBJECTS_CREATED)
    whisks = processors["invalidate_whisks"]
    assert len(whisks.leases) == len(list(database.get_container_client("whisks").read_feed_ranges()))
    if cosmos_emulator.managed:  # four feed ranges there; a small container of a real account has one
        assert sum(1 for lease in whisks.leases if lease.batches_read) > 1, "the changes came from one range only"
    assert not whisks.failures and max(len(a.changes) for a in whisks.attempts) == int(MAX_ITEMS)


def test_updates_and_soft_deletes_after_a_checkpoint_are_invalidated_and_nothing_earlier_again(
        kafka_broker, topic, database, region_settings, start_region):
    write(database, "whisks", WHISKS_CREATED)
    write(database, "subjects", SUBJECTS_CREATED)
    processors = start_region(region_settings(topic))
    drain(processors)
    write(database, "whisks", WHISKS_CHANGED)
    write(database, "subjects", SUBJECTS_CHANGED)
    drain(processors)
    assert sorted(read_topic(kafka_broker.bootstrap, topic)) == expected_messages(
        WHISKS_CREATED, SUBJECTS_CREATED, WHISKS_CHANGED, SUBJECTS_CHANGED)


def test_a_subject_with_bad_namespace_entries_is_sent_by_its_own_key_and_the_feed_moves_past_it(
        kafka_broker, topic, database, region_settings, start_region):
    write(database, "subjects", POISON_SUBJECTS + SUBJECTS_CREATED)
    subjects = start_region(region_settings(topic), functions=["invalidate_subjects"])["invalidate_subjects"]
    subjects.run_until_idle()
    assert "bob" in subjects.handed() and not subjects.failures
    assert sorted(read_topic(kafka_broker.bootstrap, topic)) == expected_messages(POISON_SUBJECTS, SUBJECTS_CREATED)
    assert subjects.poll_round() == ["idle"] * len(subjects.leases)  # checkpointed past it


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


def test_without_start_from_beginning_new_leases_hand_only_changes_written_after_the_start(
        kafka_broker, topic, database, region_settings, start_region):
    write(database, "whisks", WHISKS_CREATED)
    settings = region_settings(topic, COSMOSDB_START_FROM_BEGINNING="false")
    whisks = start_region(settings, functions=["invalidate_whisks"])["invalidate_whisks"]
    assert whisks.poll_round() == ["idle"] * len(whisks.leases)
    write(database, "whisks", WHISKS_CHANGED)
    whisks.run_until_idle()
    assert sorted(whisks.handed()) == sorted(document["id"] for document, _ in WHISKS_CHANGED)
    assert sorted(read_topic(kafka_broker.bootstrap, topic)) == expected_messages(WHISKS_CHANGED)


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


# -- two regions over one account ----------------------------------------------------------------


@pytest.fixture
def two_regions(kafka_broker, database, region_settings, start_region):
    """Both regions' apps started over the one account, each with its own topic: {cluster id: (topic, processors)}."""
    regions = {}
    for cluster_id in REGIONS:
        topic = new_topic_name(f"cacheInvalidation-{cluster_id}")
        kafka_broker.create_topic(topic)
        regions[cluster_id] = topic, start_region(region_settings(topic, CLUSTER_ID=cluster_id), owner=f"{cluster_id}-1")
    return regions


def test_each_region_receives_exactly_the_changes_not_stamped_with_its_own_cluster_id(kafka_broker, database,
                                                                                      two_regions):
    write(database, "whisks", STAMPED_WHISKS)
    write(database, "subjects", STAMPED_SUBJECTS)
    for _, processors in two_regions.values():
        drain(processors)
    for cluster_id, (topic, _) in two_regions.items():
        assert sorted(read_topic(kafka_broker.bootstrap, topic)) == expected_messages(
            not_stamped_by(cluster_id, STAMPED_WHISKS), not_stamped_by(cluster_id, STAMPED_SUBJECTS)), cluster_id


def test_two_regions_keep_their_own_leases_and_continuations_on_one_lease_container(cosmos_emulator, database,
                                                                                   two_regions):
    write(database, "whisks", STAMPED_WHISKS)
    # Only westeurope reads; eastus's leases must stay where they were, so eastus still gets every change.
    drain(two_regions["westeurope"][1])
    west, east = two_regions["westeurope"][1]["invalidate_whisks"], two_regions["eastus"][1]["invalidate_whisks"]
    assert not {lease.document["id"] for lease in west.leases} & {lease.document["id"] for lease in east.leases}
    assert all(lease.document["id"].startswith("westeurope-whisks") for lease in west.leases)
    assert all(lease.document["id"].startswith("eastus-whisks") for lease in east.leases)
    assert set(continuations(east).values()) == {None}
    read = {lease.token for lease in west.leases if lease.batches_read}
    assert read and {token for token, continuation in continuations(west).items() if continuation} == read
    east.run_until_idle()
    assert sorted(east.handed()) == sorted(document["id"] for document, _ in STAMPED_WHISKS)
