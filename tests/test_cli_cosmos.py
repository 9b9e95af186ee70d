"""The azure-cosmos adapter against a real Cosmos DB account or emulator, given in COSMOSDB_TEST_CONNECTION.

Each run makes its own database and deletes it afterwards.
"""

import io
import os
import time
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import urlparse

import pytest

from cache_invalidator.cli.main import main
from cache_invalidator.cli.report import parse_connection_string
from cache_invalidator.settings import TriggerSettings

CONNECTION = os.environ.get("COSMOSDB_TEST_CONNECTION", "").strip()

pytestmark = pytest.mark.skipif(not CONNECTION, reason="needs a real Cosmos DB endpoint in COSMOSDB_TEST_CONNECTION")


@pytest.fixture(scope="module")
def cosmos_database():
    from azure.cosmos import CosmosClient, PartitionKey

    pairs = parse_connection_string(CONNECTION)
    endpoint = pairs["AccountEndpoint"]
    verify = urlparse(endpoint).hostname not in ("localhost", "127.0.0.1", "::1")
    client = CosmosClient(endpoint, credential=pairs["AccountKey"], connection_verify=verify)
    name = f"cli-test-{uuid.uuid4().hex[:8]}"
    database = client.create_database(name)
    for container in ("whisks", "subjects", "cache-invalidator-lease"):
        database.create_container(container, partition_key=PartitionKey(path="/id"))
    try:
        yield client, database
    finally:
        client.delete_database(name)
        client.close()


@pytest.fixture
def cosmos_settings(cosmos_database, app_settings):
    _, database = cosmos_database
    return {**app_settings, "COSMOSDB": CONNECTION, "COSMOSDB_NAME": database.id, "CLUSTER_ID": "eu"}


def run(argv, environ):
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, environ=environ, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_gather_facts_reads_containers_and_leases(cosmos_database, cosmos_settings):
    from cache_invalidator.cli.cosmos import gather_facts

    facts = gather_facts(cosmos_settings, TriggerSettings.from_env(cosmos_settings), timeout=10)
    assert facts.database_exists and facts.database_rid
    assert {n: c.exists for n, c in facts.containers.items()} == {
        "whisks": True, "subjects": True, "cache-invalidator-lease": True}
    assert facts.containers["cache-invalidator-lease"].partition_key_paths == ("/id",)
    assert facts.leases == []


def test_check_finds_this_deployments_leases(cosmos_database, cosmos_settings):
    from cache_invalidator.cli.cosmos import gather_facts

    _, database = cosmos_database
    trigger = TriggerSettings.from_env(cosmos_settings)
    facts = gather_facts(cosmos_settings, trigger, timeout=10)
    host = urlparse(facts.endpoint).hostname
    whisks_rid = facts.containers["whisks"].rid
    # A lease as the Functions host's change feed processor names it.
    lease_id = f"eu-whisks{host}_{facts.database_rid}_{whisks_rid}..0"
    database.get_container_client("cache-invalidator-lease").upsert_item({"id": lease_id, "Owner": "host-guid"})
    code, out, _ = run(["check", "--no-kafka"], cosmos_settings)
    assert code == 0, out
    assert "1 lease(s) for 'whisks' (lease prefix 'eu-whisks'), 1 owner(s): host-guid" in out
    assert "WARNING no leases for 'subjects'" in out
    assert parse_connection_string(CONNECTION)["AccountKey"] not in out


def test_check_reports_a_missing_database(cosmos_settings):
    code, out, _ = run(["check", "--no-kafka"], {**cosmos_settings, "COSMOSDB_NAME": f"missing-{uuid.uuid4().hex[:6]}"})
    assert code == 1 and "(COSMOSDB_NAME) does not exist" in out


def test_replay_reads_the_change_feed_window(cosmos_database, cosmos_settings):
    _, database = cosmos_database
    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    whisks = database.get_container_client("whisks")
    for i in range(3):
        whisks.upsert_item({"id": f"guest|replayed{i}"})
    whisks.upsert_item({"id": "guest|mine", "_clusterId": "eu"})
    code, out, err = run(["replay", "--container", "whisks", "--since", since.isoformat(), "--dry-run",
                          "--page-size", "2"], cosmos_settings)
    assert code == 0, err
    sent = [line.split("\t")[0] for line in out.splitlines()]
    assert sorted(sent) == ["guest/replayed0", "guest/replayed1", "guest/replayed2"]
    assert "1 of this cluster skipped" in err


def test_replay_stops_at_until(cosmos_database, cosmos_settings):
    _, database = cosmos_database
    subjects = database.get_container_client("subjects")
    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    subjects.upsert_item({"id": "early", "namespaces": [{"name": "early-ns"}]})
    until = datetime.now(timezone.utc)
    time.sleep(2.5)
    subjects.upsert_item({"id": "late", "namespaces": [{"name": "late-ns"}]})
    code, out, err = run(["replay", "--container", "subjects", "--since", since.isoformat(), "--until",
                          until.isoformat(), "--dry-run"], cosmos_settings)
    assert code == 0, err
    assert [line.split("\t")[0] for line in out.splitlines()] == ["early", "early-ns"]
    assert "1 changed after --until left out" in err
