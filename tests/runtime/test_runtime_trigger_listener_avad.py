"""Microsoft's Java change feed processor in all versions and deletes mode (handleAllVersionsAndDeletesChanges) over
the emulator, as devhost/trigger_listener.py runs it for a trigger whose binding says
`"changeFeedMode": "AllVersionsAndDeletes"`.

The processor, the emulator's feed and the listener's serialization are what is under test: `invoke` is a plain
recorder that answers Success, as the worker does for a function that returned. Each change must cross as the
Functions host hands it to the worker for a `str` parameter: the Cosmos DB extension's CosmosDBTriggerValueBinder
writes `JArray.FromObject(...)` of the .NET SDK's `ChangeFeedItem<JObject>` with Newtonsoft, compact
(TriggerListener.asDotNetChangeFeedItem cites both). The text is compared byte for byte.
"""

import json
import threading

import pytest
from azure.cosmos import PartitionKey

from devhost.trigger_listener import LeaseIntervals, TriggerListener, wait_for
from tests.lease_documents import LEASES

TIMEOUT = 60.0
PREFIX = "westeurope-whisks-avad"


class Recorder:
    """An `invoke` that records each batch's JSON text and answers Success."""

    def __init__(self):
        self.texts = []
        self._lock = threading.Lock()

    def __call__(self, function, text, retry_count):
        with self._lock:
            self.texts.append(text)
        return "Success", ""

    @property
    def elements(self):
        """Each change handed over, as the exact JSON text of its element."""
        with self._lock:
            texts = list(self.texts)
        return [compact(element) for text in texts for element in json.loads(text)]


def compact(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@pytest.fixture
def whisks(cosmos_database):
    return cosmos_database.create_container("whisks", partition_key=PartitionKey(path="/id"))


def binding(database):
    """The trigger binding function_app.py declares in this mode, as the worker reports it to the host."""
    return {"type": "cosmosDBTrigger", "direction": "in", "name": "changes", "connection": "COSMOSDB",
            "databaseName": database.id, "containerName": "whisks", "leaseContainerName": LEASES,
            "leaseContainerPrefix": PREFIX, "createLeaseContainerIfNotExists": True, "feedPollDelay": 100,
            "changeFeedMode": "AllVersionsAndDeletes"}


@pytest.fixture
def start_listener(cosmos_emulator, cosmos_database, whisks, trigger_listener_classpath, tmp_path):
    """Starts the processor for the whisks trigger in AVAD mode, handing batches to a Recorder; stopped after."""
    started = []

    def start(host_name="westeurope-1"):
        recorder = Recorder()
        listener = TriggerListener(trigger_listener_classpath, {"invalidate_whisks": binding(cosmos_database)},
                                   {"COSMOSDB": cosmos_emulator.connection_string}, recorder,
                                   host_name=host_name, intervals=LeaseIntervals(renew=1.0, acquire=1.0, expiration=5.0),
                                   stderr_path=tmp_path / f"{host_name}.stderr")
        started.append(listener)
        listener.recorder = recorder
        wait_for(lambda: len(read_leases(cosmos_database)) == 4
                 and all(doc.get("ContinuationToken") for doc in read_leases(cosmos_database)), TIMEOUT,
                 "the four whisks leases read once from now")
        return listener

    yield start
    for listener in started:
        listener.close()


def read_leases(database):
    return [doc for doc in database.get_container_client(LEASES).read_all_items()
            if doc["id"].startswith(PREFIX) and "LeaseToken" in doc]


def continuations(database):
    """Each lease's ContinuationToken, by lease id."""
    return {doc["id"]: doc["ContinuationToken"] for doc in read_leases(database)}


def rewritten_twice(database):
    """A condition that holds once every lease was written at least twice after this call."""
    last = {doc["id"]: doc["_etag"] for doc in read_leases(database)}
    writes = dict.fromkeys(last, 0)

    def condition():
        for doc in read_leases(database):
            if last.get(doc["id"]) != doc["_etag"]:
                last[doc["id"]] = doc["_etag"]
                writes[doc["id"]] = writes.get(doc["id"], 0) + 1
        return min(writes.values()) >= 2

    return condition


def create_replace_and_delete(whisks, doc_id):
    """(created, replaced) as stored, then the document hard-deleted."""
    created = whisks.create_item({"id": doc_id, "exec": {"kind": "nodejs:20"}})
    replaced = whisks.replace_item(doc_id, {"id": doc_id, "exec": {"kind": "python:3.11"}})
    whisks.delete_item(doc_id, partition_key=doc_id)
    return created, replaced


def test_a_create_a_replace_and_a_hard_delete_are_handed_over_in_order(start_listener, whisks):
    listener = start_listener()
    create_replace_and_delete(whisks, "guest|hello")
    wait_for(lambda: len(listener.delivered()) == 3, TIMEOUT, "three changes handed over")
    assert [op for batch in listener.batches for op in batch.operations] == [
        ("create", "guest|hello"), ("replace", "guest|hello"), ("delete", "guest|hello")]


def test_each_change_crosses_as_the_host_serializes_a_change_feed_item(start_listener, whisks):
    listener = start_listener()
    created, replaced = create_replace_and_delete(whisks, "guest|hello")
    wait_for(lambda: len(listener.recorder.elements) == 3, TIMEOUT, "three changes handed over")
    create, replace, delete = listener.recorder.elements
    lsn = [json.loads(element)["metadata"]["lsn"] for element in (create, replace, delete)]
    assert create == ('{"current":' + compact(created) + ',"metadata":{"crts":' + f'{created["_ts"]}.0,"lsn":{lsn[0]},'
                      '"operationType":"create","previousImageLSN":0,"timeToLiveExpired":false}}')
    assert replace == ('{"current":' + compact(replaced) + ',"metadata":{"crts":' + f'{replaced["_ts"]}.0,'
                       f'"lsn":{lsn[1]},"operationType":"replace","previousImageLSN":{lsn[0]},'
                       '"timeToLiveExpired":false}}')
    crts = json.loads(delete)["metadata"]["crts"]
    assert delete == ('{"current":null,"metadata":{"crts":' + f'{crts:.1f},"lsn":{lsn[2]},"operationType":"delete",'
                      f'"previousImageLSN":{lsn[1]},"timeToLiveExpired":false,"id":"guest|hello",'
                      '"partitionKey":{"id":"guest|hello"}}}')


def test_a_new_instance_resumes_from_the_leases_continuations(start_listener, cosmos_database, whisks):
    whisks.upsert_item({"id": "guest|old"})  # before the first start: never handed, unless a start ignored the leases
    first = start_listener("westeurope-1")
    from_now = continuations(cosmos_database)
    whisks.upsert_item({"id": "guest|before"})
    wait_for(lambda: len(first.delivered()) == 1, TIMEOUT, "the first change handed over")
    wait_for(rewritten_twice(cosmos_database), TIMEOUT, "every lease written twice since (checkpoint, renewals)")
    first.close()
    # The first instance is gone, so what its leases hold now is final: the first change's checkpoint, unless a
    # renewal racing it wrote the older continuation back (devhost/__init__.py); then the first change is handed
    # again, at least once.
    checkpointed = continuations(cosmos_database) != from_now
    whisks.upsert_item({"id": "guest|before", "version": 2})
    whisks.delete_item("guest|before", partition_key="guest|before")
    second = start_listener("westeurope-2")
    expected = ([] if checkpointed else [("create", "guest|before")]) + [
        ("replace", "guest|before"), ("delete", "guest|before")]
    wait_for(lambda: len(second.delivered()) == len(expected), TIMEOUT, "the later changes handed over")
    assert [op for batch in second.batches for op in batch.operations] == expected


def test_changes_made_before_the_start_are_not_handed_over(start_listener, whisks):
    whisks.upsert_item({"id": "guest|old"})
    listener = start_listener()
    whisks.upsert_item({"id": "guest|new"})
    wait_for(lambda: len(listener.delivered()) == 1, TIMEOUT, "the later change handed over")
    assert [op for batch in listener.batches for op in batch.operations] == [("create", "guest|new")]
