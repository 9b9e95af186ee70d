"""Failures through the worker runtime: each ends the invocation as Failure naming its cause, and the batch is delivered once the cause is gone."""

import json
import time

from tests.kafka_reading import new_topic_name, read_topic

WHISKS = [{"id": f"guest|action{i}", "_ts": int(time.time())} for i in range(20)]
WHISKS_KEYS = [f"guest/action{i}" for i in range(20)]
BATCH = json.dumps(WHISKS)


def keys(messages):
    return [key for key, _ in messages]


def retried_until_delivered(host, function_name, batch, time_limit=60.0):
    """Hands the batch again as the host's retry policy does (a back-off from 1 s, doubling to 1 min; here
    capped at 4 s) until it succeeds; returns the results of those retries."""
    results, deadline = [], time.monotonic() + time_limit
    while not results or results[-1][0] != "Success":
        assert time.monotonic() < deadline, f"still failing after {time_limit:.0f} s: {results[-1][1]}"
        time.sleep(min(4.0, 2.0 ** len(results)) / 2)
        results.append(host.invoke(function_name, batch, retry_count=len(results) + 1))
    return results


def test_dead_broker_fails_the_invocation_naming_kafka_and_the_retry_delivers(start_worker, app_settings,
                                                                              restartable_kafka_broker, topic):
    host = start_worker({**app_settings, "KAFKA_DELIVERY_TIMEOUT_SECONDS": "3"})
    restartable_kafka_broker.stop()
    try:
        failed = host.invoke("invalidate_whisks", BATCH)
    finally:
        restartable_kafka_broker.start()
    retried = retried_until_delivered(host, "invalidate_whisks", BATCH)
    assert failed[0] == "Failure" and failed[1].startswith("DeliveryError: ") and "KAFKA_HOSTS" in failed[1], failed
    assert retried[-1] == ("Success", "")
    assert set(WHISKS_KEYS) <= set(keys(read_topic(restartable_kafka_broker.bootstrap, topic)))


def test_missing_topic_fails_the_invocation_saying_so_and_the_retry_delivers_once_created(start_worker, app_settings,
                                                                                         kafka_broker):
    missing = new_topic_name("missing")
    host = start_worker({**app_settings, "KAFKA_TOPIC": missing, "KAFKA_DELIVERY_TIMEOUT_SECONDS": "4"})
    failed = host.invoke("invalidate_whisks", BATCH)
    kafka_broker.create_topic(missing)
    retried = retried_until_delivered(host, "invalidate_whisks", BATCH)
    assert failed[0] == "Failure" and "topic does not exist" in failed[1] and missing in failed[1], failed
    assert retried[-1] == ("Success", "")
    assert keys(read_topic(kafka_broker.bootstrap, missing)) == WHISKS_KEYS


def test_bad_setting_fails_the_invocation_naming_it_and_a_worker_with_it_fixed_delivers(start_worker, app_settings,
                                                                                       kafka_broker, topic):
    """A changed app setting restarts the worker in Azure; the lease was not checkpointed, so the batch comes again."""
    bad = start_worker({**app_settings, "KAFKA_DELIVERY_TIMEOUT_SECONDS": "soon"})
    failed = bad.invoke("invalidate_whisks", BATCH)
    fixed = start_worker(app_settings)
    delivered = fixed.invoke("invalidate_whisks", BATCH)
    assert failed[0] == "Failure" and failed[1].startswith("InvalidSetting: ") and \
        "KAFKA_DELIVERY_TIMEOUT_SECONDS" in failed[1], failed
    assert delivered == ("Success", "")
    assert keys(read_topic(kafka_broker.bootstrap, topic)) == WHISKS_KEYS


def test_missing_kafka_hosts_fails_the_invocation_naming_it(start_worker, app_settings):
    host = start_worker({k: v for k, v in app_settings.items() if k != "KAFKA_HOSTS"})
    status, message = host.invoke("invalidate_whisks", BATCH)
    assert status == "Failure" and message.startswith("MissingSetting: ") and "KAFKA_HOSTS" in message, message


def test_a_sasl_mechanism_the_kafka_client_lacks_fails_the_first_invocation_naming_it(start_worker, app_settings):
    host = start_worker({**app_settings, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "GSSAPI",
                         "KAFKA_SASL_USERNAME": "invalidator", "KAFKA_SASL_PASSWORD": "pw-5527"})
    status, message = host.invoke("invalidate_whisks", BATCH)
    assert status == "Failure" and message.startswith("InvalidSetting: setting KAFKA_SASL_MECHANISM: GSSAPI is not "
                                                      "built into the Kafka client"), message
    assert "pw-5527" not in message
