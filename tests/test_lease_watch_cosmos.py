"""The lease watch against Cosmos DB (the emulator, or COSMOSDB_TEST_CONNECTION's account).

Two regions' leases are written as the .NET processor writes them (tests/lease_documents.py), with the
continuation a processor checkpoints: the etag of its last read, here after a given number of changes of each
feed range. Leases are renewed as their owner renews them; leases left alone expire in real time against a
threshold of a few seconds. Every test reads the watch's log lines, which is what the alerts read.
"""

import logging
import time

import pytest
from azure.cosmos import PartitionKey

from cache_invalidator.lease_watch import LeaseWatch
from cache_invalidator.settings import TriggerSettings
from tests.data_plane_access import REGION_IDENTITY, WRITES, grants_of, refused
from tests.lease_documents import LEASES, Checkpoints, renew_leases, write_java_leases, write_leases


@pytest.fixture
def database(cosmos_database):
    """whisks, subjects and the lease container, as a deployment has them."""
    for name in ("whisks", "subjects", LEASES):
        cosmos_database.create_container(name, partition_key=PartitionKey(path="/id"))
    return cosmos_database


def settings_of(cosmos_emulator, database, cluster_id, **watch):
    return {"COSMOSDB": cosmos_emulator.connection_string, "COSMOSDB_NAME": database.id, "CLUSTER_ID": cluster_id,
            **watch}


def watch_of(settings):
    return LeaseWatch(settings, TriggerSettings.from_env(settings))


def write_documents(database, container, count):
    for i in range(count):
        database.get_container_client(container).create_item({"id": f"guest|{container}-{i}"})


def lines(caplog):
    """The watch's lines: (level, region, container, status, record)."""
    return [(r.levelname, r.region, r.container, r.status, r) for r in caplog.records
            if r.name == "cache_invalidator" and r.msg.startswith("Lease watch ")]


def levels(caplog):
    return sorted((level, region, container, status) for level, region, container, status, _ in lines(caplog))


def both_regions(cosmos_emulator, database, **options):
    """westeurope's and eastus's leases on both containers, everything handed; returns their lease ids."""
    ids = {}
    for region in ("westeurope", "eastus"):
        for container in ("whisks", "subjects"):
            ids[region, container] = write_leases(
                database, container, f"{region}-{container}", cosmos_emulator.endpoint, [f"{region}-host"],
                continuation=Checkpoints(database.get_container_client(container)), **options)
    return ids


def test_healthy_regions_are_each_reported_at_info(cosmos_emulator, database, caplog):
    write_documents(database, "whisks", 6)
    both_regions(cosmos_emulator, database)
    with caplog.at_level(logging.INFO, logger="cache_invalidator"):
        watch_of(settings_of(cosmos_emulator, database, "westeurope")).run()
    assert levels(caplog) == [("INFO", region, container, "healthy") for region, container in (
        ("eastus", "subjects"), ("eastus", "whisks"), ("westeurope", "subjects"), ("westeurope", "whisks"))]
    assert {(r.pending_changes, r.owners, r.unowned) for *_, r in lines(caplog)} == {(0, 1, 0)}


def test_a_region_whose_leases_expire_is_reported_by_the_other_within_one_run(cosmos_emulator, database, caplog):
    ids = both_regions(cosmos_emulator, database)
    watch = watch_of(settings_of(cosmos_emulator, database, "westeurope", LEASE_WATCH_STALE_SECONDS="2"))
    with caplog.at_level(logging.INFO, logger="cache_invalidator"):
        watch.run()
        assert {status for *_, status, _ in lines(caplog)} == {"healthy"}
        caplog.clear()
        time.sleep(2.5)  # eastus's app has stopped; westeurope's still renews its leases
        renew_leases(database, ids["westeurope", "whisks"] + ids["westeurope", "subjects"])
        watch.run()
    assert levels(caplog) == [
        ("INFO", "westeurope", "subjects", "healthy"), ("INFO", "westeurope", "whisks", "healthy"),
        ("WARNING", "eastus", "subjects", "stale"), ("WARNING", "eastus", "whisks", "stale")]
    stale = [r for *_, status, r in lines(caplog) if status == "stale"]
    assert all(r.renewed_seconds_ago > 2 and "eastus" in r.getMessage() for r in stale)


def test_pending_changes_and_the_oldest_ones_age_are_estimated_per_region(cosmos_emulator, database, caplog):
    write_documents(database, "whisks", 20)
    whisks = database.get_container_client("whisks")
    behind = Checkpoints(whisks, handed=1)
    write_leases(database, "whisks", "eastus-whisks", cosmos_emulator.endpoint, ["eastus-host"], continuation=behind)
    write_leases(database, "whisks", "westeurope-whisks", cosmos_emulator.endpoint, ["westeurope-host"],
                 continuation=Checkpoints(whisks))
    first_written = min(doc["_ts"] for doc in whisks.read_all_items())
    with caplog.at_level(logging.INFO, logger="cache_invalidator"):
        watch_of(settings_of(cosmos_emulator, database, "westeurope")).run()
    found = {(r.region, r.container): r for *_, r in lines(caplog)}
    assert (found["eastus", "whisks"].pending_changes, found["westeurope", "whisks"].pending_changes) == (
        20 - behind.count, 0)
    assert found["eastus", "whisks"].oldest_pending_seconds >= time.time() - first_written - 2


def test_a_region_with_an_old_pending_change_is_behind(cosmos_emulator, database, caplog):
    write_documents(database, "whisks", 4)
    whisks = database.get_container_client("whisks")
    write_leases(database, "whisks", "eastus-whisks", cosmos_emulator.endpoint, ["eastus-host"],
                 continuation=None)
    ids = write_leases(database, "whisks", "westeurope-whisks", cosmos_emulator.endpoint, ["westeurope-host"],
                       continuation=Checkpoints(whisks, handed=1))
    time.sleep(2.1)
    renew_leases(database, ids)
    with caplog.at_level(logging.INFO, logger="cache_invalidator"):
        watch_of(settings_of(cosmos_emulator, database, "eastus", LEASE_WATCH_PENDING_SECONDS="1")).run()
    found = {(r.region, r.container): (level, status) for level, *_, status, r in lines(caplog)}
    assert found[("westeurope", "whisks")] == ("WARNING", "behind")


def test_an_expected_region_that_never_started_is_reported(cosmos_emulator, database, caplog):
    both_regions(cosmos_emulator, database)
    with caplog.at_level(logging.INFO, logger="cache_invalidator"):
        watch_of(settings_of(cosmos_emulator, database, "westeurope",
                             LEASE_WATCH_REGIONS="westeurope,eastus,southeastasia")).run()
    assert [(level, container) for level, region, container, status in levels(caplog) if region == "southeastasia"] == [
        ("ERROR", "subjects"), ("ERROR", "whisks")]


def test_java_processor_leases_are_read_like_the_dotnet_ones(cosmos_emulator, database, caplog):
    write_documents(database, "whisks", 12)
    whisks = database.get_container_client("whisks")
    handed = Checkpoints(whisks, handed=2)
    write_java_leases(database, "whisks", "eastus-whisks", cosmos_emulator.endpoint, ["java-host"], handed)
    with caplog.at_level(logging.INFO, logger="cache_invalidator"):
        watch_of(settings_of(cosmos_emulator, database, "westeurope")).run()
    found = {(r.region, r.container): r for *_, r in lines(caplog)}
    eastus = found["eastus", "whisks"]
    assert (eastus.status, eastus.leases, eastus.owners, eastus.pending_changes) == (
        "healthy", len(list(whisks.read_feed_ranges())), 1, 12 - handed.count)


def test_a_run_reads_each_lease_once_and_writes_nothing(cosmos_emulator, database, record_property):
    write_documents(database, "whisks", 6)
    ids = both_regions(cosmos_emulator, database)
    leases = database.get_container_client(LEASES)
    before = {doc["id"]: doc["_etag"] for doc in leases.read_all_items()}
    watch = watch_of(settings_of(cosmos_emulator, database, "westeurope"))
    watch.run()  # opens the client
    run = watch.run()
    after = {doc["id"]: doc["_etag"] for doc in leases.read_all_items()}
    lease_count = sum(len(group) for group in ids.values())
    # The two monitored containers, one query of the lease container, one read per lease; never the database.
    assert (run.requests, before == after) == (3 + lease_count, True)
    assert run.request_charge > 0
    record_property("lease_watch_request_charge", run.request_charge)
    record_property("lease_watch_requests", run.requests)
    print(f"\nlease watch: {run.requests} requests, {run.request_charge:g} RU for {lease_count} leases "
          f"of 2 regions x 2 containers")


def test_a_run_asks_only_for_what_each_regions_identity_is_granted(cosmos_emulator, database, cosmos_requests):
    write_documents(database, "whisks", 6)
    both_regions(cosmos_emulator, database)
    cosmos_requests.mark()
    run = watch_of(settings_of(cosmos_emulator, database, "westeurope")).run()
    asked = cosmos_requests.requests()
    assert {finding.status for finding in run.findings} == {"healthy"}
    # Data Reader on whisks and subjects, Data Contributor on the lease container: nothing else, and no write.
    grants = grants_of(REGION_IDENTITY, database.id, {"whisks": "whisks", "subjects": "subjects", "lease": LEASES})
    assert asked and refused(asked, grants) == set()
    assert {r.action for r in asked} & WRITES == set()


def test_a_deleted_lease_container_is_reported_not_raised(cosmos_emulator, database, caplog):
    both_regions(cosmos_emulator, database)
    watch = watch_of(settings_of(cosmos_emulator, database, "westeurope"))
    watch.run()
    database.delete_container(LEASES)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="cache_invalidator"):
        watch.run()
    [(level, region, container, status, record)] = lines(caplog)
    assert (level, status) == ("ERROR", "unreadable")
    assert "lease container 'cache-invalidator-lease' (COSMOSDB_LEASE_CONTAINER) does not exist" in record.reason


def test_a_lost_connection_is_reported_not_raised_within_the_runs_time(cosmos_emulator, tmp_path, caplog):
    if not cosmos_emulator.managed:
        pytest.skip("COSMOSDB_TEST_CONNECTION's account cannot be taken away; this test stops an emulator of its own")
    from tests.cosmos_emulator import CosmosEmulator

    own = CosmosEmulator.up(tmp_path / "emulator")
    try:
        client = own.client()
        database = client.create_database("watched")
        for name in ("whisks", "subjects", LEASES):
            database.create_container(name, partition_key=PartitionKey(path="/id"))
        write_leases(database, "whisks", "eastus-whisks", own.endpoint, ["eastus-host"], continuation=None)
        client.close()
        watch = watch_of(settings_of(own, database, "westeurope", LEASE_WATCH_TIMEOUT_SECONDS="5"))
        watch.run()
    finally:
        own.down()
    caplog.clear()
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="cache_invalidator"):
        watch.run()
    took = time.monotonic() - started
    [(level, region, container, status, record)] = lines(caplog)
    assert (level, status, record.reason.startswith("setting COSMOSDB: the leases could not be read")) == (
        "ERROR", "unreadable", True), record.reason
    print(f"\nlost connection reported after {took:.1f} s (LEASE_WATCH_TIMEOUT_SECONDS=5)")


def test_an_account_that_stops_answering_is_reported_not_raised(cosmos_emulator, database, caplog):
    """A listener that accepts connections and never answers: the run ends at its own deadline, reporting it."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        settings = {**settings_of(cosmos_emulator, database, "westeurope", LEASE_WATCH_TIMEOUT_SECONDS="2"),
                    "COSMOSDB": f"AccountEndpoint={endpoint};AccountKey={cosmos_emulator.key};"}
        caplog.clear()
        started = time.monotonic()
        with caplog.at_level(logging.INFO, logger="cache_invalidator"):
            watch_of(settings).run()
        took = time.monotonic() - started
    finally:
        silent.close()
    [(level, region, container, status, record)] = lines(caplog)
    assert (level, status, record.reason.startswith("setting COSMOSDB: the leases could not be read")) == (
        "ERROR", "unreadable", True), record.reason
    print(f"\nsilent account reported after {took:.1f} s (LEASE_WATCH_TIMEOUT_SECONDS=2)")


def test_check_shows_the_watchs_table_with_the_stale_region(cosmos_emulator, database):
    import io

    from cache_invalidator.cli.main import main

    for region, ago in (("westeurope", 0.0), ("eastus", 600.0)):
        for container in ("whisks", "subjects"):
            write_leases(database, container, f"{region}-{container}", cosmos_emulator.endpoint, [f"{region}-host"],
                         continuation=Checkpoints(database.get_container_client(container)), renewed_seconds_ago=ago)
    out, err = io.StringIO(), io.StringIO()
    settings = settings_of(cosmos_emulator, database, "westeurope", KAFKA_HOSTS="127.0.0.1:9092")
    code = main(["check", "--no-kafka"], environ=settings, stdout=out, stderr=err)
    table = out.getvalue().split("Lease watch (every region's leases)\n", 1)[1]
    rows = [line.split()[:3] + line.split()[4:5] for line in table.splitlines()
                if line.strip().startswith(("ok", "WARNING"))]
    assert (code, rows) == (0, [["WARNING", "eastus", "whisks", "stale"], ["ok", "westeurope", "whisks", "healthy"],
                                ["WARNING", "eastus", "subjects", "stale"], ["ok", "westeurope", "subjects", "healthy"]]
                            ), out.getvalue()


def all_versions_now(container):
    """A continuation for write_leases: the etag a read of the range's all-versions-and-deletes feed from now returns,
    `"<lsn>"` as the service writes it, which is what that feed's processor checkpoints."""
    from tests.lease_documents import feed_range_of

    def etag(bounds):
        headers = []
        hook = lambda response: headers.append(dict(response.http_response.headers))  # noqa: E731
        list(container.query_items_change_feed(feed_range=feed_range_of(bounds), mode="AllVersionsAndDeletes",
                                               start_time="Now", raw_response_hook=hook))
        return headers[-1]["etag"]
    return etag


def test_a_regions_all_versions_and_deletes_leases_are_read_in_their_mode_and_estimated(cosmos_emulator, database,
                                                                                         caplog):
    whisks = database.get_container_client("whisks")
    write_leases(database, "whisks", "eastus-whisks-avad", cosmos_emulator.endpoint, ["eastus-host"],
                 continuation=all_versions_now(whisks), mode="Full-Fidelity Feed")
    write_documents(database, "whisks", 20)
    whisks.delete_item("guest|whisks-0", partition_key="guest|whisks-0")  # a hard delete is pending too
    write_leases(database, "whisks", "westeurope-whisks-avad", cosmos_emulator.endpoint, ["westeurope-host"],
                 continuation=all_versions_now(whisks), mode="Full-Fidelity Feed")
    first_written = min(doc["_ts"] for doc in whisks.read_all_items())
    with caplog.at_level(logging.INFO, logger="cache_invalidator"):
        watch_of(settings_of(cosmos_emulator, database, "westeurope")).run()
    found = {(r.region, r.container): r for *_, r in lines(caplog)}
    eastus, westeurope = found["eastus", "whisks"], found["westeurope", "whisks"]
    assert (eastus.mode, eastus.status, eastus.pending_changes, westeurope.pending_changes) == (
        "AllVersionsAndDeletes", "healthy", 21, 0), eastus.getMessage()
    assert eastus.oldest_pending_seconds >= time.time() - first_written - 2
    assert " mode=AllVersionsAndDeletes " in eastus.getMessage()


def test_all_versions_and_deletes_leases_the_account_refuses_say_why_they_are_not_estimated(
        cosmos_emulator_without_avad, cosmos_database_without_avad, caplog):
    database = cosmos_database_without_avad
    for name in ("whisks", "subjects", LEASES):
        database.create_container(name, partition_key=PartitionKey(path="/id"))
    write_leases(database, "whisks", "eastus-whisks-avad", cosmos_emulator_without_avad.endpoint, ["eastus-host"],
                 continuation='"3"', mode="Full-Fidelity Feed")
    with caplog.at_level(logging.INFO, logger="cache_invalidator"):
        watch_of(settings_of(cosmos_emulator_without_avad, database, "westeurope")).run()
    (eastus,) = [r for *_, r in lines(caplog) if r.region == "eastus"]
    assert (eastus.pending_changes, eastus.reason.startswith(
        "4 of 4 lease(s) not estimated (the account refused the all-versions-and-deletes read (400: ")) == (
        None, True), eastus.reason
