"""scripts/cosmos: its verbs, last line and exit codes, as scripts/kafka's."""

import json
import os
import socket
import subprocess
import sys

import pytest

from tests.cosmos_emulator import SCRIPT


@pytest.fixture
def script_dir(cosmos_emulator, tmp_path):
    """A state dir for an emulator of this test's own, taken down afterwards."""
    if not cosmos_emulator.managed:
        pytest.skip("COSMOSDB_TEST_CONNECTION is set: scripts/cosmos is not used in this run")
    yield tmp_path / "cosmos"
    cosmos(["down", "--dir", str(tmp_path / "cosmos")])


def cosmos(args, **options):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, **options)


def test_up_prints_the_connection_string_last_and_again_while_it_runs(script_dir):
    first = cosmos(["up", "--dir", str(script_dir)])
    assert first.returncode == 0, first.stderr
    line = first.stdout.strip().splitlines()[-1]
    assert line.startswith("COSMOSDB=AccountEndpoint=http://127.0.0.1:") and ";AccountKey=" in line
    again = cosmos(["up", "--dir", str(script_dir)])
    assert again.returncode == 0 and again.stdout.strip().splitlines()[-1] == line


def test_status_is_0_while_running_and_3_after_down(script_dir):
    assert cosmos(["up", "--dir", str(script_dir)]).returncode == 0
    running = cosmos(["status", "--dir", str(script_dir)])
    assert running.returncode == 0 and running.stdout.startswith("running")
    assert cosmos(["down", "--dir", str(script_dir)]).returncode == 0
    stopped = cosmos(["status", "--dir", str(script_dir)])
    assert stopped.returncode == 3 and stopped.stdout.startswith("stopped")


def test_a_taken_port_exits_6_naming_it(script_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cosmos(["up", "--dir", str(script_dir), "--port", str(port)])
    assert result.returncode == 6
    assert f"port 127.0.0.1:{port} is already in use" in result.stderr


def test_without_cargo_up_exits_4_saying_so(script_dir, tmp_path):
    empty = tmp_path / "empty-path"
    empty.mkdir()
    result = cosmos(["up", "--dir", str(script_dir)], env={"PATH": str(empty)})
    assert result.returncode == 4
    assert "cargo not found on PATH" in result.stderr


def test_up_without_all_versions_and_deletes_over_a_running_emulator_with_it_fails_saying_so(script_dir):
    assert cosmos(["up", "--dir", str(script_dir)]).returncode == 0
    result = cosmos(["up", "--dir", str(script_dir), "--without-all-versions-and-deletes"])
    assert result.returncode == 1
    assert "already running" in result.stderr and "with the all versions and deletes change feed" in result.stderr


@pytest.fixture
def openwhisk_database(cosmos_emulator, cosmos_database):
    """whisks and subjects in a new database, and the settings that name it and the account."""
    from azure.cosmos import PartitionKey

    for name in ("whisks", "subjects"):
        cosmos_database.create_container(name, partition_key=PartitionKey(path="/id"))
    return cosmos_database, {"PATH": os.environ["PATH"], "COSMOSDB": cosmos_emulator.connection_string,
                             "COSMOSDB_NAME": cosmos_database.id}


def stored(database, container, doc_id):
    document = database.get_container_client(container).read_item(doc_id, partition_key=doc_id)
    return {k: v for k, v in document.items() if k not in ("_rid", "_self", "_etag", "_attachments", "_ts")}


def test_put_writes_the_document_a_controller_writes_and_prints_it(openwhisk_database):
    database, env = openwhisk_database
    result = cosmos(["put", "whisks", "guest/test-package", "--cluster-id", "westeurope"], env=env)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert stored(database, "whisks", "guest|test-package") == printed
    assert (printed["entityType"], printed["namespace"], printed["name"], printed["_clusterId"]) == (
        "package", "guest", "test-package", "westeurope")


def test_put_of_an_existing_entity_replaces_it(openwhisk_database):
    database, env = openwhisk_database
    assert cosmos(["put", "whisks", "guest/a1", "--entity-type", "action"], env=env).returncode == 0
    again = cosmos(["put", "whisks", "guest/a1", "--entity-type", "action", "--cluster-id", "eastus"], env=env)
    assert again.returncode == 0 and "replaced action guest/a1" in again.stderr
    assert stored(database, "whisks", "guest|a1")["_clusterId"] == "eastus"


def test_put_of_a_subject_prints_no_key(openwhisk_database):
    database, env = openwhisk_database
    result = cosmos(["put", "subjects", "alice", "--namespace", "alice", "--namespace", "team-a"], env=env)
    assert result.returncode == 0, result.stderr
    keys = [ns["key"] for ns in stored(database, "subjects", "alice")["namespaces"]]
    assert len(keys) == 2 and not any(key in result.stdout + result.stderr for key in keys)


def test_delete_is_a_hard_delete_by_default_as_openwhisks(openwhisk_database):
    database, env = openwhisk_database
    assert cosmos(["put", "whisks", "guest/p"], env=env).returncode == 0
    result = cosmos(["delete", "whisks", "guest/p"], env=env)
    assert result.returncode == 0 and "hard-deleted" in result.stderr
    assert [d["id"] for d in database.get_container_client("whisks").read_all_items()] == []


def test_delete_with_a_soft_delete_ttl_writes_the_document_again_deleted(openwhisk_database):
    database, env = openwhisk_database
    assert cosmos(["put", "whisks", "guest/p", "--cluster-id", "eastus"], env=env).returncode == 0
    result = cosmos(["delete", "whisks", "guest/p", "--soft-delete-ttl", "604800", "--cluster-id", "westeurope"],
                    env=env)
    assert result.returncode == 0, result.stderr
    document = stored(database, "whisks", "guest|p")
    assert (document["_deleted"], document["ttl"], document["_clusterId"]) == (True, 604800, "westeurope")


def test_delete_of_a_missing_document_exits_8_naming_it(openwhisk_database):
    _, env = openwhisk_database
    result = cosmos(["delete", "whisks", "guest/nothing"], env=env)
    assert result.returncode == 8 and "'guest|nothing'" in result.stderr


def test_put_into_a_missing_container_fails_naming_it(openwhisk_database):
    _, env = openwhisk_database
    result = cosmos(["put", "whisks", "guest/p"], env={**env, "COSMOSDB_WHISKS_CONTAINER": "absent"})
    assert result.returncode == 1 and "/absent in COSMOSDB's account" in result.stderr
