"""The documents `scripts/cosmos put|delete` write: OpenWhisk's CosmosDBArtifactStore's, on plain data."""

import pytest

from devhost import controller

NOW = 1_700_000_000_000


def whisks_document(qualified, entity_type="package", cluster_id=None, **extra):
    return controller.cosmos_document(controller.entity_record(qualified, entity_type, now_ms=NOW, **extra),
                                      controller.WHISKS, cluster_id)


def test_a_package_is_stored_under_its_escaped_id_with_its_namespace_and_root_namespace():
    assert whisks_document("guest/test-package") == {
        "id": "guest|test-package", "name": "test-package", "namespace": "guest", "entityType": "package",
        "updated": NOW, "version": "0.0.1", "publish": False, "annotations": [], "binding": {}, "parameters": [],
        "_c": {"rootns": "guest"}}


def test_an_action_in_a_package_has_the_package_in_its_namespace_and_the_controllers_annotations():
    document = whisks_document("guest/pkg/hello", "action")
    assert (document["id"], document["namespace"], document["name"], document["_c"]) == (
        "guest|pkg|hello", "guest/pkg", "hello", {"rootns": "guest"})
    assert document["annotations"] == [{"key": "provide-api-key", "value": False},
                                       {"key": "exec", "value": "nodejs:20"}]
    assert document["limits"] == {"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1}


def test_a_rule_names_its_trigger_and_action_fully_qualified():
    document = whisks_document("guest/r1", "rule", trigger="t1", action="other/a1")
    assert (document["trigger"], document["action"]) == ({"path": "guest", "name": "t1"},
                                                         {"path": "other", "name": "a1"})


def test_the_cluster_id_is_stamped_only_when_given():
    assert whisks_document("guest/p", cluster_id="westeurope")["_clusterId"] == "westeurope"
    assert "_clusterId" not in whisks_document("guest/p")


def test_a_subject_holds_each_namespace_with_a_uuid_and_a_64_character_key():
    document = controller.cosmos_document(controller.subject_record("alice", ["alice", "team-a"]),
                                          controller.SUBJECTS, None)
    assert (document["id"], document["subject"], [ns["name"] for ns in document["namespaces"]]) == (
        "alice", "alice", ["alice", "team-a"])
    assert {len(ns["key"]) for ns in document["namespaces"]} == {64}
    assert "_c" not in document


def test_printing_a_subject_never_shows_a_key():
    document = controller.cosmos_document(controller.subject_record("alice", []), controller.SUBJECTS, None)
    key = document["namespaces"][0]["key"]
    assert key not in repr(controller.redacted(document)) and document["namespaces"][0]["key"] == key


def test_a_soft_delete_writes_the_entity_again_deleted_with_its_ttl_and_the_deleting_clusters_stamp():
    stored = {**whisks_document("guest/p", cluster_id="eastus"), "_etag": '"1"', "_ts": 1, "_rid": "x", "ttl": 5}
    document = controller.soft_deleted(stored, controller.WHISKS, "westeurope", 604800)
    assert document == {**whisks_document("guest/p", cluster_id="westeurope"), "_deleted": True, "ttl": 604800}


@pytest.mark.parametrize("name", ["test-package", "guest/", "/guest", "guest|p/x"])
def test_a_name_openwhisk_would_not_store_is_refused(name):
    with pytest.raises(controller.EntityNameError):
        whisks_document(name)
