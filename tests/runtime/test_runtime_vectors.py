"""Every contract vector, invoked through the worker runtime as the host invokes a Cosmos DB trigger, read back from Kafka byte for byte."""

import json

import pytest

from tests.kafka_reading import read_topic
from tests.vector_cases import CASES, case_id

FUNCTION_OF_CONTAINER = {"whisks": "invalidate_whisks", "subjects": "invalidate_subjects"}


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_vector_through_the_runtime_reaches_kafka_byte_for_byte_in_order(case, start_worker, app_settings,
                                                                          kafka_broker, topic):
    host = start_worker({**app_settings, **case["settings"]})
    status, message = host.invoke(FUNCTION_OF_CONTAINER[case["container"]], json.dumps(case["documents"]))
    assert (status, message) == ("Success", "")
    assert read_topic(kafka_broker.bootstrap, topic) == [(m["key"], m["value"]) for m in case["messages"]]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_vector_through_the_runtime_logs_each_poison_document_as_an_error(case, start_worker, app_settings):
    host = start_worker({**app_settings, **case["settings"]})
    host.invoke(FUNCTION_OF_CONTAINER[case["container"]], json.dumps(case["documents"]))
    errors = host.protos.RpcLog.Error
    poison = [log for log in host.logs if log.level == errors and "poison document" in log.message]
    assert len(poison) == case["poison_documents"]
