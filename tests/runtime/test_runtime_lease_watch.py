"""The lease watch's timer function, indexed and invoked by the worker runtime as the host invokes a timer trigger.

Two regions' leases are written into the emulator as the .NET processor writes them (tests/lease_documents.py).
The worker runs westeurope's app with a stale threshold of 4 s; westeurope renews its leases, eastus's are left
to expire. The invocation carries the timer extension's TimerInfo (devhost/worker_host.py, invoke_timer).
What comes back is the worker's RpcLog stream, which is what the host writes to the app's logs and the alerts read.
"""

import time

import pytest
from azure.cosmos import PartitionKey

from tests.lease_documents import LEASES, Checkpoints, renew_leases, write_leases

# RpcLog.Level in FunctionRpc.proto.
INFORMATION, WARNING, ERROR = 2, 3, 4


@pytest.fixture
def database(cosmos_database):
    for name in ("whisks", "subjects", LEASES):
        cosmos_database.create_container(name, partition_key=PartitionKey(path="/id"))
    return cosmos_database


def watch_lines(host):
    """(level, message) of each watch line the worker sent."""
    return [(log.level, log.message) for log in host.logs if log.message.startswith("Lease watch ")]


def field(message, name):
    return message.split(f" {name}=", 1)[1].split(" ", 1)[0]


def test_the_timer_function_logs_a_warning_for_the_region_left_to_expire_and_info_for_the_healthy_one(
        start_worker, cosmos_emulator, database):
    ids = {}
    for region in ("westeurope", "eastus"):
        for container in ("whisks", "subjects"):
            ids[region, container] = write_leases(
                database, container, f"{region}-{container}", cosmos_emulator.endpoint, [f"{region}-host"],
                continuation=Checkpoints(database.get_container_client(container)))
    host = start_worker({"COSMOSDB": cosmos_emulator.connection_string, "COSMOSDB_NAME": database.id,
                         "CLUSTER_ID": "westeurope", "LEASE_WATCH_REGIONS": "westeurope,eastus",
                         "LEASE_WATCH_STALE_SECONDS": "4"})
    # Renewed now, not when written: starting the worker may itself take longer than the threshold.
    renew_leases(database, [lease for leases in ids.values() for lease in leases])
    assert host.invoke_timer("watch_leases") == ("Success", "")
    assert {field(text, "status") for _, text in watch_lines(host)} == {"healthy"}
    host.logs.clear()
    time.sleep(4.5)  # eastus's app has stopped; westeurope's renews its leases
    renew_leases(database, ids["westeurope", "whisks"] + ids["westeurope", "subjects"])
    status, message = host.invoke_timer("watch_leases")
    assert (status, message) == ("Success", "")
    found = sorted((level, field(text, "region"), field(text, "container"), field(text, "status"))
                   for level, text in watch_lines(host))
    assert found == [(INFORMATION, "westeurope", "subjects", "healthy"), (INFORMATION, "westeurope", "whisks", "healthy"),
                     (WARNING, "eastus", "subjects", "stale"), (WARNING, "eastus", "whisks", "stale")]
    assert all(field(text, "watcher") == "westeurope" for _, text in watch_lines(host))
    charge = field(watch_lines(host)[0][1], "request_charge")
    print(f"\nthe timer function's run through the runtime: request_charge={charge} RU for "
          f"{sum(len(v) for v in ids.values())} leases")


def test_the_timer_function_reports_a_missing_lease_container_and_succeeds(start_worker, cosmos_emulator,
                                                                           cosmos_database):
    for name in ("whisks", "subjects"):
        cosmos_database.create_container(name, partition_key=PartitionKey(path="/id"))
    host = start_worker({"COSMOSDB": cosmos_emulator.connection_string, "COSMOSDB_NAME": cosmos_database.id,
                         "CLUSTER_ID": "westeurope"})
    status, _ = host.invoke_timer("watch_leases")
    [(level, text)] = watch_lines(host)
    assert (status, level, field(text, "status")) == ("Success", ERROR, "unreadable"), text
    assert "lease container 'cache-invalidator-lease' (COSMOSDB_LEASE_CONTAINER) does not exist" in text


def start_regions(start_instance, cosmos_emulator, database, kafka_broker, intervals, **settings):
    """One instance of each region's app, each driven by Microsoft's Java processor (devhost/trigger_listener.py,
    handleLatestVersionChanges, EPK-range leases), by region."""
    from tests.kafka_reading import new_topic_name
    from tests.written_changes import REGIONS, app_settings_over

    instances = {}
    for cluster_id in REGIONS:
        topic = new_topic_name(f"cacheInvalidation-{cluster_id}")
        kafka_broker.create_topic(topic)
        region = app_settings_over(cosmos_emulator, database, kafka_broker, topic, CLUSTER_ID=cluster_id,
                                   COSMOSDB_FEED_POLL_DELAY_MS="100", LEASE_WATCH_REGIONS=",".join(REGIONS),
                                   **settings)
        instances[cluster_id] = start_instance(region, f"{cluster_id}-1", intervals=intervals)
    return instances


def watched(watcher):
    """Runs the watch once in this worker: (level, status, leases, owners, pending_changes) by (region, container)."""
    watcher.logs.clear()
    assert watcher.invoke_timer("watch_leases") == ("Success", "")
    return {(field(text, "region"), field(text, "container")): (
        level, field(text, "status"), field(text, "leases"), field(text, "owners"), field(text, "pending_changes"))
        for level, text in watch_lines(watcher)}


def test_the_timer_function_estimates_the_checkpoints_microsofts_java_processor_writes(
        start_instance, cosmos_emulator, cosmos_database, kafka_broker):
    """Both regions' EPK-range leases are read, and once each lease's checkpoint follows the last change, the
    estimate is 0. No lease is renewed meanwhile (a first renewal after 300 s): a renewal racing a checkpoint can
    write the older continuation back (devhost/__init__.py), and the watch would rightly count those changes
    pending."""
    from devhost.trigger_listener import LeaseIntervals, wait_for
    from tests.written_changes import REGIONS, STAMPED_SUBJECTS, STAMPED_WHISKS, wait_delivered, with_containers, write

    database = with_containers(cosmos_database)
    write(database, "whisks", STAMPED_WHISKS)
    write(database, "subjects", STAMPED_SUBJECTS)
    checkpoints_only = LeaseIntervals(renew=300.0, acquire=1.0, expiration=600.0)
    instances = start_regions(start_instance, cosmos_emulator, database, kafka_broker, checkpoints_only,
                              LEASE_WATCH_STALE_SECONDS="600")
    for instance in instances.values():
        wait_delivered([instance], database)

    caught_up = {(region, container): (INFORMATION, "healthy", "4", "1", "0")
                 for region in REGIONS for container in ("whisks", "subjects")}
    seen = []
    try:
        wait_for(lambda: seen.append(watched(instances["westeurope"].worker)) or seen[-1] == caught_up, 60,
                 "every region's leases caught up")
    except TimeoutError as e:
        raise AssertionError(f"{e}; the watch's last reading: {seen[-1]}") from None


def test_the_timer_function_reports_stale_the_region_whose_java_processor_stopped(
        start_instance, cosmos_emulator, cosmos_database, kafka_broker):
    """Both regions' processors renew their leases every second; then eastus's app stops, its processors release
    the leases and renew them no more, and westeurope's watch reports eastus stale and itself healthy."""
    from devhost.trigger_listener import LeaseIntervals, wait_for
    from tests.written_changes import REGIONS, with_containers

    database = with_containers(cosmos_database)
    instances = start_regions(start_instance, cosmos_emulator, database, kafka_broker,
                              LeaseIntervals(renew=1.0, acquire=1.0, expiration=5.0), LEASE_WATCH_STALE_SECONDS="4")
    watcher = instances["westeurope"].worker
    held = {(region, container): (INFORMATION, "healthy", "4", "1")
            for region in REGIONS for container in ("whisks", "subjects")}
    seen = []
    try:
        wait_for(lambda: seen.append({key: value[:4] for key, value in watched(watcher).items()}) or seen[-1] == held,
                 60, "every region's leases held and renewed")
    except TimeoutError as e:
        raise AssertionError(f"{e}; the watch's last reading: {seen[-1]}") from None
    instances["eastus"].close()
    time.sleep(5)
    found = watched(watcher)
    assert {key: value[:2] for key, value in found.items()} == {
        ("westeurope", "whisks"): (INFORMATION, "healthy"), ("westeurope", "subjects"): (INFORMATION, "healthy"),
        ("eastus", "whisks"): (WARNING, "stale"), ("eastus", "subjects"): (WARNING, "stale")}, found
