"""`check` against Cosmos DB (the emulator) with either change feed mode: whether the account serves the
all-versions-and-deletes feed, and leases of the other mode under this region's prefixes.

A processor refuses to start on a prefix whose leases record the other mode (the .NET SDK's
DocumentServiceLeaseManager.VerifyChangeFeedProcessorMode), so `check` names such leases before the host
fails on them. The leases are written as the processors write them (tests/lease_documents.py).
"""

import io

import pytest
from azure.cosmos import PartitionKey

from cache_invalidator.cli.main import main
from tests.lease_documents import LEASES, write_java_leases, write_leases

ALL_VERSIONS = {"COSMOSDB_CHANGE_FEED_MODE": "AllVersionsAndDeletes"}


def run(environ):
    out, err = io.StringIO(), io.StringIO()
    code = main(["check", "--no-kafka"], environ=environ, stdout=out, stderr=err)
    print(out.getvalue())  # the report: shown with -s
    return code, out.getvalue()


def lines(out, status):
    return [line.strip()[len(status) + 1:] for line in out.splitlines() if line.strip().startswith(status + " ")]


@pytest.fixture
def deployment(cosmos_emulator, cosmos_database):
    """whisks, subjects and the lease container, and the settings of region westeurope over them."""
    for name in ("whisks", "subjects"):
        cosmos_database.create_container(name, partition_key=PartitionKey(path="/id"), default_ttl=-1)
        cosmos_database.get_container_client(name).upsert_item({"id": f"guest|{name}", "_clusterId": "westeurope"})
    cosmos_database.create_container(LEASES, partition_key=PartitionKey(path="/id"))
    return cosmos_database, {"COSMOSDB": cosmos_emulator.connection_string, "COSMOSDB_NAME": cosmos_database.id,
                             "CLUSTER_ID": "westeurope", "KAFKA_HOSTS": "127.0.0.1:9"}


def test_check_reads_each_containers_all_versions_and_deletes_feed_and_reports_it_served(cosmos_emulator, deployment):
    database, settings = deployment
    for name in ("whisks", "subjects"):
        write_leases(database, name, f"westeurope-{name}-avad", cosmos_emulator.endpoint, ["host-a"],
                     mode="Full-Fidelity Feed")
    code, out = run({**settings, **ALL_VERSIONS})
    served = [line for line in lines(out, "ok") if "serves the all-versions-and-deletes change feed" in line]
    assert (code, [line.split("'")[1] for line in served]) == (0, ["whisks", "subjects"]), out
    assert "COSMOSDB_CHANGE_FEED_MODE" in out and "AllVersionsAndDeletes" in out


def test_check_names_leases_recording_the_latest_version_under_this_regions_all_versions_prefix(cosmos_emulator,
                                                                                             deployment):
    database, settings = deployment
    write_leases(database, "whisks", "westeurope-whisks-avad", cosmos_emulator.endpoint, ["host-a"])
    write_leases(database, "subjects", "westeurope-subjects-avad", cosmos_emulator.endpoint, ["host-a"],
                 mode="Full-Fidelity Feed")
    code, out = run({**settings, **ALL_VERSIONS})
    problems = [line for line in lines(out, "PROBLEM") if "record another change feed mode" in line]
    assert (code, len(problems)) == (1, 1), out
    assert "'whisks' (lease prefix 'westeurope-whisks-avad')" in problems[0] and "Switching ChangeFeedMode" in problems[0]


def test_check_names_java_leases_of_the_all_versions_feed_under_this_regions_latest_version_prefix(cosmos_emulator,
                                                                                                 deployment):
    database, settings = deployment
    write_java_leases(database, "whisks", "westeurope-whisks", cosmos_emulator.endpoint, ["host-a"],
                      lambda bounds: '"1"', mode="FULL_FIDELITY")
    write_java_leases(database, "subjects", "westeurope-subjects", cosmos_emulator.endpoint, ["host-a"],
                      lambda bounds: '"1"')
    code, out = run(settings)
    problems = [line for line in lines(out, "PROBLEM") if "record another change feed mode" in line]
    assert (code, len(problems)) == (1, 1), out
    assert problems[0].startswith("4 of the 4 lease(s) for 'whisks' (lease prefix 'westeurope-whisks') record another "
                                  "change feed mode than COSMOSDB_CHANGE_FEED_MODE=LatestVersion"), problems


def test_check_reports_this_regions_leases_of_the_mode_it_moved_from(cosmos_emulator, deployment):
    database, settings = deployment
    for name in ("whisks", "subjects"):
        write_leases(database, name, f"westeurope-{name}", cosmos_emulator.endpoint, ["host-old"])
        write_leases(database, name, f"westeurope-{name}-avad", cosmos_emulator.endpoint, ["host-new"],
                     mode="Full-Fidelity Feed")
    code, out = run({**settings, **ALL_VERSIONS})
    left = [line for line in lines(out, "WARNING") if "of the LatestVersion feed of" in line]
    assert (code, [line.split("'")[1] for line in left]) == (0, ["whisks", "subjects"]), out
    assert "under this region's prefix 'westeurope-whisks'" in left[0]
    table = out.split("Lease watch (every region's leases)\n", 1)[1]
    modes = sorted({tuple(line.split()[1:4]) for line in table.splitlines() if "westeurope" in line})
    assert modes == [("westeurope", "subjects", "AllVersionsAndDeletes"), ("westeurope", "subjects", "LatestVersion"),
                     ("westeurope", "whisks", "AllVersionsAndDeletes"), ("westeurope", "whisks", "LatestVersion")], table


def test_check_on_an_account_without_the_all_versions_and_deletes_feed_names_backup_and_the_feature(
        cosmos_emulator_without_avad, cosmos_database_without_avad):
    database = cosmos_database_without_avad
    for name in ("whisks", "subjects", LEASES):
        database.create_container(name, partition_key=PartitionKey(path="/id"), default_ttl=-1)
    settings = {"COSMOSDB": cosmos_emulator_without_avad.connection_string, "COSMOSDB_NAME": database.id,
                "CLUSTER_ID": "westeurope", "KAFKA_HOSTS": "127.0.0.1:9", **ALL_VERSIONS}
    code, out = run(settings)
    refused = [line for line in lines(out, "PROBLEM") if "refuses the all-versions-and-deletes change feed" in line]
    assert (code, [line.split("'")[1] for line in refused]) == (1, ["whisks", "subjects"]), out
    assert all("(400: " in line and "continuous backup" in line and "all-versions-and-deletes feature" in line
               for line in refused), refused


def test_check_in_latest_version_mode_does_not_read_the_all_versions_and_deletes_feed(cosmos_emulator_without_avad,
                                                                                     cosmos_database_without_avad):
    database = cosmos_database_without_avad
    for name in ("whisks", "subjects", LEASES):
        database.create_container(name, partition_key=PartitionKey(path="/id"), default_ttl=-1)
    code, out = run({"COSMOSDB": cosmos_emulator_without_avad.connection_string, "COSMOSDB_NAME": database.id,
                     "CLUSTER_ID": "westeurope", "KAFKA_HOSTS": "127.0.0.1:9"})
    assert "all-versions-and-deletes change feed of" not in out and "PROBLEM" not in out, out
