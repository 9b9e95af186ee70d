"""From a document written to Cosmos DB to its invalidation on Kafka, every batch through the worker runtime.

As tests/test_change_feed.py, but the app runs in its own worker process (tests/runtime/worker_host.py), one
per region: tests/change_feed_processor.py reads the change feed of the trigger the runtime indexed (its raw
binding, as the host registers it) and each batch crosses as the host sends it, an InvocationRequest with the
JSON array; a Failure response is a failed invocation, and the batch is handed again.
"""

import json

import pytest

from tests.change_feed_processor import ChangeFeedProcessor
from tests.kafka_reading import new_topic_name, read_topic
from tests.written_changes import (POISON_SUBJECTS, REGIONS, STAMPED_SUBJECTS, STAMPED_WHISKS,
                                   SUBJECTS_CHANGED, SUBJECTS_CREATED, WHISKS_CHANGED, WHISKS_CREATED,
                                   app_settings_over, expected_messages, not_stamped_by, with_containers, write)


@pytest.fixture
def database(cosmos_database):
    return with_containers(cosmos_database)


@pytest.fixture
def start_region(cosmos_emulator, database, kafka_broker, start_worker):
    """A worker for a region's app settings, and a change feed processor for each of its functions."""
    started = []

    def start(topic, **extra):
        settings = app_settings_over(cosmos_emulator, database, kafka_broker, topic, **extra)
        host = start_worker(settings)
        processors = {}
        for name, function in host.functions.items():
            trigger = next(b for b in map(json.loads, function.raw_bindings) if b["type"] == "cosmosDBTrigger")
            processors[name] = ChangeFeedProcessor(name, trigger, settings, host.invoke_documents,
                                                   owner=f"{extra.get('CLUSTER_ID', 'worker')}-1")
            started.append(processors[name])
        return {name: processor.start() for name, processor in processors.items()}

    yield start
    for processor in started:
        processor.close()


def drain(processors):
    for processor in processors.values():
        processor.run_until_idle()


def test_written_changes_reach_kafka_through_the_runtime(kafka_broker, topic, database, start_region):
    write(database, "whisks", WHISKS_CREATED)
    write(database, "subjects", POISON_SUBJECTS + SUBJECTS_CREATED)
    processors = start_region(topic)
    drain(processors)
    write(database, "whisks", WHISKS_CHANGED)
    write(database, "subjects", SUBJECTS_CHANGED)
    drain(processors)
    assert sorted(read_topic(kafka_broker.bootstrap, topic)) == expected_messages(
        WHISKS_CREATED, POISON_SUBJECTS, SUBJECTS_CREATED, WHISKS_CHANGED, SUBJECTS_CHANGED)
    assert not any(processor.failures for processor in processors.values())


def test_a_batch_failed_for_a_missing_topic_is_handed_again_through_the_runtime(kafka_broker, database, start_region):
    topic = new_topic_name()  # not created yet
    write(database, "whisks", WHISKS_CREATED)
    whisks = start_region(topic)["invalidate_whisks"]
    outcomes = whisks.poll_round()
    assert "failed" in outcomes and "delivered" not in outcomes, outcomes
    assert all("does not exist" in str(a.error) for a in whisks.failures), whisks.failures
    kafka_broker.create_topic(topic)
    whisks.run_until_idle()
    delivered = {(a.lease_token, a.batch): a.changes for a in whisks.attempts if a.error is None}
    assert all(delivered.get((a.lease_token, a.batch)) == a.changes for a in whisks.failures)
    assert sorted(read_topic(kafka_broker.bootstrap, topic)) == expected_messages(WHISKS_CREATED)


def test_each_region_receives_exactly_the_changes_not_stamped_with_its_own_cluster_id_through_the_runtime(
        kafka_broker, database, start_region):
    write(database, "whisks", STAMPED_WHISKS)
    write(database, "subjects", STAMPED_SUBJECTS)
    topics = {}
    for cluster_id in REGIONS:
        topics[cluster_id] = new_topic_name(f"cacheInvalidation-{cluster_id}")
        kafka_broker.create_topic(topics[cluster_id])
        drain(start_region(topics[cluster_id], CLUSTER_ID=cluster_id))
    for cluster_id, topic in topics.items():
        assert sorted(read_topic(kafka_broker.bootstrap, topic)) == expected_messages(
            not_stamped_by(cluster_id, STAMPED_WHISKS), not_stamped_by(cluster_id, STAMPED_SUBJECTS)), cluster_id
