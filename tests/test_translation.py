"""The pure translation of change batches into invalidation messages."""

import json

import pytest

from cache_invalidator.envelope import unwrap
from cache_invalidator.translation import ContainerKind, Deletion, FeedVersion, UnreadableChange, translate
from tests.vector_cases import CASES, case_id


def run(documents, kind=ContainerKind.WHISKS, **options):
    options.setdefault("instance_id", "cache-invalidator")
    return translate(documents, kind, **options)


def messages(batch):
    return [(i.key.decode("utf-8"), i.value.decode("utf-8")) for i in batch.invalidations]


def main_ids(batch):
    return [json.loads(i.value)["key"]["mainId"] for i in batch.invalidations]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_vector_translates_to_its_exact_messages(case):
    settings = case["settings"]
    batch = run(
        unwrap(case["documents"]).changes,
        ContainerKind(case["container"]),
        cluster_id=settings.get("CLUSTER_ID"),
        invalidate_auth_keys=settings.get("INVALIDATE_AUTH_KEYS") == "true",
    )
    assert messages(batch) == [(m["key"], m["value"]) for m in case["messages"]]
    assert len(batch.poison) == case["poison_documents"]


def test_id_pipes_become_slashes_in_main_id():
    assert main_ids(run([{"id": "guest|pkg|hello"}])) == ["guest/pkg/hello"]


def test_non_ascii_is_written_as_utf8_not_escaped():
    batch = run([{"id": "gäst|héllo✓"}])
    assert batch.invalidations[0].value == '{"instanceId":"cache-invalidator","key":{"mainId":"gäst/héllo✓"}}'.encode()
    assert batch.invalidations[0].key == "gäst/héllo✓".encode()


def test_instance_id_is_configurable():
    batch = run([{"id": "a"}], instance_id="region-b")
    assert json.loads(batch.invalidations[0].value)["instanceId"] == "region-b"


def test_own_cluster_documents_are_counted_not_sent():
    batch = run([{"id": "a", "_clusterId": "west"}, {"id": "b", "_clusterId": "east"}], cluster_id="west")
    assert (main_ids(batch), batch.own_cluster) == (["b"], 1)


def test_poison_documents_keep_their_batch_position():
    batch = run([{"id": "ok"}, None, {"id": 7}, {"id": "a/b"}, {"id": ""}, {}, "text"])
    assert [p.position for p in batch.poison] == [1, 2, 3, 4, 5, 6]


def test_poison_reason_never_contains_document_content():
    batch = run([{"id": 5, "namespaces": [{"key": "s3cr3t"}]}])
    assert "s3cr3t" not in batch.poison[0].reason


def test_lone_surrogate_id_is_poison_not_an_exception():
    batch = run([{"id": "bad\ud800"}, {"id": "good"}])
    assert (len(batch.poison), main_ids(batch)) == (1, ["good"])


def test_whisks_documents_yield_no_namespace_keys():
    batch = run([{"id": "guest|x", "namespaces": [{"name": "other"}]}], ContainerKind.WHISKS)
    assert main_ids(batch) == ["guest/x"]


def test_subject_namespaces_follow_the_id_in_order():
    doc = {"id": "alice", "namespaces": [{"name": "n1"}, {"name": "n2"}, {"name": "n3"}]}
    assert main_ids(run([doc], ContainerKind.SUBJECTS)) == ["alice", "n1", "n2", "n3"]


def test_namespace_entries_without_a_string_name_are_skipped_with_a_reason():
    doc = {"id": "alice", "namespaces": [{"name": 3}, "x", {"uuid": "u"}, {"name": "ok"}]}
    batch = run([doc], ContainerKind.SUBJECTS)
    assert main_ids(batch) == ["alice", "ok"]
    assert [s.entry for s in batch.skipped_namespaces] == [0, 1, 2]


def test_empty_namespace_name_is_skipped():
    batch = run([{"id": "alice", "namespaces": [{"name": ""}]}], ContainerKind.SUBJECTS)
    assert (main_ids(batch), batch.skipped_namespaces[0].reason) == (["alice"], "its name is empty")


def test_namespaces_that_is_not_a_list_is_skipped():
    batch = run([{"id": "alice", "namespaces": {"name": "x"}}], ContainerKind.SUBJECTS)
    assert (main_ids(batch), len(batch.skipped_namespaces)) == (["alice"], 1)


def test_limits_document_invalidates_its_namespace_after_its_id():
    assert main_ids(run([{"id": "ns1|limits"}], ContainerKind.SUBJECTS)) == ["ns1/limits", "ns1"]


def test_limits_of_an_empty_namespace_yields_only_its_id():
    assert main_ids(run([{"id": "|limits"}], ContainerKind.SUBJECTS)) == ["/limits"]


def test_auth_keys_are_not_sent_by_default():
    doc = {"id": "alice", "namespaces": [{"name": "alice", "uuid": "u1", "key": "k1"}]}
    assert b"k1" not in b"".join(i.value for i in run([doc], ContainerKind.SUBJECTS).invalidations)


def test_auth_keys_follow_all_namespace_names_when_enabled():
    doc = {"id": "s", "namespaces": [{"name": "a", "uuid": "u1", "key": "k1"}, {"name": "b", "uuid": "u2", "key": "k2"}]}
    batch = run([doc], ContainerKind.SUBJECTS, invalidate_auth_keys=True)
    keys = [json.loads(i.value)["key"] for i in batch.invalidations]
    assert keys == [
        {"mainId": "s"}, {"mainId": "a"}, {"mainId": "b"},
        {"mainId": "u1", "secondaryId": "k1"}, {"mainId": "u2", "secondaryId": "k2"},
    ]


def test_auth_key_message_is_keyed_by_uuid():
    doc = {"id": "s", "namespaces": [{"name": "a", "uuid": "u1", "key": "k1"}]}
    batch = run([doc], ContainerKind.SUBJECTS, invalidate_auth_keys=True)
    assert batch.invalidations[-1].key == b"u1"


def test_duplicates_across_documents_are_sent_once_at_first_place():
    docs = [{"id": "alice", "namespaces": [{"name": "shared"}]}, {"id": "shared"}, {"id": "bob"}]
    assert main_ids(run(docs, ContainerKind.SUBJECTS)) == ["alice", "shared", "bob"]


def test_newest_timestamp_is_the_largest_ts():
    assert run([{"id": "a", "_ts": 5}, {"id": "b", "_ts": 9}, {"id": "c", "_ts": 7}]).newest_timestamp == 9


def test_document_count_includes_poison_and_own_cluster():
    batch = run([{"id": "a", "_clusterId": "c"}, None, {"id": "b"}], cluster_id="c")
    assert batch.documents == 3


def test_a_ts_that_is_no_unsigned_64_bit_number_is_no_timestamp():
    assert run([{"id": "a", "_ts": -1}, {"id": "b", "_ts": 2**64}, {"id": "c", "_ts": 1.5}]).newest_timestamp is None


# -- the all-versions-and-deletes feed's changes, as envelope.py unwraps them --------------------


def test_a_feed_version_is_its_document_with_the_cluster_filter():
    batch = run([FeedVersion({"id": "guest|a", "_clusterId": "westeurope"}, 1.0),
                 FeedVersion({"id": "guest|b", "_clusterId": "eastus"}, 2.0)], cluster_id="westeurope")
    assert (main_ids(batch), batch.own_cluster) == (["guest/b"], 1)


def test_a_deletion_is_invalidated_by_its_id_whatever_the_cluster():
    batch = run([Deletion("guest|pkg|hello", None, 1.0)], cluster_id="westeurope")
    assert (main_ids(batch), batch.own_cluster) == (["guest/pkg/hello"], 0)


def test_a_deleted_subject_without_a_previous_image_yields_its_id_alone():
    assert main_ids(run([Deletion("alice", None, 1.0)], ContainerKind.SUBJECTS)) == ["alice"]


def test_a_deleted_subject_yields_the_namespace_names_of_its_previous_image():
    previous = {"id": "alice", "namespaces": [{"name": "alice"}, {"name": "team"}, {"uuid": "u"}]}
    batch = run([Deletion("alice", previous, 1.0)], ContainerKind.SUBJECTS)
    assert (main_ids(batch), [entry.reason for entry in batch.skipped_namespaces]) == (
        ["alice", "team"], ["it has no string name"])


def test_a_deleted_limits_document_invalidates_its_namespace_without_a_previous_image():
    assert main_ids(run([Deletion("guest|limits", None, 1.0)], ContainerKind.SUBJECTS)) == ["guest/limits", "guest"]


def test_a_deleted_subjects_auth_keys_come_from_its_previous_image_when_asked_for():
    previous = {"id": "alice", "namespaces": [{"name": "alice", "uuid": "u1", "key": "k1"}]}
    batch = run([Deletion("alice", previous, 1.0)], ContainerKind.SUBJECTS, invalidate_auth_keys=True)
    assert [json.loads(i.value)["key"] for i in batch.invalidations] == [
        {"mainId": "alice"}, {"mainId": "u1", "secondaryId": "k1"}]


def test_a_deletion_of_a_whisks_document_ignores_a_previous_images_namespaces():
    assert main_ids(run([Deletion("guest|a", {"namespaces": [{"name": "x"}]}, 1.0)])) == ["guest/a"]


@pytest.mark.parametrize("doc_id, reason", [
    (None, "a delete without metadata.id"),
    (7, "a delete whose metadata.id is a number, not a string"),
    ("", "a delete whose metadata.id is empty"),
    ("guest/a", "a delete whose metadata.id contains '/', which an escaped OpenWhisk id never does"),
    ("\ud800", "a delete whose metadata.id is not valid Unicode (a lone surrogate)"),
])
def test_a_deletion_whose_id_names_no_cache_entry_is_poison_with_its_reason(doc_id, reason):
    batch = run([Deletion(doc_id, None, 1.0), {"id": "guest|b"}])
    assert (batch.poison[0].position, batch.poison[0].reason, main_ids(batch)) == (0, reason, ["guest/b"])


def test_an_unreadable_change_is_poison_with_its_reason():
    batch = run([UnreadableChange("its metadata is not an object")])
    assert [(p.position, p.reason) for p in batch.poison] == [(0, "its metadata is not an object")]


def test_the_newest_timestamp_of_feed_changes_is_their_crts_not_the_documents_ts():
    batch = run([FeedVersion({"id": "a", "_ts": 5}, 1719000000.5), Deletion("b", None, 1719000001.25)])
    assert batch.newest_timestamp == 1719000001.25


def test_a_deleted_document_is_counted_among_the_batchs_documents():
    assert run([Deletion("a", None, None), FeedVersion({"id": "b"}, None)]).documents == 2
