"""The azure-cosmos adapter, `check` and `replay` against Cosmos DB: the emulator, or COSMOSDB_TEST_CONNECTION's account.

Each test gets a database of its own (the cosmos_database fixture), deleted afterwards.
"""

import io
import json
import re
import time
from datetime import datetime, timezone

import pytest
from azure.cosmos import PartitionKey

from cache_invalidator.cli.main import main
from cache_invalidator.settings import TriggerSettings
from tests.contract import contract_json
from tests.data_plane_access import OPERATOR, WRITES, grants_of, refused
from tests.kafka_reading import read_topic
from tests.lease_documents import LEASES, write_leases


@pytest.fixture
def database(cosmos_database):
    """whisks, subjects and the lease container, as a deployment has them."""
    for name in ("whisks", "subjects", LEASES):
        cosmos_database.create_container(name, partition_key=PartitionKey(path="/id"))
    return cosmos_database


@pytest.fixture
def settings(cosmos_emulator, database, app_settings):
    return {**app_settings, "COSMOSDB": cosmos_emulator.connection_string, "COSMOSDB_NAME": database.id,
            "CLUSTER_ID": "eu"}


def run(argv, environ):
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, environ=environ, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


# -- the adapter and check ----------------------------------------------------------------------


def test_gather_facts_reads_the_database_the_containers_and_the_lease_key(database, settings):
    from cache_invalidator.cli.cosmos import gather_facts

    facts = gather_facts(settings, TriggerSettings.from_env(settings), timeout=10)
    assert facts.database_exists and facts.database_rid == database.read()["_rid"]
    assert {name: (c.exists, c.rid) for name, c in facts.containers.items()} == {
        name: (True, database.get_container_client(name).read()["_rid"]) for name in ("whisks", "subjects", LEASES)}
    assert facts.containers[LEASES].partition_key_paths == ("/id",)
    assert facts.leases == []


def test_check_finds_this_deployments_leases(cosmos_emulator, database, settings):
    leases = write_leases(database, "whisks", "eu-whisks", cosmos_emulator.endpoint, ["host-a", "host-b"])
    code, out, _ = run(["check", "--no-kafka"], settings)
    assert code == 0, out
    assert f"ok      database {database.id!r} exists" in out
    assert "ok      container 'whisks' exists" in out and "ok      container 'subjects' exists" in out
    assert f"ok      lease container {LEASES!r} exists with partition key /id" in out
    assert (f"ok      {len(leases)} lease(s) for 'whisks' (lease prefix 'eu-whisks'), 2 owner(s): host-a, host-b; "
            "last renewed") in out
    assert "WARNING no leases for 'subjects' (lease prefix 'eu-subjects')" in out
    assert cosmos_emulator.key not in out


def test_check_names_another_deployments_prefix_on_the_same_lease_container(cosmos_emulator, database, settings):
    write_leases(database, "whisks", "eu-whisks", cosmos_emulator.endpoint, ["host-eu"])
    others = write_leases(database, "whisks", "us-whisks", cosmos_emulator.endpoint, ["host-us"])
    code, out, _ = run(["check", "--no-kafka"], settings)
    assert code == 0, out
    assert f"other deployments read 'whisks' too, with lease prefixes 'us-whisks' ({len(others)} leases)" in out
    # Another deployment's owners are its own business in this deployment's findings; the lease watch's
    # table, below them, shows every region's owners.
    assert "host-us" not in out.split("Lease watch")[0]


def test_check_warns_of_a_prefix_that_differs_only_in_case(cosmos_emulator, database, settings):
    write_leases(database, "whisks", "eu-whisks", cosmos_emulator.endpoint, ["host-eu"])
    write_leases(database, "whisks", "EU-whisks", cosmos_emulator.endpoint, ["host-other"])
    code, out, _ = run(["check", "--no-kafka"], settings)
    assert code == 0, out  # a warning, not a problem
    assert "WARNING lease prefix 'EU-whisks' differs from this deployment's 'eu-whisks' only in case" in out, out


def test_check_reports_a_lease_container_not_keyed_by_id(cosmos_database, cosmos_emulator, app_settings):
    for name in ("whisks", "subjects"):
        cosmos_database.create_container(name, partition_key=PartitionKey(path="/id"))
    cosmos_database.create_container(LEASES, partition_key=PartitionKey(path="/partitionKey"))
    env = {**app_settings, "COSMOSDB": cosmos_emulator.connection_string, "COSMOSDB_NAME": cosmos_database.id}
    code, out, _ = run(["check", "--no-kafka"], env)
    assert code == 1
    assert f"PROBLEM lease container {LEASES!r} has partition key /partitionKey" in out


def test_check_reports_a_missing_container_and_database(cosmos_database, cosmos_emulator, app_settings):
    cosmos_database.create_container("whisks", partition_key=PartitionKey(path="/id"))
    env = {**app_settings, "COSMOSDB": cosmos_emulator.connection_string, "COSMOSDB_NAME": cosmos_database.id}
    code, out, _ = run(["check", "--no-kafka"], env)
    assert code == 1
    assert f"container 'subjects' (COSMOSDB_SUBJECTS_CONTAINER) does not exist in database {cosmos_database.id!r}" in out
    code, out, _ = run(["check", "--no-kafka"], {**env, "COSMOSDB_NAME": cosmos_database.id + "-missing"})
    assert code == 1 and "(COSMOSDB_NAME) does not exist" in out


# -- replay ---------------------------------------------------------------------------------------


def next_second():
    """Sleeps into the next second of _ts, so that what is written next has a later _ts than what came before."""
    time.sleep(1.05 - datetime.now(timezone.utc).microsecond / 1e6)


def whisks_message(doc_id):
    main_id = doc_id.replace("|", "/")
    return main_id, contract_json({"instanceId": "cache-invalidator", "key": {"mainId": main_id}})


@pytest.fixture
def window(database):
    """Whisks and subjects changed before, inside and after a window: (since, until) as ISO times."""
    whisks, subjects = database.get_container_client("whisks"), database.get_container_client("subjects")
    whisks.upsert_item({"id": "guest|before"})
    subjects.upsert_item({"id": "early", "namespaces": [{"name": "early-ns"}]})
    next_second()
    since = datetime.now(timezone.utc)
    for i in range(12):
        whisks.upsert_item({"id": f"guest|inside{i}"})
    whisks.upsert_item({"id": "guest|mine", "_clusterId": "eu"})
    subjects.upsert_item({"id": "alice", "namespaces": [{"name": "alice"}, {"name": "team"}]})
    until = datetime.now(timezone.utc)
    next_second()
    whisks.upsert_item({"id": "guest|after"})
    subjects.upsert_item({"id": "late", "namespaces": [{"name": "late-ns"}]})
    return since.isoformat(), until.isoformat()


INSIDE = sorted([whisks_message(f"guest|inside{i}") for i in range(12)]
                + [("alice", contract_json({"instanceId": "cache-invalidator", "key": {"mainId": "alice"}})),
                   ("team", contract_json({"instanceId": "cache-invalidator", "key": {"mainId": "team"}}))])


def test_replay_sends_the_window_of_every_feed_range_to_kafka_byte_for_byte(kafka_broker, topic, database, settings,
                                                                           window):
    since, until = window
    code, out, err = run(["replay", "--container", "all", "--since", since, "--until", until, "--page-size", "2"],
                         settings)
    assert code == 0, err
    assert out == ""
    assert sorted(read_topic(kafka_broker.bootstrap, topic)) == INSIDE
    assert "1 of this cluster skipped" in err


def test_replay_leaves_out_changes_before_since_whatever_the_server_does(kafka_broker, topic, cosmos_emulator,
                                                                        settings, window):
    since, _ = window
    code, _, err = run(["replay", "--container", "all", "--since", since], settings)
    assert code == 0, err
    sent = [key for key, _ in read_topic(kafka_broker.bootstrap, topic)]
    assert "guest/before" not in sent and "early" not in sent and "early-ns" not in sent
    assert sorted(sent) == sorted([key for key, _ in INSIDE] + ["guest/after", "late", "late-ns"])
    if cosmos_emulator.managed:
        # The emulator ignores the start time and hands the earlier change too: the _ts bound keeps it out.
        assert "whisks: 15 documents read" in err and "1 changed before --since left out" in err


def test_replay_reads_each_feed_range_page_by_page(kafka_broker, topic, database, settings, window):
    since, until = window
    code, _, err = run(["replay", "--container", "whisks", "--since", since, "--until", until, "--page-size", "1"],
                       settings)
    assert code == 0, err
    # With pages of one change, every change read is a page of its own, and every feed range was read.
    read = re.search(r"whisks: (\d+) documents read in (\d+) pages, 12 messages sent", err)
    assert read, err
    assert int(read[1]) == int(read[2]) >= 14
    assert len(read_topic(kafka_broker.bootstrap, topic)) == 12


def test_replay_names_a_missing_database_and_a_missing_container(database, settings):
    code, _, err = run(["replay", "--container", "whisks", "--since", "2024-05-01"],
                       {**settings, "COSMOSDB_NAME": database.id + "-missing"})
    assert code == 1 and f"error: database '{database.id}-missing' (COSMOSDB_NAME) does not exist" in err
    code, _, err = run(["replay", "--container", "whisks", "--since", "2024-05-01"],
                       {**settings, "COSMOSDB_WHISKS_CONTAINER": "whisks2"})
    assert code == 1 and f"error: container 'whisks2' does not exist in database '{database.id}'" in err


def test_replay_dry_run_prints_the_window_and_sends_nothing(kafka_broker, topic, database, settings, window):
    since, until = window
    code, out, err = run(["replay", "--container", "all", "--since", since, "--until", until, "--dry-run"], settings)
    assert code == 0, err
    assert sorted(tuple(line.split("\t")) for line in out.splitlines()) == INSIDE
    assert read_topic(kafka_broker.bootstrap, topic) == []
    assert "(dry run)" in err


# -- what an operator's sign-in needs ----------------------------------------------------------------


def test_check_and_replay_ask_only_for_what_an_operators_data_reader_grants(cosmos_emulator, database, settings,
                                                                             window, cosmos_requests):
    write_leases(database, "whisks", "eu-whisks", cosmos_emulator.endpoint, ["host-a"])
    since, until = window
    cosmos_requests.mark()
    code, out, _ = run(["check", "--no-kafka"], settings)
    assert code == 0, out
    code, _, err = run(["replay", "--container", "all", "--since", since, "--until", until, "--dry-run"], settings)
    assert code == 0, err
    asked = cosmos_requests.requests()
    # Data Reader on whisks, subjects and the lease container: the database is never read, nothing written.
    grants = grants_of(OPERATOR, database.id, {"whisks": "whisks", "subjects": "subjects", "lease": LEASES})
    assert asked and refused(asked, grants) == set()
    assert {r.action for r in asked} & WRITES == set()


def test_mark_gives_each_container_a_mark_of_the_all_versions_and_deletes_feed_that_replay_reads(
        kafka_broker, topic, database, settings, tmp_path):
    code, out, err = run(["mark"], settings)
    marks = tmp_path / "marks.json"
    marks.write_text(out)
    document = json.loads(out)
    assert (code, document["database"], sorted(document["marks"])) == (0, database.id, ["subjects", "whisks"]), err
    code, _, err = run(["replay", "--container", "all", "--from-mark", str(marks)], settings)
    assert (code, read_topic(kafka_broker.bootstrap, topic)) == (0, []), err
    assert "whisks: 0 documents read" in err and "subjects: 0 documents read" in err


def test_replay_from_a_mark_sends_the_hard_deletes_made_after_it_and_skips_this_regions_writes(
        kafka_broker, topic, database, settings, tmp_path):
    code, out, err = run(["mark"], settings)
    assert code == 0, err
    marks = tmp_path / "marks.json"
    marks.write_text(out)
    whisks, subjects = database.get_container_client("whisks"), database.get_container_client("subjects")
    whisks.create_item({"id": "guest|mine", "_clusterId": "eu"})
    whisks.create_item({"id": "guest|theirs", "_clusterId": "us"})
    whisks.delete_item("guest|mine", partition_key="guest|mine")
    subjects.create_item({"id": "alice", "namespaces": [{"name": "alice-team"}], "_clusterId": "eu"})
    subjects.delete_item("alice", partition_key="alice")
    code, _, err = run(["replay", "--container", "all", "--from-mark", str(marks)], settings)
    assert code == 0, err
    assert "whisks: 3 documents read" in err and "1 of this cluster skipped" in err, err
    # The deleted subject has no previous image here: its id alone.
    assert sorted(read_topic(kafka_broker.bootstrap, topic)) == sorted(
        [whisks_message("guest|mine"), whisks_message("guest|theirs"), whisks_message("alice")])
