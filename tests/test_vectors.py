"""Every contract vector, run the way the host runs it and read back from a real Kafka topic."""

import logging

import pytest

from tests.app_loading import load_function_app, invoke
from tests.contract import intended_keys
from tests.kafka_reading import read_topic
from tests.openwhisk_oracle import assert_openwhisk_reads_as_intended
from tests.vector_cases import CASES, case_id

FUNCTION_OF_CONTAINER = {"whisks": "invalidate_whisks", "subjects": "invalidate_subjects"}


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_vector_reaches_kafka_byte_for_byte_in_order(case, monkeypatch, app_settings, kafka_broker, topic):
    module = load_function_app(monkeypatch, {**app_settings, **case["settings"]})
    invoke(module, FUNCTION_OF_CONTAINER[case["container"]], case["documents"])
    assert read_topic(kafka_broker.bootstrap, topic) == [(m["key"], m["value"]) for m in case["messages"]]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_vector_logs_each_poison_document_as_an_error(case, monkeypatch, app_settings, caplog):
    module = load_function_app(monkeypatch, {**app_settings, **case["settings"]})
    with caplog.at_level(logging.INFO, logger="cache_invalidator"):
        invoke(module, FUNCTION_OF_CONTAINER[case["container"]], case["documents"])
    poison = [r for r in caplog.records if r.levelno == logging.ERROR and "poison document" in r.getMessage()]
    assert len(poison) == case["poison_documents"]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_vector_messages_parse_in_openwhisk_to_the_keys_their_documents_mean(case, monkeypatch, app_settings,
                                                                           kafka_broker, topic, openwhisk_parser):
    settings = case["settings"]
    module = load_function_app(monkeypatch, {**app_settings, **settings})
    invoke(module, FUNCTION_OF_CONTAINER[case["container"]], case["documents"])
    intended = intended_keys(case["documents"], case["container"] == "subjects", settings.get("CLUSTER_ID"),
                             settings.get("INVALIDATE_AUTH_KEYS") == "true")
    assert_openwhisk_reads_as_intended(
        openwhisk_parser, [(key.encode(), value.encode()) for key, value in read_topic(kafka_broker.bootstrap, topic)],
        intended, settings.get("INVALIDATION_INSTANCE_ID", "cache-invalidator"), f"vector {case['name']!r}")
