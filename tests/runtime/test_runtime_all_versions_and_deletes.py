"""Both functions invoked through the worker runtime with all-versions-and-deletes batches in the text the host sends.

For a `str` parameter the Cosmos DB extension hands `JArray.FromObject(changes).ToString()`
(CosmosDBTriggerValueBinder): Newtonsoft.Json's indented form of ChangeFeedItem<JObject>, with
`"current": null` on a delete, `crts` a double (`1719000120.0`), and `previous` only where the
container keeps previous images. The vectors (tests/vectors/all_versions_and_deletes.json) cross
the runtime compact in test_runtime_vectors.py; here the indented text itself.
"""

import json

from tests.kafka_reading import read_topic


def newtonsoft_text(items):
    """As JToken.ToString() writes it: indented by two spaces, `"name": value`, a double always with its fraction."""
    return json.dumps(items, indent=2, ensure_ascii=False)


def envelope(operation, crts, lsn, current=None, previous=None, doc_id=None):
    metadata = {"crts": crts, "lsn": lsn, "operationType": operation, "previousImageLSN": lsn - 1 if lsn > 1 else 0,
                "timeToLiveExpired": False}
    if doc_id is not None:
        metadata.update(id=doc_id, partitionKey={"id": doc_id})
    item = {"current": current, "metadata": metadata}
    if previous is not None:
        item["previous"] = previous
    return item


def message(main_id):
    return main_id, json.dumps({"instanceId": "cache-invalidator", "key": {"mainId": main_id}}, separators=(",", ":"))


def test_the_whisks_function_sends_a_hard_delete_without_a_previous_image(start_worker, app_settings, kafka_broker,
                                                                          topic):
    host = start_worker({**app_settings, "CLUSTER_ID": "westeurope", "COSMOSDB_CHANGE_FEED_MODE": "AllVersionsAndDeletes"})
    text = newtonsoft_text([
        envelope("create", 1719000000.0, 41, current={"id": "guest|hello", "_clusterId": "westeurope", "_ts": 1719000000}),
        envelope("replace", 1719000060.0, 42, current={"id": "guest|hello", "_clusterId": "westeurope", "_ts": 1719000060}),
        envelope("delete", 1719000120.0, 43, doc_id="guest|hello"),
    ])
    assert ('"current": null' in text, '"crts": 1719000120.0' in text, '"previous"' in text) == (True, True, False)
    assert host.invoke("invalidate_whisks", text) == ("Success", "")
    assert read_topic(kafka_broker.bootstrap, topic) == [message("guest/hello")]


def test_the_subjects_function_sends_a_deleted_subjects_namespaces_from_its_previous_image(
        start_worker, app_settings, kafka_broker, topic):
    host = start_worker({**app_settings, "COSMOSDB_CHANGE_FEED_MODE": "AllVersionsAndDeletes"})
    previous = {"id": "alice", "subject": "alice", "namespaces": [{"name": "alice", "uuid": "u1", "key": "k1"},
                                                                  {"name": "alice-team", "uuid": "u2", "key": "k2"}],
                "_ts": 1719000000}
    text = newtonsoft_text([envelope("delete", 1719000120.5, 51, previous=previous, doc_id="alice"),
                            envelope("delete", 1719000121.0, 52, doc_id="bob"),
                            envelope("delete", 1719000122.0, 53, doc_id="guest|limits")])
    assert ('"current": null' in text, '"previous": {' in text) == (True, True)
    assert host.invoke("invalidate_subjects", text) == ("Success", "")
    assert read_topic(kafka_broker.bootstrap, topic) == [
        message("alice"), message("alice-team"), message("bob"), message("guest/limits"), message("guest")]


def test_a_malformed_element_is_logged_as_poison_and_the_rest_is_sent(start_worker, app_settings, kafka_broker, topic):
    host = start_worker({**app_settings, "COSMOSDB_CHANGE_FEED_MODE": "AllVersionsAndDeletes"})
    text = newtonsoft_text([{"current": None, "metadata": {"crts": 1719000120.0, "operationType": "delete"}},
                            envelope("delete", 1719000121.0, 52, doc_id="guest|gone")])
    assert host.invoke("invalidate_whisks", text) == ("Success", "")
    poison = [log.message for log in host.logs if log.level == host.protos.RpcLog.Error and "poison" in log.message]
    assert (read_topic(kafka_broker.bootstrap, topic), len(poison), "a delete without metadata.id" in poison[0]) == (
        [message("guest/gone")], 1, True)
