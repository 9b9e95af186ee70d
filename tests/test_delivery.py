"""Delivery to a real broker: a batch succeeds only when Kafka acknowledged all of it."""

import logging
import threading
import time

import pytest

from cache_invalidator.producer import DeliveryError, shared_producer
from cache_invalidator.settings import InvalidSetting, MissingSetting
from tests.app_loading import functions_by_name, invoke, load_function_app
from tests.kafka_reading import new_topic_name, read_topic

WHISKS = [{"id": f"guest|action{i}", "_ts": int(time.time())} for i in range(20)]
WHISKS_KEYS = [f"guest/action{i}" for i in range(20)]


def keys(messages):
    return [key for key, _ in messages]


def test_batch_returns_once_every_message_is_on_the_topic(function_app, kafka_broker, topic):
    invoke(function_app, "invalidate_whisks", WHISKS)
    assert keys(read_topic(kafka_broker.bootstrap, topic)) == WHISKS_KEYS


def test_batch_without_invalidations_sends_nothing(function_app, kafka_broker, topic):
    invoke(function_app, "invalidate_whisks", [None, {"id": 1}])
    assert read_topic(kafka_broker.bootstrap, topic) == []


def test_stopped_broker_fails_the_batch_within_the_deadline(monkeypatch, restartable_kafka_broker, app_settings):
    module = load_function_app(monkeypatch, {**app_settings, "KAFKA_DELIVERY_TIMEOUT_SECONDS": "3"})
    restartable_kafka_broker.stop()
    try:
        started = time.monotonic()
        with pytest.raises(DeliveryError) as info:
            invoke(module, "invalidate_whisks", WHISKS)
        elapsed = time.monotonic() - started
    finally:
        restartable_kafka_broker.start()
    # The deadline is the contract with the host's function timeout, not a speed figure.
    assert elapsed < 3 + 1.5, f"raised after {elapsed:.1f} s, deadline 3 s: {info.value}"


def test_failed_batch_succeeds_when_handed_again_after_restart(monkeypatch, restartable_kafka_broker, app_settings, topic):
    module = load_function_app(monkeypatch, {**app_settings, "KAFKA_DELIVERY_TIMEOUT_SECONDS": "3"})
    restartable_kafka_broker.stop()
    try:
        with pytest.raises(DeliveryError):
            invoke(module, "invalidate_whisks", WHISKS)
    finally:
        restartable_kafka_broker.start()
    invoke(module, "invalidate_whisks", WHISKS)
    assert set(WHISKS_KEYS) <= set(keys(read_topic(restartable_kafka_broker.bootstrap, topic)))


def test_delivery_error_names_the_topic_the_count_and_kafkas_error(monkeypatch, restartable_kafka_broker, app_settings, topic):
    module = load_function_app(monkeypatch, {**app_settings, "KAFKA_DELIVERY_TIMEOUT_SECONDS": "3"})
    restartable_kafka_broker.stop()
    try:
        with pytest.raises(DeliveryError) as info:
            invoke(module, "invalidate_whisks", WHISKS)
    finally:
        restartable_kafka_broker.start()
    text = str(info.value)
    assert topic in text and "20 invalidations" in text and "KAFKA_HOSTS" in text, text


def test_missing_topic_fails_with_an_error_that_says_so(monkeypatch, app_settings):
    missing = new_topic_name("missing")
    module = load_function_app(monkeypatch, {**app_settings, "KAFKA_TOPIC": missing, "KAFKA_DELIVERY_TIMEOUT_SECONDS": "5"})
    with pytest.raises(DeliveryError, match="topic does not exist") as info:
        invoke(module, "invalidate_whisks", WHISKS)
    assert missing in str(info.value)


def test_missing_kafka_hosts_fails_the_invocation_naming_it(monkeypatch, app_settings):
    module = load_function_app(monkeypatch, {k: v for k, v in app_settings.items() if k != "KAFKA_HOSTS"})
    with pytest.raises(MissingSetting, match="KAFKA_HOSTS"):
        invoke(module, "invalidate_whisks", WHISKS)


def test_whisks_and_subjects_batches_succeed_side_by_side(function_app, kafka_broker, topic):
    subjects = [{"id": f"user{i}", "namespaces": [{"name": f"ns{i}"}]} for i in range(20)]
    start = threading.Barrier(2)
    errors = []

    def run(name, documents):
        start.wait()
        try:
            invoke(function_app, name, documents)
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=("invalidate_whisks", WHISKS)),
               threading.Thread(target=run, args=("invalidate_subjects", subjects))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    expected = set(WHISKS_KEYS) | {f"user{i}" for i in range(20)} | {f"ns{i}" for i in range(20)}
    assert (errors, set(keys(read_topic(kafka_broker.bootstrap, topic)))) == ([], expected)


def test_invocation_succeeds_beside_a_message_kafka_never_acknowledges(function_app, kafka_broker, topic):
    producer = shared_producer(function_app.handler.settings.kafka)
    # A message the batch waits for (it drains the shared queue) until librdkafka
    # gives it up, which its own deadline bounds: the batch is delivered all the same.
    producer._producer.produce(new_topic_name("nowhere"), b"pending")
    invoke(function_app, "invalidate_whisks", WHISKS)
    assert keys(read_topic(kafka_broker.bootstrap, topic)) == WHISKS_KEYS


def test_batches_produced_without_pause_from_many_threads_all_succeed(function_app, kafka_broker, topic):
    # Each batch waits for the queue to drain; new batches wait while it does, so no drain lasts forever.
    threads, batches = 8, 15
    errors = []

    def lease(index):
        for batch in range(batches):
            documents = [{"id": f"guest|t{index}b{batch}d{d}"} for d in range(5)]
            try:
                invoke(function_app, "invalidate_whisks", documents)
            except Exception as exc:  # collected for the assertion below
                errors.append(exc)

    workers = [threading.Thread(target=lease, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert (errors, len(read_topic(kafka_broker.bootstrap, topic))) == ([], threads * batches * 5)


def test_one_summary_line_per_batch_carries_the_counts(function_app, caplog):
    documents = WHISKS[:3] + [None, {"id": "guest|own", "_clusterId": "x"}]
    with caplog.at_level(logging.INFO, logger="cache_invalidator"):
        invoke(function_app, "invalidate_whisks", documents)
    summaries = [r for r in caplog.records if r.getMessage().startswith("Change batch")]
    assert len(summaries) == 1
    record = summaries[0]
    assert (record.container, record.outcome, record.documents, record.messages_sent, record.poison) == (
        "whisks", "delivered", 5, 4, 1,
    )
    assert record.lag_seconds is not None and record.duration_ms >= 0


def test_own_cluster_documents_are_counted_in_the_summary(monkeypatch, app_settings, caplog):
    module = load_function_app(monkeypatch, {**app_settings, "CLUSTER_ID": "x"})
    with caplog.at_level(logging.INFO, logger="cache_invalidator"):
        invoke(module, "invalidate_whisks", WHISKS[:2] + [{"id": "guest|own", "_clusterId": "x"}])
    (record,) = [r for r in caplog.records if r.getMessage().startswith("Change batch")]
    assert (record.skipped_own_cluster, record.messages_sent) == (1, 2)


def test_kafka_password_stays_out_of_logs_and_errors(monkeypatch, app_settings, caplog):
    password = "pw-that-must-not-leak-7731"
    settings = {**app_settings, "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "PLAIN",
                "KAFKA_SASL_USERNAME": "alice", "KAFKA_SASL_PASSWORD": password,
                "KAFKA_DELIVERY_TIMEOUT_SECONDS": "2"}
    module = load_function_app(monkeypatch, settings)
    with caplog.at_level(logging.DEBUG), pytest.raises(DeliveryError) as info:
        invoke(module, "invalidate_whisks", WHISKS[:1])
    assert password not in caplog.text and password not in str(info.value) and password not in repr(info.value)


def test_subject_api_keys_stay_out_of_logs(function_app, caplog):
    secret = "apikey-secret-0000000000000000000000000000000000000000000000000001"
    documents = [{"id": "alice", "namespaces": [{"uuid": "u", "key": secret}, "bad"]}, {"id": 3, "key": secret}]
    with caplog.at_level(logging.DEBUG):
        invoke(function_app, "invalidate_subjects", documents)
    assert secret not in caplog.text


def test_producer_property_rejected_by_librdkafka_names_the_setting(monkeypatch, app_settings):
    module = load_function_app(monkeypatch, {**app_settings, "KAFKA_PRODUCER_LINGER_MS": "soon"})
    with pytest.raises(InvalidSetting, match="KAFKA_PRODUCER_LINGER_MS"):
        invoke(module, "invalidate_whisks", WHISKS)


def test_unknown_producer_property_names_the_setting(monkeypatch, app_settings):
    module = load_function_app(monkeypatch, {**app_settings, "KAFKA_PRODUCER_NO_SUCH_THING": "1"})
    with pytest.raises(InvalidSetting, match="KAFKA_PRODUCER_NO_SUCH_THING"):
        invoke(module, "invalidate_whisks", WHISKS)


SASL = {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "invalidator", "KAFKA_SASL_PASSWORD": "pw-3391"}


def test_a_mechanism_the_kafka_client_is_built_without_fails_the_first_invocation_naming_it(monkeypatch, app_settings):
    module = load_function_app(monkeypatch, {**app_settings, **SASL, "KAFKA_SASL_MECHANISM": "GSSAPI"})
    with pytest.raises(InvalidSetting) as info:
        invoke(module, "invalidate_whisks", WHISKS)
    assert info.value.setting == "KAFKA_SASL_MECHANISM"
    assert "GSSAPI is not built into the Kafka client" in str(info.value)
    assert "it is built with PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER" in str(info.value)


def test_a_sasl_protocol_without_a_mechanism_fails_the_first_invocation_naming_it(monkeypatch, app_settings):
    module = load_function_app(monkeypatch, {**app_settings, **SASL})
    with pytest.raises(MissingSetting) as info:
        invoke(module, "invalidate_whisks", WHISKS)
    assert info.value.setting == "KAFKA_SASL_MECHANISM"


def test_a_rejection_that_quotes_no_property_names_the_setting_it_mentions(monkeypatch, app_settings, tmp_path):
    settings = {**app_settings, "KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_LOCATION": str(tmp_path / "none.pem")}
    module = load_function_app(monkeypatch, settings)
    with pytest.raises(InvalidSetting) as info:
        invoke(module, "invalidate_whisks", WHISKS)
    assert info.value.setting == "KAFKA_SSL_CA_LOCATION", info.value


def test_producer_starts_while_the_app_loads(function_app):
    # connect_early() runs in the background; the first batch then finds the producer made.
    waited = 0.0
    while function_app.handler._producer is None and waited < 30:
        time.sleep(0.05)
        waited += 0.05
    assert function_app.handler._producer is not None


def test_batch_text_that_orjson_refuses_is_read_by_json_and_translated(function_app, kafka_broker, topic):
    # A lone surrogate escape and NaN: orjson refuses the text, json reads it; the bad id is poison, not a blocked feed.
    text = '[{"id": "guest|bad\\ud800"}, {"id": "guest|good", "limit": NaN}]'
    functions_by_name(function_app)["invalidate_whisks"].get_user_function()(text)
    assert keys(read_topic(kafka_broker.bootstrap, topic)) == ["guest/good"]
