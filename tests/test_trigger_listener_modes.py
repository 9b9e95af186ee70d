"""How devhost/trigger_listener.py picks the Java processor's handler from a trigger's binding, and reads a batch."""

import pytest

from devhost.trigger_listener import (ALL_VERSIONS_AND_DELETES, LATEST_VERSION, HandedBatch, TriggerListenerError,
                                      handler_for)


def test_a_binding_without_change_feed_mode_runs_the_latest_version_handler():
    assert handler_for({"type": "cosmosDBTrigger", "name": "changes"}) == LATEST_VERSION


def test_a_binding_in_all_versions_and_deletes_mode_runs_its_handler():
    assert handler_for({"changeFeedMode": "AllVersionsAndDeletes"}) == ALL_VERSIONS_AND_DELETES


def test_the_mode_is_read_without_regard_to_case():
    assert handler_for({"changeFeedMode": "latestversion"}) == LATEST_VERSION


def test_an_unknown_mode_is_refused_naming_the_binding():
    with pytest.raises(TriggerListenerError, match="'Incremental' of the binding 'changes'"):
        handler_for({"name": "changes", "changeFeedMode": "Incremental"})


def test_a_batch_of_changes_names_each_document_and_its_operation():
    created = {"id": "guest|a", "_etag": '"1"'}
    batch = HandedBatch("instance-1", "invalidate_whisks", 1, [
        {"current": created, "metadata": {"operationType": "create", "lsn": 1}},
        {"current": None, "metadata": {"operationType": "delete", "lsn": 2, "id": "guest|a"}}],
        all_versions_and_deletes=True)
    assert batch.changes == [("guest|a", '"1"'), ("guest|a", None)]
    assert batch.operations == [("create", "guest|a"), ("delete", "guest|a")]


def test_a_batch_of_documents_names_each_document():
    batch = HandedBatch("instance-1", "invalidate_whisks", 1, [{"id": "guest|a", "_etag": '"1"'}])
    assert batch.changes == [("guest|a", '"1"')]
