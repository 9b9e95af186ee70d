"""Both functions invoked through the worker runtime with all-versions-and-deletes batches as the host writes them,
and driven end to end by Microsoft's Java processor in that mode.

For a `str` parameter the Cosmos DB extension hands `JArray.FromObject(changes)` of the .NET SDK's
`ChangeFeedItem<JObject>` as text (CosmosDBTriggerValueBinder): `"current": null` on a delete, `crts` a
double (`1719000120.0`), `previous` only where the container keeps previous images. `JToken.ToString()`
writes it indented, which the first tests send; the compact form crosses in test_runtime_vectors.py and
from devhost's listener below. Which of the two the host's conversion for the worker finally sends, only a
deployment shows; the app reads both alike.
"""

import json

from tests.kafka_reading import new_topic_name, read_topic


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


# -- end to end: Microsoft's Java processor in that mode drives the app -----------------------------------------


def own_leases_ready(database, prefixes):
    """Every lease of these prefixes holds a continuation: the processor read each feed range once, from now."""
    from tests.lease_documents import LEASES

    found = [doc for doc in database.get_container_client(LEASES).read_all_items()
             if doc["id"].startswith(prefixes) and "LeaseToken" in doc]
    return len(found) == 4 * len(prefixes) and all(doc.get("ContinuationToken") for doc in found)


def handed(instance):
    """(function, operationType, id) of every change of a batch the instance answered ok, in order."""
    return [(batch.function, *operation) for batch in list(instance.batches) if batch.outcome == "ok"
            for operation in batch.operations]


def test_a_hard_delete_in_one_region_invalidates_the_entity_in_the_other_regions_kafka(
        cosmos_emulator, kafka_broker, cosmos_database, start_instance):
    """Region westeurope's controllers create, update and hard-delete an action and a subject. Both regions' apps
    read the all-versions-and-deletes feed through Microsoft's Java processor (handleAllVersionsAndDeletesChanges)
    and the worker runtime: eastus's Kafka gets every change, the deletes included; westeurope's own writes are
    skipped, and its deletes, which carry no stamp, are sent. The subjects container keeps previous images of
    deletes, so the deleted subject's namespace is named too."""
    from azure.cosmos import PartitionKey

    from devhost.trigger_listener import wait_for
    from tests.written_changes import DELIVERY_TIMEOUT, app_settings_over

    database = cosmos_database
    database.create_container("whisks", partition_key=PartitionKey(path="/id"))
    # previousImageRetentionPolicy mode 2: previous images of deletes (tests/test_cosmos_emulator_avad.py)
    database.client_connection.CreateContainer(database.database_link, {
        "id": "subjects", "partitionKey": {"paths": ["/id"], "kind": "Hash", "version": 2},
        "previousImageRetentionPolicy": {"supportedFeatures": {"allVersionsAndDeletes": {"mode": 2}}}})
    topics, instances = {}, {}
    for region in ("westeurope", "eastus"):
        topics[region] = new_topic_name(f"cacheInvalidation-{region}")
        kafka_broker.create_topic(topics[region])
        settings = app_settings_over(cosmos_emulator, database, kafka_broker, topics[region], CLUSTER_ID=region,
                                     COSMOSDB_CHANGE_FEED_MODE="AllVersionsAndDeletes",
                                     COSMOSDB_START_FROM_BEGINNING="false", COSMOSDB_FEED_POLL_DELAY_MS="100")
        instances[region] = start_instance(settings, f"{region}-1")
        wait_for(lambda: own_leases_ready(database, (f"{region}-whisks-avad", f"{region}-subjects-avad")),
                 DELIVERY_TIMEOUT, f"{region}'s eight leases read once from now")
    whisks, subjects = database.get_container_client("whisks"), database.get_container_client("subjects")
    action = {"id": "guest|hello", "namespace": "guest", "name": "hello", "_clusterId": "westeurope"}
    subject = {"id": "alice", "subject": "alice", "namespaces": [{"name": "alice"}, {"name": "alice-team"}],
               "_clusterId": "westeurope"}

    whisks.create_item({**action, "exec": {"kind": "nodejs:20"}})
    whisks.replace_item(action["id"], {**action, "exec": {"kind": "nodejs:20", "code": "v2"}})
    subjects.create_item(subject)
    writes = [("invalidate_whisks", "create", "guest|hello"), ("invalidate_whisks", "replace", "guest|hello"),
              ("invalidate_subjects", "create", "alice")]
    for region, instance in instances.items():
        wait_for(lambda: sorted(handed(instance)) == sorted(writes), DELIVERY_TIMEOUT, f"{region}: the writes handed")
    after_writes = {region: read_topic(kafka_broker.bootstrap, topic) for region, topic in topics.items()}

    whisks.delete_item(action["id"], partition_key=action["id"])
    subjects.delete_item(subject["id"], partition_key=subject["id"])
    deletes = [("invalidate_whisks", "delete", "guest|hello"), ("invalidate_subjects", "delete", "alice")]
    for region, instance in instances.items():
        wait_for(lambda: sorted(handed(instance)) == sorted(writes + deletes), DELIVERY_TIMEOUT,
                 f"{region}: the deletes handed")
    after_deletes = {region: read_topic(kafka_broker.bootstrap, topic) for region, topic in topics.items()}

    deleted = [message("alice"), message("alice-team"), message("guest/hello")]
    # eastus: each write's keys (a batch sends one entity's message once), then each delete's.
    assert set(after_writes["eastus"]) == {message("guest/hello"), message("alice"), message("alice-team")}
    assert sorted(after_deletes["eastus"][len(after_writes["eastus"]):]) == deleted
    # westeurope: its own writes skipped, its own deletes sent.
    assert (after_writes["westeurope"], sorted(after_deletes["westeurope"])) == ([], deleted)
    assert [instance.failed() for instance in instances.values()] == [[], []]
