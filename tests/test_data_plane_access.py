"""tests/data_plane_access.py, the judge of which requests a role assignment allows, held to the emulator's log.

Each SDK operation is made with azure-cosmos against the emulator, and the request it logged must be the
data-plane action Microsoft names for that operation; then the judge must refuse what a grant does not cover.
"""

import pytest
from azure.cosmos import PartitionKey

from tests.data_plane_access import (DATA_CONTRIBUTOR_ID, DATA_READER_ID, EXECUTE_QUERY, ITEMS, READ_CHANGE_FEED,
                                     READ_METADATA, Request, allowed, refused)


@pytest.fixture
def container(cosmos_database):
    container = cosmos_database.create_container("whisks", partition_key=PartitionKey(path="/id"))
    container.create_item({"id": "guest|hello"})
    return container


OPERATIONS = {
    "read the database": (lambda db, c: db.read(), "GET", READ_METADATA, "/dbs/{db}"),
    "read the container": (lambda db, c: c.read(), "GET", READ_METADATA, "/dbs/{db}/colls/whisks"),
    "list its feed ranges": (lambda db, c: list(c.read_feed_ranges()), "GET", READ_METADATA, "/dbs/{db}/colls/whisks"),
    "read its change feed": (lambda db, c: list(c.query_items_change_feed(start_time="Beginning")), "GET",
                             READ_CHANGE_FEED, "/dbs/{db}/colls/whisks"),
    "query it": (lambda db, c: list(c.query_items("SELECT * FROM c", enable_cross_partition_query=True)), "POST",
                 EXECUTE_QUERY, "/dbs/{db}/colls/whisks"),
    "read an item": (lambda db, c: c.read_item("guest|hello", "guest|hello"), "GET", f"{ITEMS}/read",
                     "/dbs/{db}/colls/whisks"),
    "create an item": (lambda db, c: c.create_item({"id": "guest|new"}), "POST", f"{ITEMS}/create",
                       "/dbs/{db}/colls/whisks"),
    "upsert an item": (lambda db, c: c.upsert_item({"id": "guest|hello", "v": 2}), "POST", f"{ITEMS}/upsert",
                       "/dbs/{db}/colls/whisks"),
    "replace an item": (lambda db, c: c.replace_item("guest|hello", {"id": "guest|hello", "v": 3}), "PUT",
                        f"{ITEMS}/replace", "/dbs/{db}/colls/whisks"),
    "delete an item": (lambda db, c: c.delete_item("guest|hello", "guest|hello"), "DELETE", f"{ITEMS}/delete",
                       "/dbs/{db}/colls/whisks"),
}


@pytest.mark.parametrize("operation", OPERATIONS)
def test_each_sdk_operation_is_logged_as_the_data_plane_action_microsoft_names(operation, cosmos_database, container,
                                                                                cosmos_requests):
    do, method, action, scope = OPERATIONS[operation]
    cosmos_requests.mark()
    do(cosmos_database, container)
    seen = {(r.method, r.action, r.scope) for r in cosmos_requests.requests() if r.path.startswith("/dbs/")}
    assert (method, action, scope.format(db=cosmos_database.id)) in seen, seen


READER_ON_WHISKS = [(DATA_READER_ID, "/dbs/db/colls/whisks")]


def request(method, path, **headers):
    return Request(method, path, headers, 200)


def test_a_reader_on_a_container_reads_its_feed_and_metadata_and_the_accounts_properties():
    for asked in (request("GET", "/dbs/db/colls/whisks/docs", **{"a-im": "Incremental feed"}),
                  request("GET", "/dbs/db/colls/whisks"), request("GET", "/dbs/db/colls/whisks/pkranges"),
                  request("GET", "/")):
        assert allowed(asked, READER_ON_WHISKS), asked


def test_a_reader_on_a_container_may_not_read_its_database_nor_another_container():
    for asked in (request("GET", "/dbs/db"), request("GET", "/dbs/db/colls"), request("GET", "/dbs"),
                  request("GET", "/dbs/db/colls/subjects/docs", **{"a-im": "Incremental feed"})):
        assert not allowed(asked, READER_ON_WHISKS), asked


def test_a_reader_may_not_write_items_and_a_contributor_may():
    writes = [request("POST", "/dbs/db/colls/whisks/docs"), request("PUT", "/dbs/db/colls/whisks/docs/x"),
              request("DELETE", "/dbs/db/colls/whisks/docs/x")]
    assert refused(writes, READER_ON_WHISKS) == {(r.method, r.path, r.action) for r in writes}
    assert refused(writes, [(DATA_CONTRIBUTOR_ID, "/dbs/db/colls/whisks")]) == set()


def test_no_data_plane_role_creates_or_deletes_a_container():
    assert not allowed(request("DELETE", "/dbs/db/colls/whisks"), [(DATA_CONTRIBUTOR_ID, "/")])
