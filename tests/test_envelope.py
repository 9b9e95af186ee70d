"""The all-versions-and-deletes feed's envelopes: what an element is, what it is unwrapped into, and a mode mismatch.

The envelopes are written as the Cosmos DB extension serializes ChangeFeedItem<JObject> (envelope.py cites it):
`"current": null` on a delete, `crts` a double, `previous` only where the container keeps it.
"""

import json
import logging

import pytest

from cache_invalidator.envelope import is_envelope, unwrap
from cache_invalidator.translation import Deletion, FeedVersion, UnreadableChange
from tests.app_loading import host_batch, invoke, load_function_app
from tests.kafka_reading import read_topic

ACTION = {"id": "guest|hello", "namespace": "guest", "name": "hello", "_ts": 1719000000}


def metadata(operation, **extra):
    return {"crts": 1719000000.0, "lsn": 41, "operationType": operation, "previousImageLSN": 0,
            "timeToLiveExpired": False, **extra}


CREATE = {"current": ACTION, "metadata": metadata("create")}
DELETE = {"current": None, "metadata": metadata("delete", id="guest|hello", partitionKey={"id": "guest|hello"})}


def test_an_object_with_metadata_and_no_id_is_an_envelope():
    assert [is_envelope(CREATE), is_envelope(DELETE)] == [True, True]


def test_a_document_with_an_id_is_a_document_even_with_a_metadata_member():
    assert is_envelope({"id": "guest|hello", "metadata": {"operationType": "delete"}}) is False


def test_an_envelope_decoded_by_the_librarys_converter_is_still_an_envelope():
    assert [is_envelope(element) for element in host_batch([CREATE, ACTION])] == [True, False]


def test_a_latest_version_batch_is_left_as_it_is():
    batch = [ACTION, None, {"id": 3}]
    unwrapped = unwrap(batch)
    assert (unwrapped.changes is batch, unwrapped.envelopes) == (True, 0)


def test_a_create_or_replace_becomes_its_current_document_with_the_feeds_time():
    replace = {"current": ACTION, "metadata": metadata("replace", previousImageLSN=40)}
    assert unwrap([CREATE, replace]).changes == [FeedVersion(ACTION, 1719000000.0), FeedVersion(ACTION, 1719000000.0)]


def test_a_delete_becomes_its_id_with_no_previous_image_by_default():
    assert unwrap([DELETE]) == ([Deletion("guest|hello", None, 1719000000.0)], 1)


def test_a_delete_keeps_the_previous_image_where_the_container_keeps_one():
    assert unwrap([{**DELETE, "previous": ACTION}]).changes == [Deletion("guest|hello", ACTION, 1719000000.0)]


@pytest.mark.parametrize("crts", ["1719000000", None, True, float("nan"), -1.0])
def test_a_crts_that_is_no_time_in_seconds_is_no_timestamp(crts):
    (change,) = unwrap([{"current": ACTION, "metadata": {**metadata("create"), "crts": crts}}]).changes
    assert change == FeedVersion(ACTION, None)


@pytest.mark.parametrize("envelope, reason", [
    ({"current": ACTION, "metadata": "create"}, "its metadata is not an object"),
    ({"current": ACTION, "metadata": {"crts": 1.0}}, "its metadata has no operationType"),
], ids=["metadata not an object", "no operation type"])
def test_a_malformed_envelope_is_unreadable_with_its_reason(envelope, reason):
    assert unwrap([envelope, ACTION]).changes == [UnreadableChange(reason), ACTION]


def test_plain_documents_in_all_versions_and_deletes_mode_are_invalidated_and_warned_of(monkeypatch, app_settings,
                                                                                        kafka_broker, topic, caplog):
    """What an extension older than 4.16 does: it ignores changeFeedMode and hands the latest-version feed."""
    module = load_function_app(monkeypatch, {**app_settings, "COSMOSDB_CHANGE_FEED_MODE": "AllVersionsAndDeletes"})
    with caplog.at_level(logging.WARNING, logger="cache_invalidator"):
        invoke(module, "invalidate_whisks", [ACTION, DELETE])
    warnings = [r.getMessage() for r in caplog.records if r.name == "cache_invalidator" and r.levelno == logging.WARNING]
    assert read_topic(kafka_broker.bootstrap, topic) == [
        ("guest/hello", '{"instanceId":"cache-invalidator","key":{"mainId":"guest/hello"}}')]
    assert len(warnings) == 1 and warnings[0].startswith(
        "1 of the 2 element(s) of a whisks change batch are plain documents while "
        "COSMOSDB_CHANGE_FEED_MODE=AllVersionsAndDeletes"), warnings


def test_envelopes_in_latest_version_mode_are_invalidated_and_warned_of(monkeypatch, app_settings, kafka_broker,
                                                                       topic, caplog):
    module = load_function_app(monkeypatch, app_settings)
    with caplog.at_level(logging.WARNING, logger="cache_invalidator"):
        invoke(module, "invalidate_whisks", [DELETE])
    warnings = [r.getMessage() for r in caplog.records if r.name == "cache_invalidator" and r.levelno == logging.WARNING]
    assert [json.loads(value)["key"] for _, value in read_topic(kafka_broker.bootstrap, topic)] == [
        {"mainId": "guest/hello"}]
    assert len(warnings) == 1 and "COSMOSDB_CHANGE_FEED_MODE=LatestVersion" in warnings[0], warnings


def test_a_batch_of_the_configured_shape_warns_of_nothing(monkeypatch, app_settings, kafka_broker, topic, caplog):
    module = load_function_app(monkeypatch, {**app_settings, "COSMOSDB_CHANGE_FEED_MODE": "AllVersionsAndDeletes"})
    with caplog.at_level(logging.WARNING, logger="cache_invalidator"):
        invoke(module, "invalidate_whisks", [CREATE, DELETE])
    assert [r.getMessage() for r in caplog.records if r.name == "cache_invalidator" and r.levelno >= logging.WARNING] == []
