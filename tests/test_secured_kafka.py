"""Delivery to a SASL_SSL (SCRAM-SHA-512) listener, and clear, secret-free errors when it is misconfigured.

The broker is secured_kafka_broker (scripts/kafka up --secure): its own CA, one
SCRAM user with a random password, and an unrelated CA for the untrusted case.
"""

import logging
import time

import pytest

from cache_invalidator.producer import DeliveryError
from tests import secret_scan
from tests.app_loading import BASE_SETTINGS, invoke, load_function_app
from tests.kafka_reading import new_topic_name, read_topic

WHISKS = [{"id": f"guest|secured{i}", "_ts": int(time.time())} for i in range(5)]
WHISKS_KEYS = [f"guest/secured{i}" for i in range(5)]
WRONG_PASSWORD = "wrong-password-for-invalidator-5150"


@pytest.fixture
def secured_topic(secured_kafka_broker):
    name = new_topic_name()
    secured_kafka_broker.create_topic(name)
    return name


@pytest.fixture
def secured_settings(secured_kafka_broker, secured_topic):
    """App settings for the SASL_SSL listener, with a short delivery deadline."""
    return {**BASE_SETTINGS, **secured_kafka_broker.app_settings(), "KAFKA_TOPIC": secured_topic,
            "KAFKA_DELIVERY_TIMEOUT_SECONDS": "5"}


def deliver_failing(monkeypatch, settings):
    """Invokes the whisks function with settings that must fail; returns the DeliveryError's text."""
    module = load_function_app(monkeypatch, settings)
    with pytest.raises(DeliveryError) as info:
        invoke(module, "invalidate_whisks", WHISKS[:1])
    text = f"{info.value}\n{info.value!r}"
    secret_scan.assert_no_secret(text, "the DeliveryError")
    return str(info.value)


def test_app_delivers_over_sasl_ssl_with_scram(monkeypatch, secured_kafka_broker, secured_settings, secured_topic):
    module = load_function_app(monkeypatch, secured_settings)
    invoke(module, "invalidate_whisks", WHISKS)
    messages = read_topic(secured_kafka_broker.secure_bootstrap, secured_topic,
                          **{k: v for k, v in secured_kafka_broker.client_config().items() if k != "bootstrap.servers"})
    assert [key for key, _ in messages] == WHISKS_KEYS


def test_wrong_password_fails_the_batch_naming_the_sasl_settings(monkeypatch, secured_kafka_broker, secured_settings):
    secret_scan.register_secret(WRONG_PASSWORD)
    message = deliver_failing(monkeypatch, {**secured_settings, "KAFKA_SASL_PASSWORD": WRONG_PASSWORD})
    assert "KAFKA_SASL_PASSWORD" in message and "KAFKA_SASL_USERNAME" in message, message
    assert "authentication" in message.lower(), message
    assert WRONG_PASSWORD not in message and secured_kafka_broker.password not in message


def test_untrusted_ca_fails_naming_ssl_ca_location(monkeypatch, secured_kafka_broker, secured_settings):
    message = deliver_failing(
        monkeypatch, {**secured_settings, "KAFKA_SSL_CA_LOCATION": secured_kafka_broker.untrusted_ca_location})
    assert "KAFKA_SSL_CA_LOCATION" in message, message
    assert "ssl" in message.lower() or "certificate" in message.lower(), message


def test_plaintext_against_the_tls_port_fails_naming_security_protocol(monkeypatch, secured_kafka_broker, secured_topic):
    settings = {**BASE_SETTINGS, "KAFKA_HOSTS": secured_kafka_broker.secure_bootstrap, "KAFKA_TOPIC": secured_topic,
                "KAFKA_DELIVERY_TIMEOUT_SECONDS": "5"}
    message = deliver_failing(monkeypatch, settings)
    assert "KAFKA_SECURITY_PROTOCOL" in message, message


def test_librdkafka_debug_logs_hold_no_password(monkeypatch, secured_kafka_broker, secured_settings, secured_topic, caplog):
    # librdkafka's own debug output, SASL handshake included, goes to the cache_invalidator.kafka logger.
    settings = {**secured_settings, "KAFKA_PRODUCER_DEBUG": "security,broker,conf"}
    module = load_function_app(monkeypatch, settings)
    with caplog.at_level(logging.DEBUG):
        invoke(module, "invalidate_whisks", WHISKS[:2])
    client_lines = [r.getMessage() for r in caplog.records if r.name == "cache_invalidator.kafka"]
    assert any("SASL" in line or "SCRAM" in line for line in client_lines), "librdkafka's debug log was not seen"
    assert not any(secured_kafka_broker.password in line for line in client_lines), "the password was logged"
    assert secured_kafka_broker.password not in caplog.text, "the password was logged"


def test_secret_scan_notices_a_secret_in_a_log_record(request):
    canary = "canary-secret-for-the-scan-8086"
    secret_scan.register_secret(canary)
    logging.getLogger("cache_invalidator.kafka").debug("about to leak %s", canary)
    mine = [f for f in secret_scan.findings() if f.test == request.node.nodeid]
    secret_scan.forget_findings(request.node.nodeid)  # it leaked on purpose
    assert [f.where for f in mine] == ["logger 'cache_invalidator.kafka' (DEBUG)"]
    assert all(canary not in str(f) for f in mine)


def test_password_is_in_no_broker_file_but_its_own(secured_kafka_broker):
    # scripts/kafka hands it to kafka-storage format only; state, config and logs never hold it.
    password_file = secured_kafka_broker.state_dir / "secure" / "password"
    holders = [str(path.relative_to(secured_kafka_broker.state_dir))
               for path in secured_kafka_broker.state_dir.rglob("*")
               if path.is_file() and path != password_file
               and secured_kafka_broker.password.encode() in path.read_bytes()]
    assert holders == []
    assert password_file.stat().st_mode & 0o077 == 0


def test_secure_listener_and_its_user_survive_stop_and_start(monkeypatch, secured_kafka_broker, secured_settings, secured_topic):
    # Runs last in this file: it restarts the session's secured broker.
    secured_kafka_broker.stop()
    secured_kafka_broker.start()
    module = load_function_app(monkeypatch, secured_settings)
    invoke(module, "invalidate_whisks", WHISKS)
    assert [key for key, _ in read_topic(secured_kafka_broker.bootstrap, secured_topic)] == WHISKS_KEYS
