"""The fault scenarios of tests/fault_scenarios.py, with every batch invoked through the worker runtime.

Each batch crosses as the host sends it (an InvocationRequest with the JSON
array, a RetryContext on a retry) and each failure comes back as the
runtime's Failure response, whose exception text the checks read.
"""

import pytest

from tests import fault_scenarios as scenarios
from tests.host_driver import make_reporter


@pytest.fixture
def report(request, record_property):
    return make_reporter(request, record_property)


@pytest.fixture
def invoke(start_worker, app_settings):
    host = start_worker({**app_settings, "KAFKA_DELIVERY_TIMEOUT_SECONDS": str(scenarios.DEADLINE)})
    return host.invoke_documents


def test_broker_stopped_mid_run_then_started_loses_nothing_through_the_runtime(restartable_kafka_broker, invoke,
                                                                               topic, report):
    scenarios.broker_stopped_mid_run_then_started_loses_nothing(restartable_kafka_broker, invoke, topic, report)


def test_both_leases_at_once_across_a_broker_restart_lose_nothing_through_the_runtime(restartable_kafka_broker, invoke,
                                                                                      topic, report):
    scenarios.both_leases_at_once_across_a_broker_restart_lose_nothing(restartable_kafka_broker, invoke, topic, report)


def test_invocation_abandoned_at_its_deadline_yields_duplicates_at_worst_through_the_runtime(
        restartable_kafka_broker, invoke, topic, report):
    scenarios.invocation_abandoned_at_its_deadline_yields_duplicates_at_worst(
        restartable_kafka_broker, invoke, topic, report)


def test_broker_frozen_past_the_deadline_then_resumed_loses_nothing_through_the_runtime(restartable_kafka_broker, invoke,
                                                                                        topic, report):
    scenarios.broker_frozen_past_the_deadline_then_resumed_loses_nothing(restartable_kafka_broker, invoke, topic, report)


def test_topic_deleted_and_created_again_fails_clearly_then_delivers_through_the_runtime(kafka_broker, invoke, topic,
                                                                                         report):
    scenarios.topic_deleted_and_created_again_fails_clearly_then_delivers(kafka_broker, invoke, topic, report)
