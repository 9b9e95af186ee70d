"""Faults against the real broker, the app called directly: an outage or a slow broker costs time and an error, never an invalidation.

The scenarios, and what each report checks, are in tests/fault_scenarios.py;
tests/runtime/test_runtime_faults.py runs them through Microsoft's worker
runtime. The report line of each test is printed (-s), recorded as a test
property, and repeated in the terminal summary.
"""

import pytest

from tests import fault_scenarios as scenarios
from tests.app_loading import library_invoker, load_function_app
from tests.host_driver import make_reporter


@pytest.fixture
def report(request, record_property):
    return make_reporter(request, record_property)


@pytest.fixture
def invoke(monkeypatch, app_settings):
    app = load_function_app(monkeypatch, {**app_settings, "KAFKA_DELIVERY_TIMEOUT_SECONDS": str(scenarios.DEADLINE)})
    return library_invoker(app)


def test_broker_stopped_mid_run_then_started_loses_nothing(restartable_kafka_broker, invoke, topic, report):
    scenarios.broker_stopped_mid_run_then_started_loses_nothing(restartable_kafka_broker, invoke, topic, report)


def test_broker_frozen_past_the_deadline_then_resumed_loses_nothing(restartable_kafka_broker, invoke, topic, report):
    scenarios.broker_frozen_past_the_deadline_then_resumed_loses_nothing(restartable_kafka_broker, invoke, topic, report)


def test_both_leases_at_once_across_a_broker_restart_lose_nothing(restartable_kafka_broker, invoke, topic, report):
    scenarios.both_leases_at_once_across_a_broker_restart_lose_nothing(restartable_kafka_broker, invoke, topic, report)


def test_topic_deleted_and_created_again_fails_clearly_then_delivers(kafka_broker, invoke, topic, report):
    scenarios.topic_deleted_and_created_again_fails_clearly_then_delivers(kafka_broker, invoke, topic, report)


def test_invocation_abandoned_at_its_deadline_yields_duplicates_at_worst(restartable_kafka_broker, invoke, topic, report):
    scenarios.invocation_abandoned_at_its_deadline_yields_duplicates_at_worst(
        restartable_kafka_broker, invoke, topic, report)
