"""pytest plugin: a real single-node Kafka broker for the tests.

Load it from tests/conftest.py with ``pytest_plugins = ["tests.kafka_broker"]``.

Fixtures
--------
kafka_broker (session)
    A ``KafkaBroker``. Started once per session with
    ``scripts/kafka up --dir <pytest tmp dir>`` and taken down (data removed)
    at the end. When ``KAFKA_HOSTS`` is set in the environment, that broker is
    used instead and nothing is started or stopped (``managed`` is False).

restartable_kafka_broker (function)
    The same ``KafkaBroker``, for tests that stop/start or pause it. Skips,
    saying why, when the broker is external. After the test it makes sure the
    broker is running and not paused again, so later tests are unaffected.

secured_kafka_broker (session)
    A ``SecuredKafkaBroker``: always a broker of our own, started with
    ``scripts/kafka up --secure --dir <its own pytest tmp dir>`` (KAFKA_HOSTS
    does not matter; it needs only Java and openssl). Besides the PLAINTEXT
    listener (``bootstrap``, used for topics) it has a SASL_SSL listener
    (``secure_bootstrap``) with one SCRAM-SHA-512 user (``username``,
    ``password``, ``mechanism``) and a certificate signed by the CA at
    ``ca_location``; ``untrusted_ca_location`` is an unrelated CA. The
    password is registered with tests.secret_scan when that plugin is loaded.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "scripts" / "kafka"

UP_TIMEOUT = 300  # includes the one-time Maven download on a cold cache


class KafkaBrokerError(RuntimeError):
    """scripts/kafka failed, or the broker is external and cannot be managed."""


class KafkaBroker:
    """A Kafka broker for tests.

    Attributes: ``bootstrap`` ("127.0.0.1:PORT", or $KAFKA_HOSTS as given),
    ``managed`` (False for an external broker), ``state_dir`` (None when
    external), ``pid`` (the broker's pid, None when stopped or external).
    Methods: ``stop()``, ``start()``, ``pause()``, ``resume()``,
    ``is_running()``, ``create_topic(name, partitions=1)``,
    ``delete_topic(name)``.
    """

    def __init__(self, bootstrap, state_dir=None):
        self.bootstrap = bootstrap
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.managed = state_dir is not None

    def __repr__(self):
        how = f"managed, dir={self.state_dir}" if self.managed else "external"
        return f"KafkaBroker({self.bootstrap!r}, {how})"

    # -- lifecycle (managed brokers only) ---------------------------------

    @classmethod
    def up(cls, state_dir, timeout=UP_TIMEOUT):
        out = _run("up", state_dir, timeout=timeout)
        return cls(_hosts_from(out), state_dir)

    def _require_managed(self, what):
        if not self.managed:
            raise KafkaBrokerError(
                f"cannot {what} the broker at {self.bootstrap}: it is external (KAFKA_HOSTS is set). "
                "Tests that stop, start or pause the broker should use the restartable_kafka_broker "
                "fixture, which skips for external brokers.")

    def stop(self, timeout=30):
        """Stop the broker (SIGTERM, SIGKILL after `timeout`) and wait until it has exited.
        Its data and port are kept for start()."""
        self._require_managed("stop")
        _run("stop", self.state_dir, "--timeout", str(timeout), timeout=timeout + 60)

    def start(self, timeout=120):
        """Start the stopped broker again (same data, same port) and wait until it answers."""
        self._require_managed("start")
        bootstrap = _hosts_from(_run("start", self.state_dir, "--timeout", str(timeout),
                                     timeout=timeout + 60))
        if bootstrap != self.bootstrap:
            raise KafkaBrokerError(f"broker came back on {bootstrap}, not {self.bootstrap}")

    def down(self, timeout=30):
        """Stop the broker and remove its data."""
        self._require_managed("take down")
        _run("down", self.state_dir, "--timeout", str(timeout), timeout=timeout + 60)

    @property
    def pid(self):
        """The running broker's pid; None when it is stopped or external."""
        if not self.managed:
            return None
        proc = _call("pid", self.state_dir, timeout=30)
        return int(proc.stdout.strip()) if proc.returncode == 0 else None

    def is_running(self):
        return self.pid is not None

    def pause(self):
        """SIGSTOP the broker: connections stay open but nothing is answered."""
        self._require_managed("pause")
        os.kill(self._running_pid(), signal.SIGSTOP)

    def resume(self):
        """SIGCONT a paused broker."""
        self._require_managed("resume")
        os.kill(self._running_pid(), signal.SIGCONT)

    def _running_pid(self):
        pid = self.pid
        if pid is None:
            raise KafkaBrokerError(f"no broker is running in {self.state_dir}")
        return pid

    # -- topics (any broker) ----------------------------------------------

    def _admin(self):
        return AdminClient({"bootstrap.servers": self.bootstrap})

    def create_topic(self, name, partitions=1, timeout=30.0, config=None):
        """Create a topic and wait until every partition has a leader."""
        admin = self._admin()
        deadline = time.monotonic() + timeout
        # replication_factor=-1: the broker's default (1 on the broker scripts/kafka starts).
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=-1, config=config or {})],
            operation_timeout=timeout, request_timeout=timeout)
        futures[name].result(timeout=timeout + 5)
        while True:
            topic = admin.list_topics(topic=name, timeout=max(1.0, deadline - time.monotonic())).topics.get(name)
            if (topic is not None and topic.error is None and len(topic.partitions) == partitions
                    and all(p.error is None and p.leader >= 0 for p in topic.partitions.values())):
                return
            if time.monotonic() > deadline:
                raise KafkaBrokerError(f"topic {name!r} created but its partitions have no leader "
                                       f"after {timeout:.0f}s: {topic}")
            time.sleep(0.1)

    def delete_topic(self, name, timeout=30.0):
        """Delete a topic and wait until the broker no longer lists it."""
        admin = self._admin()
        deadline = time.monotonic() + timeout
        futures = admin.delete_topics([name], operation_timeout=timeout, request_timeout=timeout)
        futures[name].result(timeout=timeout + 5)
        while True:
            try:
                topic = admin.list_topics(topic=name, timeout=max(1.0, deadline - time.monotonic())).topics.get(name)
            except KafkaException:
                topic = None
            if topic is None or (topic.error is not None
                                 and topic.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
                return
            if time.monotonic() > deadline:
                raise KafkaBrokerError(f"topic {name!r} still listed {timeout:.0f}s after deletion")
            time.sleep(0.1)


class SecuredKafkaBroker(KafkaBroker):
    """A managed broker with a SASL_SSL listener besides the PLAINTEXT one."""

    def __init__(self, bootstrap, state_dir, info):
        super().__init__(bootstrap, state_dir)
        self.secure_bootstrap = info["KAFKA_SECURE_HOSTS"]
        self.security_protocol = info["KAFKA_SECURITY_PROTOCOL"]
        self.mechanism = info["KAFKA_SASL_MECHANISM"]
        self.username = info["KAFKA_SASL_USERNAME"]
        self.password = info["KAFKA_SASL_PASSWORD"]
        self.ca_location = info["KAFKA_SSL_CA_LOCATION"]
        self.untrusted_ca_location = info["UNTRUSTED_CA_LOCATION"]

    def __repr__(self):  # never the password
        return (f"SecuredKafkaBroker({self.bootstrap!r}, secure={self.secure_bootstrap!r}, "
                f"user={self.username!r}, dir={self.state_dir})")

    @classmethod
    def up(cls, state_dir, timeout=UP_TIMEOUT):
        out = _run("up", state_dir, "--secure", timeout=timeout)
        bootstrap = _hosts_from(out)
        # Not _run: its error text would include stdout, which holds the password.
        proc = _call("secure-info", state_dir, "--json", timeout=60)
        if proc.returncode != 0:
            raise KafkaBrokerError(f"scripts/kafka secure-info --dir {state_dir} failed "
                                   f"(exit {proc.returncode}):\n{proc.stderr}")
        return cls(bootstrap, state_dir, json.loads(proc.stdout))

    def client_config(self):
        """librdkafka settings that authenticate on the secure listener."""
        return {"bootstrap.servers": self.secure_bootstrap, "security.protocol": self.security_protocol,
                "sasl.mechanism": self.mechanism, "sasl.username": self.username,
                "sasl.password": self.password, "ssl.ca.location": self.ca_location}

    def app_settings(self):
        """The app settings that make the function app deliver over SASL_SSL."""
        return {"KAFKA_HOSTS": self.secure_bootstrap, "KAFKA_SECURITY_PROTOCOL": self.security_protocol,
                "KAFKA_SASL_MECHANISM": self.mechanism, "KAFKA_SASL_USERNAME": self.username,
                "KAFKA_SASL_PASSWORD": self.password, "KAFKA_SSL_CA_LOCATION": self.ca_location}


def _call(command, state_dir, *args, timeout):
    return subprocess.run([sys.executable, str(SCRIPT), command, "--dir", str(state_dir), *args],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _run(command, state_dir, *args, timeout):
    try:
        proc = _call(command, state_dir, *args, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise KafkaBrokerError(f"scripts/kafka {command} --dir {state_dir} did not finish "
                               f"within {timeout}s\n{e.stderr or ''}") from None
    if proc.returncode != 0:
        raise KafkaBrokerError(f"scripts/kafka {command} --dir {state_dir} failed "
                               f"(exit {proc.returncode}):\n{proc.stderr}{proc.stdout}")
    return proc.stdout


def _hosts_from(stdout):
    lines = stdout.strip().splitlines()
    if not lines or not lines[-1].startswith("KAFKA_HOSTS="):
        raise KafkaBrokerError(f"scripts/kafka printed no KAFKA_HOSTS line:\n{stdout}")
    return lines[-1].split("=", 1)[1]


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory):
    external = os.environ.get("KAFKA_HOSTS", "").strip()
    if external:
        yield KafkaBroker(external)
        return
    state_dir = tmp_path_factory.mktemp("kafka-broker")
    try:
        broker = KafkaBroker.up(state_dir)
    except (KafkaBrokerError, OSError) as e:
        pytest.fail(f"could not start the test Kafka broker: {e}", pytrace=False)
    try:
        yield broker
    finally:
        broker.down()


@pytest.fixture
def restartable_kafka_broker(kafka_broker):
    if not kafka_broker.managed:
        pytest.skip(f"KAFKA_HOSTS={kafka_broker.bootstrap} is an external broker; this test stops, "
                    "starts or pauses the broker, which is only done to one that scripts/kafka started")
    yield kafka_broker
    # Leave the broker usable for the next test, whatever this one did to it.
    pid = kafka_broker.pid
    if pid is None:
        kafka_broker.start()
    else:
        os.kill(pid, signal.SIGCONT)


@pytest.fixture(scope="session")
def secured_kafka_broker(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("kafka-secured-broker")
    try:
        broker = SecuredKafkaBroker.up(state_dir)
    except (KafkaBrokerError, OSError) as e:
        pytest.fail(f"could not start the secured test Kafka broker: {e}", pytrace=False)
    try:
        from tests.secret_scan import register_secret
    except ImportError:
        pass
    else:
        register_secret(broker.password)
    try:
        yield broker
    finally:
        broker.down()
