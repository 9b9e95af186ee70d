"""The emulator's all versions and deletes change feed, judged by Microsoft's Python SDK azure-cosmos.

azure-cosmos reads it with ``query_items_change_feed(mode="AllVersionsAndDeletes")`` (from 4.14.0: 4.9.0, the
release before it, has no `mode`; requirements.txt still allows >=4.8, devhost/requirements.txt pins
4.17.1), sending ``A-IM: Full-Fidelity Feed`` and ``x-ms-cosmos-changefeed-wire-format-version: 2021-09-15``, and
hands each change over as the service sent it: ``{"current", "previous"?, "metadata"}``. The shape is the
service's documented one (scripts/cosmos-emulator/src/all_versions.rs cites it and the SDKs' parsers). The tests
that send requests of their own (unsigned) or create a container with a previous image policy describe the emulator
and skip on COSMOSDB_TEST_CONNECTION, whose account needs the feature for the others; Microsoft's Java processor reads the same feed in
tests/runtime/test_runtime_trigger_listener_avad.py.
"""

import json
import urllib.error
import urllib.request

import pytest
from azure.cosmos import PartitionKey
from azure.cosmos.exceptions import CosmosHttpResponseError

AVAD = "AllVersionsAndDeletes"


@pytest.fixture
def container(cosmos_database):
    return cosmos_database.create_container("whisks", partition_key=PartitionKey(path="/id"))


def from_now(container):
    """The continuation of a read of the whole container's feed from now."""
    assert list(container.query_items_change_feed(mode=AVAD)) == []
    return container.client_connection.last_response_headers["etag"]


def changes_since(container, continuation, **options):
    """(changes, continuation to resume from) of the whole container after `continuation`."""
    changes = list(container.query_items_change_feed(mode=AVAD, continuation=continuation, **options))
    return changes, container.client_connection.last_response_headers["etag"]


def operations(changes):
    return [(c["metadata"]["operationType"], (c.get("current") or {}).get("id") or c["metadata"]["id"])
            for c in changes]


def test_from_now_the_feed_holds_only_later_changes(container):
    container.upsert_item({"id": "guest|before"})
    start = from_now(container)
    container.upsert_item({"id": "guest|after"})
    changes, _ = changes_since(container, start)
    assert operations(changes) == [("create", "guest|after")]


def test_creates_replaces_and_a_hard_delete_come_in_the_order_they_were_made(container):
    start = from_now(container)
    container.create_item({"id": "guest|hello", "version": 1})
    container.upsert_item({"id": "guest|hello", "version": 2})
    container.replace_item("guest|hello", {"id": "guest|hello", "version": 3})
    container.delete_item("guest|hello", partition_key="guest|hello")
    changes, _ = changes_since(container, start)
    assert operations(changes) == [("create", "guest|hello"), ("replace", "guest|hello"),
                                   ("replace", "guest|hello"), ("delete", "guest|hello")]
    assert [c["current"]["version"] for c in changes[:3]] == [1, 2, 3]
    lsns = [c["metadata"]["lsn"] for c in changes]
    assert lsns == sorted(lsns) and len(set(lsns)) == 4


def test_a_create_carries_the_document_as_stored_its_lsn_and_crts(container):
    start = from_now(container)
    stored = container.create_item({"id": "guest|new", "exec": {"kind": "nodejs:20"}})
    [change], _ = changes_since(container, start)
    assert change["current"] == stored
    assert change["metadata"] == {"operationType": "create", "lsn": change["metadata"]["lsn"], "crts": stored["_ts"]}
    assert type(change["metadata"]["lsn"]) is int and type(change["metadata"]["crts"]) is int


def test_a_replace_names_the_lsn_of_the_version_it_replaced(container):
    start = from_now(container)
    container.upsert_item({"id": "guest|twice", "version": 1})
    container.upsert_item({"id": "guest|twice", "version": 2})
    created, replaced = changes_since(container, start)[0]
    assert replaced["metadata"]["operationType"] == "replace"
    assert replaced["metadata"]["previousImageLSN"] == created["metadata"]["lsn"]


def test_a_hard_delete_carries_its_id_and_partition_key_and_no_current(container):
    container.upsert_item({"id": "guest|gone"})
    start = from_now(container)
    container.delete_item("guest|gone", partition_key="guest|gone")
    [change], _ = changes_since(container, start)
    assert "current" not in change and "previous" not in change
    metadata = change["metadata"]
    assert {k: metadata[k] for k in ("operationType", "id", "partitionKey", "timeToLiveExpired")} == {
        "operationType": "delete", "id": "guest|gone", "partitionKey": {"id": "guest|gone"},
        "timeToLiveExpired": False}
    assert type(metadata["crts"]) is int and metadata["previousImageLSN"] < metadata["lsn"]


def test_resuming_from_a_continuation_hands_only_the_changes_after_it(container):
    start = from_now(container)
    container.upsert_item({"id": "guest|first"})
    _, resume = changes_since(container, start)
    container.upsert_item({"id": "guest|first", "version": 2})
    container.delete_item("guest|first", partition_key="guest|first")
    changes, _ = changes_since(container, resume)
    assert operations(changes) == [("replace", "guest|first"), ("delete", "guest|first")]


def test_an_unchanged_feed_answers_304(container):
    start = from_now(container)
    container.upsert_item({"id": "guest|only"})
    _, resume = changes_since(container, start)
    statuses = []
    changes, _ = changes_since(container, resume,
                               raw_response_hook=lambda r: statuses.append(r.http_response.status_code))
    assert changes == [] and set(statuses) == {304}


def test_a_page_holds_at_most_max_item_count_changes(container):
    feed_range = next(iter(container.read_feed_ranges()))
    start = list(container.query_items_change_feed(mode=AVAD, feed_range=feed_range))
    assert start == []
    start = container.client_connection.last_response_headers["etag"]
    for i in range(40):
        container.upsert_item({"id": f"guest|doc{i}"})
    everything = list(container.query_items_change_feed(mode=AVAD, continuation=start))
    pager = container.query_items_change_feed(mode=AVAD, continuation=start, max_item_count=2)
    pages = [list(page) for page in pager.by_page()]
    assert len(everything) > 2 and max(len(page) for page in pages) == 2
    assert [change for page in pages for change in page] == everything


def test_a_partition_key_reads_only_that_documents_changes(container):
    continuation = list(container.query_items_change_feed(mode=AVAD, partition_key="guest|mine"))
    assert continuation == []
    continuation = container.client_connection.last_response_headers["etag"]
    for doc_id in ("guest|mine", "guest|other", "guest|mine"):
        container.upsert_item({"id": doc_id})
    container.delete_item("guest|other", partition_key="guest|other")
    changes = list(container.query_items_change_feed(mode=AVAD, continuation=continuation))
    assert operations(changes) == [("create", "guest|mine"), ("replace", "guest|mine")]


def test_the_latest_version_feed_of_the_same_writes_is_unchanged(container):
    container.upsert_item({"id": "guest|x", "version": 1})
    container.upsert_item({"id": "guest|x", "version": 2})
    container.upsert_item({"id": "guest|y"})
    container.delete_item("guest|y", partition_key="guest|y")
    changes = list(container.query_items_change_feed(start_time="Beginning"))
    assert [(c["id"], c.get("version")) for c in changes] == [("guest|x", 2)]


# -- previous images: only where the container asks for them --------------------------------------------------------

def create_container_keeping_previous_images(database, mode):
    """A container whose previousImageRetentionPolicy asks for previous images in this feed (mode: 1 replaces,
    2 deletes, 3 both; the wire form of azure-sdk-for-java's PreviousImageRetentionPolicyTest.java), created
    through the Python SDK's own request, which has no option for it."""
    body = {"id": "whisks-previous", "partitionKey": {"paths": ["/id"], "kind": "Hash", "version": 2},
            "previousImageRetentionPolicy": {"supportedFeatures": {"allVersionsAndDeletes": {"mode": mode}}}}
    database.client_connection.CreateContainer(database.database_link, body)
    return database.get_container_client("whisks-previous")


def test_previous_images_come_with_replaces_and_deletes_where_the_container_keeps_them(emulator_only,
                                                                                      cosmos_database):
    container = create_container_keeping_previous_images(cosmos_database, 3)
    start = from_now(container)
    container.upsert_item({"id": "guest|kept", "version": 1})
    container.upsert_item({"id": "guest|kept", "version": 2})
    container.delete_item("guest|kept", partition_key="guest|kept")
    created, replaced, deleted = changes_since(container, start)[0]
    assert "previous" not in created
    assert replaced["previous"]["version"] == 1 and deleted["previous"]["version"] == 2


def test_a_container_keeping_previous_images_of_deletes_only_has_none_on_replaces(emulator_only, cosmos_database):
    container = create_container_keeping_previous_images(cosmos_database, 2)
    start = from_now(container)
    container.upsert_item({"id": "guest|kept", "version": 1})
    container.upsert_item({"id": "guest|kept", "version": 2})
    container.delete_item("guest|kept", partition_key="guest|kept")
    _, replaced, deleted = changes_since(container, start)[0]
    assert "previous" not in replaced and deleted["previous"]["version"] == 2


def test_a_container_without_the_policy_has_no_previous_images(container):
    start = from_now(container)
    container.upsert_item({"id": "guest|plain", "version": 1})
    container.upsert_item({"id": "guest|plain", "version": 2})
    container.delete_item("guest|plain", partition_key="guest|plain")
    changes, _ = changes_since(container, start)
    assert [c for c in changes if "previous" in c] == []


# -- the starts the service refuses (azure-cosmos refuses them itself, so these requests are sent by hand) ---------

def raw_feed_read(endpoint, database, container, headers):
    """(status, body) of an unsigned AVAD read of one partition key range (the emulator checks no key)."""
    request = urllib.request.Request(
        f"{endpoint.rstrip('/')}/dbs/{database}/colls/{container}/docs",
        headers={"A-IM": "Full-Fidelity Feed", "x-ms-cosmos-changefeed-wire-format-version": "2021-09-15",
                 "x-ms-documentdb-partitionkeyrangeid": "0", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_a_start_from_the_beginning_is_refused_with_400(emulator_only, cosmos_emulator, cosmos_database, container):
    status, body = raw_feed_read(cosmos_emulator.endpoint, cosmos_database.id, container.id, {})
    assert status == 400 and "start from the beginning" in body["message"]


def test_a_start_time_is_refused_with_400(emulator_only, cosmos_emulator, cosmos_database, container):
    status, body = raw_feed_read(cosmos_emulator.endpoint, cosmos_database.id, container.id,
                                 {"If-None-Match": "*", "If-Modified-Since": "Tue, 01 Dec 2026 10:00:00 GMT"})
    assert status == 400 and "point-in-time start" in body["message"]


def test_a_continuation_of_the_latest_version_feed_is_refused_with_400(emulator_only, cosmos_emulator,
                                                                         cosmos_database, container):
    container.upsert_item({"id": "guest|lv"})
    list(container.query_items_change_feed(start_time="Beginning"))
    latest_version_etag = '{"kind":"change_feed_cursor_v1","lsn":1,"epk":"","id":"guest|lv"}'
    status, body = raw_feed_read(cosmos_emulator.endpoint, cosmos_database.id, container.id,
                                 {"If-None-Match": latest_version_etag})
    assert status == 400 and "continuation" in body["message"]


# -- an account without the feature ---------------------------------------------------------------------------------

def test_an_account_without_the_feature_refuses_the_feed_with_400_naming_the_mode(cosmos_database_without_avad):
    container = cosmos_database_without_avad.create_container("whisks", partition_key=PartitionKey(path="/id"))
    with pytest.raises(CosmosHttpResponseError) as refused:
        list(container.query_items_change_feed(mode=AVAD))
    assert refused.value.status_code == 400
    assert "Change Feed 'All Versions and Deletes' mode must be enabled." in refused.value.message


def test_an_account_without_the_feature_serves_the_latest_version_feed(cosmos_database_without_avad):
    container = cosmos_database_without_avad.create_container("whisks", partition_key=PartitionKey(path="/id"))
    container.upsert_item({"id": "guest|still"})
    assert [c["id"] for c in container.query_items_change_feed(start_time="Beginning")] == ["guest|still"]
