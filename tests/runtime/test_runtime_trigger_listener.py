"""The app driven by Microsoft's change feed processor (Java SDK 4.81.0) against the emulator, through the worker runtime.

Each app instance is a worker (devhost/worker_host.py) and a trigger listener (devhost/trigger_listener.py):
the Java processor owns leases in the lease container, renews them, takes over expired ones, balances them across
the instances of one lease prefix, and checkpoints a lease only after its batch's invocation succeeded. The lease
intervals are short here (renew and acquire 1 s, expiry 5 s) so that a takeover happens within a test.

The emulator gives a container four feed ranges (tests/test_cosmos_emulator.py), so each function has four
leases and a region's two functions eight: two instances of a region can share them.
"""

import collections
import time

import pytest

from tests.host_driver import make_reporter
from tests.kafka_reading import new_topic_name, read_topic
from tests.lease_documents import LEASES
from devhost.trigger_listener import wait_for
from tests.written_changes import (DELIVERY_TIMEOUT, POISON_SUBJECTS, REGIONS, STAMPED_SUBJECTS, STAMPED_WHISKS,
                                   SUBJECTS_CHANGED, SUBJECTS_CREATED, WHISKS_CHANGED, WHISKS_CREATED,
                                   app_settings_over, expected_messages, not_stamped_by, wait_delivered,
                                   with_containers, write, written)

@pytest.fixture
def database(cosmos_database):
    return with_containers(cosmos_database)


@pytest.fixture
def report(request, record_property):
    return make_reporter(request, record_property)


def leases(database, prefix):
    """The lease documents (not the store's .info and .lock) whose ids start with `prefix`."""
    return [doc for doc in database.get_container_client(LEASES).read_all_items()
            if doc["id"].startswith(prefix) and "LeaseToken" in doc]


def region_settings(cosmos_emulator, database, kafka_broker, topic, **extra):
    # A short poll delay: the processor reads a lease again 100 ms after it found nothing.
    return app_settings_over(cosmos_emulator, database, kafka_broker, topic, COSMOSDB_FEED_POLL_DELAY_MS="100",
                             **extra)


def test_every_written_change_reaches_kafka(cosmos_emulator, kafka_broker, topic, database, start_instance):
    write(database, "whisks", WHISKS_CREATED)
    write(database, "subjects", POISON_SUBJECTS + SUBJECTS_CREATED)
    instance = start_instance(region_settings(cosmos_emulator, database, kafka_broker, topic), "instance-1")
    wait_delivered([instance], database)
    write(database, "whisks", WHISKS_CHANGED)
    write(database, "subjects", SUBJECTS_CHANGED)
    wait_delivered([instance], database)
    assert sorted(read_topic(kafka_broker.bootstrap, topic)) == expected_messages(
        WHISKS_CREATED, POISON_SUBJECTS, SUBJECTS_CREATED, WHISKS_CHANGED, SUBJECTS_CHANGED)
    assert instance.failed() == []


def test_a_failed_batch_is_handed_again_and_not_checkpointed(cosmos_emulator, kafka_broker, database,
                                                             start_instance):
    topic = new_topic_name()  # not created yet: every invocation fails
    write(database, "whisks", WHISKS_CREATED)
    settings = region_settings(cosmos_emulator, database, kafka_broker, topic)
    changes = written(database, "whisks")
    first = start_instance(settings, "instance-1")

    def handed_again():
        counts = collections.Counter(tuple(b.changes) for b in first.failed())
        return sum(counts.values()) >= 20 and min(counts.values()) >= 2

    # Each lease hands its first batch, which fails, again and again: the feed behind it waits.
    wait_for(handed_again, DELIVERY_TIMEOUT, "twenty failed hand-overs, each batch at least twice")
    assert all("does not exist" in b.error for b in first.failed()), first.failed()[0].error
    assert first.delivered() == []
    handed = {c for b in first.batches for c in b.changes}
    assert handed < changes, "a change behind a failed batch was handed"
    first.close()
    # A new instance starts from the leases' checkpoints: had a failed batch been checkpointed, its changes
    # would not be handed again.
    kafka_broker.create_topic(topic)
    second = start_instance(settings, "instance-2")
    wait_delivered([second], database, ("whisks",))
    assert set(second.delivered()) == changes
    assert sorted(read_topic(kafka_broker.bootstrap, topic)) == expected_messages(WHISKS_CREATED)


def test_without_start_from_beginning_only_changes_written_after_the_start_are_handed(
        cosmos_emulator, kafka_broker, topic, database, start_instance):
    write(database, "whisks", WHISKS_CREATED)
    settings = region_settings(cosmos_emulator, database, kafka_broker, topic, COSMOSDB_START_FROM_BEGINNING="false")
    instance = start_instance(settings, "instance-1")
    # A lease read once holds a continuation: from then on "now" is fixed.
    wait_for(lambda: [bool(doc.get("ContinuationToken")) for doc in leases(database, "whisks")] == [True] * 4, 60,
             "the four whisks leases read once")
    write(database, "whisks", WHISKS_CHANGED)
    wait_delivered([instance], database, ("whisks",), ids={doc["id"] for doc, _ in WHISKS_CHANGED})
    assert sorted(doc_id for doc_id, _ in instance.delivered()) == sorted(doc["id"] for doc, _ in WHISKS_CHANGED)
    assert sorted(read_topic(kafka_broker.bootstrap, topic)) == expected_messages(WHISKS_CHANGED)


def test_two_instances_of_a_region_share_its_leases(cosmos_emulator, kafka_broker, topic, database, start_instance):
    settings = region_settings(cosmos_emulator, database, kafka_broker, topic, CLUSTER_ID="westeurope")
    instances = [start_instance(settings, "instance-a"), start_instance(settings, "instance-b")]

    def owners():
        return collections.Counter(doc.get("Owner") for doc in leases(database, "westeurope-"))

    # Each instance first takes what nobody owns, then the balancer evens the counts out.
    wait_for(lambda: owners() == {"instance-a": 4, "instance-b": 4}, 60, "eight leases shared four and four")
    write(database, "whisks", WHISKS_CREATED)
    write(database, "subjects", POISON_SUBJECTS + SUBJECTS_CREATED)
    wait_delivered(instances, database)
    arrived = read_topic(kafka_broker.bootstrap, topic)
    assert sorted(set(arrived)) == sorted(set(expected_messages(WHISKS_CREATED, POISON_SUBJECTS, SUBJECTS_CREATED)))
    assert all(instance.delivered() for instance in instances), [len(i.delivered()) for i in instances]
    assert owners() == {"instance-a": 4, "instance-b": 4}


def test_an_instance_killed_mid_batch_loses_nothing_once_the_other_takes_its_leases(
        cosmos_emulator, kafka_broker, topic, database, start_instance, report):
    settings = region_settings(cosmos_emulator, database, kafka_broker, topic, CLUSTER_ID="westeurope")
    doomed, survivor = start_instance(settings, "instance-a"), start_instance(settings, "instance-b")

    def owners():
        return collections.Counter(doc.get("Owner") for doc in leases(database, "westeurope-"))

    wait_for(lambda: owners() == {"instance-a": 4, "instance-b": 4}, 60, "eight leases shared four and four")
    before = [({"id": f"guest|before{i}"}, [f"guest/before{i}"]) for i in range(100)]
    write(database, "whisks", before)
    wait_delivered([doomed, survivor], database)
    doomed.hold_answers()  # from now on its invocations run, and its handler never returns
    during = [({"id": f"guest|during{i}"}, [f"guest/during{i}"]) for i in range(200)]
    during += [({"id": f"user-during{i}", "namespaces": [{"name": f"ns-during{i}"}]},
                [f"user-during{i}", f"ns-during{i}"]) for i in range(50)]
    write(database, "whisks", during[:200])
    write(database, "subjects", during[200:])
    wait_for(lambda: doomed.held(), 30, "a batch running on the doomed instance")
    doomed.kill()
    killed_at = time.monotonic()
    held = {c for b in doomed.held() for c in b.changes}
    doomed.worker.close()
    wait_delivered([doomed, survivor], database)
    took_over = time.monotonic() - killed_at

    expected = expected_messages(before, during)
    arrived = read_topic(kafka_broker.bootstrap, topic)
    counts = collections.Counter(arrived)
    missing = [m for m in set(expected) if counts[m] == 0]
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    report(f"[SIGKILL mid-batch] {len(before) + len(during)} documents written, {len(expected)} messages "
          f"expected, {len(arrived)} arrived ({len(set(arrived) & set(expected))} distinct expected), "
          f"{len(missing)} missing, {duplicates} duplicates; {len(held)} changes held by the killed instance "
          f"in {len(doomed.held())} batches; all delivered {took_over:.1f} s after the kill")
    assert missing == []
    assert set(arrived) <= set(expected)
    assert held <= set(survivor.delivered())  # the batch the dead instance never finished was handed again
    assert owners() == {"instance-b": 8}


def test_two_regions_each_receive_exactly_the_changes_the_other_stamped(cosmos_emulator, kafka_broker, database,
                                                                        start_instance):
    write(database, "whisks", STAMPED_WHISKS)
    write(database, "subjects", STAMPED_SUBJECTS)
    topics, instances = {}, {}
    for cluster_id in REGIONS:
        topics[cluster_id] = new_topic_name(f"cacheInvalidation-{cluster_id}")
        kafka_broker.create_topic(topics[cluster_id])
        settings = region_settings(cosmos_emulator, database, kafka_broker, topics[cluster_id], CLUSTER_ID=cluster_id)
        instances[cluster_id] = start_instance(settings, f"{cluster_id}-1")
    for instance in instances.values():
        wait_delivered([instance], database)
    for cluster_id, topic in topics.items():
        assert sorted(read_topic(kafka_broker.bootstrap, topic)) == expected_messages(
            not_stamped_by(cluster_id, STAMPED_WHISKS), not_stamped_by(cluster_id, STAMPED_SUBJECTS)), cluster_id
    for cluster_id in REGIONS:  # each region its own eight leases on the one lease container
        region_leases = leases(database, f"{cluster_id}-")
        assert len(region_leases) == 8 and {doc["Owner"] for doc in region_leases} == {f"{cluster_id}-1"}


def check_findings(settings):
    """(status, text) of `check`'s Cosmos DB findings for a region's settings, the containers' time to live aside."""
    from cache_invalidator.cli.check import assess_cosmos
    from cache_invalidator.cli.cosmos import gather_facts
    from cache_invalidator.cli.report import Section
    from cache_invalidator.settings import TriggerSettings

    trigger = TriggerSettings.from_env(settings)
    section = Section("Cosmos DB")
    assess_cosmos(section, gather_facts(settings, trigger, timeout=30), trigger, trigger.cluster_id, now=time.time())
    return [(f.status, f.text) for f in section.findings if "default time to live" not in f.text]


def start_and_deliver(cosmos_emulator, kafka_broker, topic, database, start_instance, handler):
    settings = region_settings(cosmos_emulator, database, kafka_broker, topic, CLUSTER_ID="westeurope")
    instance = start_instance(settings, "westeurope-1", handler=handler)
    write(database, "whisks", WHISKS_CREATED)
    write(database, "subjects", SUBJECTS_CREATED)
    wait_delivered([instance], database)
    print(f"\n{handler} wrote:", *sorted(doc["id"] for doc in database.get_container_client(LEASES).read_all_items()),
          sep="\n  ")
    return settings


def test_check_counts_the_epk_range_leases_of_handle_latest_version_changes_as_this_regions(
        cosmos_emulator, kafka_broker, topic, database, start_instance):
    settings = start_and_deliver(cosmos_emulator, kafka_broker, topic, database, start_instance,
                                 "handleLatestVersionChanges")
    findings = check_findings(settings)
    for container in ("whisks", "subjects"):
        assert any(status == "ok" and text.startswith(
            f"4 lease(s) for {container!r} (lease prefix 'westeurope-{container}'), 1 owner(s): westeurope-1")
            for status, text in findings), findings
    # The Java processor also writes the marker `<prefix><host>_<database>_<container>.info`, where its
    # bootstrapper looks for partition-key-range leases to take over. check names it in the Scala service's
    # shape, but a marker is no renewed lease, so it is no sign of the Scala service running.
    assert [text for status, text in findings if status in ("PROBLEM", "WARNING")] == []
    for c in ("whisks", "subjects"):
        assert any(text.startswith(f"1 lease document(s) 'westeurope-{c}127.0.0.1_{database.id}_{c}'... of the Scala "
                                   f"cache-invalidator (lease prefix 'westeurope-{c}') for {c!r}: the app neither")
                   for status, text in findings), findings


def test_check_reports_the_name_based_leases_of_handle_changes_in_the_scala_services_shape(
        cosmos_emulator, kafka_broker, topic, database, start_instance):
    settings = start_and_deliver(cosmos_emulator, kafka_broker, topic, database, start_instance, "handleChanges")
    warnings = [text for status, text in check_findings(settings) if status in ("PROBLEM", "WARNING")]
    for c in ("whisks", "subjects"):  # four leases and the store's .info, named as the Scala service named them
        assert any(w.startswith(f"5 lease document(s) 'westeurope-{c}127.0.0.1_{database.id}_{c}'... of the Scala "
                                f"cache-invalidator (lease prefix 'westeurope-{c}')") for w in warnings), warnings
        assert any(w.startswith(f"no leases for {c!r}") for w in warnings), warnings
