"""What the handler accepts as a change batch: the host's JSON array as text or bytes, or a decoded DocumentList;
anything else fails the invocation saying what it was, so that it is handed again rather than acknowledged.

tests/runtime/test_runtime_batch_shapes.py checks the same through Microsoft's worker runtime.
"""

import json

import pytest

from cache_invalidator.handler import NotAChangeBatch
from tests.app_loading import functions_by_name, host_batch
from tests.kafka_reading import read_topic

NOT_A_BATCH = {
    "a JSON object with 1 key": '{"namespaces": [{"key": "not-an-array-secret"}]}',
    "a JSON string of 11 characters": '"guest|hello"',
    "a JSON number": "42",
    "JSON null": "null",
    "text that is not JSON (27 characters; Expecting value at position 0)": "guest|hello not-json-secret",
    "text that is not JSON (3 bytes; Expecting value at position 0)": b"abc",
    "a dict": {"id": "guest|hello"},
}
DOCUMENTS = [{"id": "guest|hello"}, {"id": "guest|pkg|hello"}]


def whisks_function(module):
    return functions_by_name(module)["invalidate_whisks"].get_user_function()


@pytest.mark.parametrize("what", NOT_A_BATCH)
def test_a_batch_that_is_not_a_json_array_fails_saying_what_it_was(what, function_app):
    with pytest.raises(NotAChangeBatch, match="not a JSON array of documents") as info:
        whisks_function(function_app)(NOT_A_BATCH[what])
    assert f"The whisks change batch is {what}," in str(info.value), str(info.value)


@pytest.mark.parametrize("what", NOT_A_BATCH)
def test_the_failure_never_quotes_the_batch(what, function_app):
    with pytest.raises(NotAChangeBatch) as info:
        whisks_function(function_app)(NOT_A_BATCH[what])
    text = str(info.value) + repr(info.value.__cause__) + repr(info.value.__context__)
    assert "secret" not in text and "guest|hello" not in text, text


@pytest.mark.parametrize("shape", ["str", "bytes", "DocumentList", "list"])
def test_every_accepted_shape_sends_the_same_messages(shape, function_app, kafka_broker, topic):
    text = json.dumps(DOCUMENTS)
    batch = {"str": text, "bytes": text.encode(), "DocumentList": host_batch(DOCUMENTS), "list": DOCUMENTS}[shape]
    whisks_function(function_app)(batch)
    assert [key for key, _ in read_topic(kafka_broker.bootstrap, topic)] == ["guest/hello", "guest/pkg/hello"]
