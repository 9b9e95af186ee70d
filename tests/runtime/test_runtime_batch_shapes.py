"""What the trigger parameter receives through the worker runtime, whatever its annotation: a batch that is not
a JSON array of documents fails the invocation loudly, and is never counted as poison and acknowledged.

Before the handler checked the batch, a `changes: str` parameter received the
JSON text and iterated its characters: the runtime counted them as poison
documents, sent nothing, and returned Success, so the host checkpointed a
batch that was never invalidated.
"""

import json

import pytest

from tests.kafka_reading import read_topic

# Text the host could hand that is not a JSON array of documents; none of these may be acknowledged.
NOT_A_BATCH = {
    "a JSON object": '{"id": "guest|hello", "namespaces": [{"key": "not-an-array-secret"}]}',
    "a JSON string": '"guest|hello"',
    "a JSON number": "42",
    "text that is not JSON": "guest|hello not-json-secret",
}
DOCUMENTS = [{"id": "guest|hello"}, {"id": "guest|pkg|hello"}]


@pytest.mark.parametrize("what", NOT_A_BATCH)
def test_str_parameter_fails_on_a_batch_that_is_not_a_json_array_saying_what_it_was(what, start_worker, app_settings,
                                                                                   kafka_broker, topic):
    host = start_worker(app_settings)  # function_app.py as it is: `changes: str`
    status, message = host.invoke("invalidate_whisks", NOT_A_BATCH[what])
    assert (status, message.split(":", 1)[0], what in message) == ("Failure", "NotAChangeBatch", True), message
    assert read_topic(kafka_broker.bootstrap, topic) == []


@pytest.mark.parametrize("what", NOT_A_BATCH)
def test_failure_on_a_batch_that_is_not_a_json_array_never_quotes_it(what, start_worker, app_settings):
    host = start_worker(app_settings)
    _, message = host.invoke("invalidate_whisks", NOT_A_BATCH[what])
    logged = [log.message for log in host.logs]
    assert not [text for text in [message, *logged] if "secret" in text or "guest|hello" in text]


@pytest.mark.parametrize("what", ["a JSON string", "a JSON number", "text that is not JSON"])
def test_document_list_parameter_fails_on_a_batch_that_is_not_a_json_array(what, start_worker, app_with_annotation,
                                                                           app_settings, kafka_broker, topic):
    """With func.DocumentList the library's converter decodes the batch before the handler, and fails on these."""
    host = start_worker(app_settings, app_with_annotation("func.DocumentList"))
    status, message = host.invoke("invalidate_whisks", NOT_A_BATCH[what])
    assert status == "Failure", message
    assert read_topic(kafka_broker.bootstrap, topic) == []


def test_document_list_parameter_takes_a_json_object_for_a_batch_of_one(start_worker, app_with_annotation,
                                                                        app_settings, kafka_broker, topic):
    """The library's converter wraps a lone object into a list, so the handler cannot tell; the object is then
    invalidated as one document, not lost. The host hands a Cosmos DB trigger an array in any case."""
    host = start_worker(app_settings, app_with_annotation("func.DocumentList"))
    status, _ = host.invoke("invalidate_whisks", json.dumps({"id": "guest|hello"}))
    assert (status, [key for key, _ in read_topic(kafka_broker.bootstrap, topic)]) == ("Success", ["guest/hello"])


def test_document_list_parameter_takes_json_null_for_a_batch_of_one_poison_document(start_worker, app_with_annotation,
                                                                                    app_settings):
    """The same wrapping: `null` becomes [None], indistinguishable from a batch holding one null document."""
    host = start_worker(app_settings, app_with_annotation("func.DocumentList"))
    status, _ = host.invoke("invalidate_whisks", "null")
    poison = [log for log in host.logs if "poison document" in log.message]
    assert (status, len(poison)) == ("Success", 1)


def test_str_parameter_skips_an_element_that_is_not_an_object_as_poison_and_delivers_the_rest(
        start_worker, app_settings, kafka_broker, topic):
    host = start_worker(app_settings)
    status, message = host.invoke("invalidate_whisks", json.dumps([1, *DOCUMENTS]))
    assert (status, message) == ("Success", "")
    assert [key for key, _ in read_topic(kafka_broker.bootstrap, topic)] == ["guest/hello", "guest/pkg/hello"]


def test_document_list_parameter_fails_the_whole_batch_on_an_element_that_is_not_an_object(
        start_worker, app_with_annotation, app_settings, kafka_broker, topic):
    """The library's converter makes a func.Document of every element and raises on a number, before the
    handler can skip it: retried, such a batch would block its lease for good. Cosmos DB documents are
    objects, so this is about the converter, not a batch the host is known to send."""
    host = start_worker(app_settings, app_with_annotation("func.DocumentList"))
    status, message = host.invoke("invalidate_whisks", json.dumps([1, *DOCUMENTS]))
    assert (status, message.split(":", 1)[0]) == ("Failure", "AttributeError"), message
    assert read_topic(kafka_broker.bootstrap, topic) == []


@pytest.mark.parametrize("annotation", ["str", "bytes", "func.DocumentList"])
def test_every_accepted_annotation_delivers_the_batch(annotation, start_worker, app_with_annotation, app_settings,
                                                      kafka_broker, topic):
    host = start_worker(app_settings, app_with_annotation(annotation))
    status, message = host.invoke("invalidate_whisks", json.dumps(DOCUMENTS))
    assert (status, message) == ("Success", "")
    assert [key for key, _ in read_topic(kafka_broker.bootstrap, topic)] == ["guest/hello", "guest/pkg/hello"]
