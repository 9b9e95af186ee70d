"""The test broker itself (scripts/kafka through the kafka_broker fixtures)."""

import shlex
import shutil
import subprocess
import sys
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.kafka_broker import SCRIPT

N_MESSAGES = 200


def fresh_topic_name():
    return f"test-kafka-broker-{uuid.uuid4().hex[:12]}"


def produce_all(bootstrap, topic, values, **config):
    """Produce values in order, wait for every delivery report; return the reports' errors."""
    errors = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 5, **config})

    def report(err, _msg):
        if err is not None:
            errors.append(err)

    for value in values:
        producer.produce(topic, value, on_delivery=report)
    remaining = producer.flush(30)
    assert remaining == 0, f"{remaining} message(s) still undelivered after 30 s"
    return errors


def consume_all(bootstrap, topic, timeout=60.0):
    """Every value of partition 0 from offset 0 to its high watermark, in order."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        partition = TopicPartition(topic, 0)
        _, high = consumer.get_watermark_offsets(partition, timeout=timeout)
        consumer.assign([TopicPartition(topic, 0, 0)])
        values = []
        deadline = time.monotonic() + timeout
        while len(values) < high:
            assert time.monotonic() < deadline, f"read {len(values)} of {high} messages in {timeout} s"
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            values.append(msg.value())
        return values
    finally:
        consumer.close()


def test_every_message_acked_before_a_broker_restart_is_read_back_after_it(restartable_kafka_broker):
    broker = restartable_kafka_broker
    topic = fresh_topic_name()
    broker.create_topic(topic)
    values = [f"message-{i:03d}".encode() for i in range(N_MESSAGES)]
    assert produce_all(broker.bootstrap, topic, values) == []
    bootstrap, pid = broker.bootstrap, broker.pid

    broker.stop()
    assert broker.pid is None
    broker.start()

    assert broker.pid not in (None, pid)  # a new broker process...
    assert broker.bootstrap == bootstrap  # ...on the same address
    assert consume_all(broker.bootstrap, topic) == values


def test_producing_to_a_missing_topic_fails_and_does_not_create_it(kafka_broker):
    topic = fresh_topic_name()
    errors = produce_all(kafka_broker.bootstrap, topic, [b"lost"],
                         **{"message.timeout.ms": 5000, "topic.metadata.propagation.max.ms": 1000})
    assert [e.code() for e in errors] in ([KafkaError.UNKNOWN_TOPIC_OR_PART], [KafkaError._UNKNOWN_TOPIC]), errors

    listed = AdminClient({"bootstrap.servers": kafka_broker.bootstrap}).list_topics(topic=topic, timeout=10)
    assert listed.topics[topic].error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def scripts_kafka(*args, python=(sys.executable,), script=SCRIPT, timeout=120):
    return subprocess.run([*python, str(script), *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture
def managed_broker(kafka_broker):
    if not kafka_broker.managed:
        pytest.skip(f"KAFKA_HOSTS={kafka_broker.bootstrap} is an external broker; scripts/kafka's topic "
                    "commands work on a broker it started")
    return kafka_broker


def listed_topic(bootstrap, topic):
    return AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic=topic, timeout=10).topics[topic]


def test_topic_command_returns_once_every_partition_has_a_leader(managed_broker):
    topic = fresh_topic_name()
    done = scripts_kafka("topic", topic, "--partitions", "3", "--dir", str(managed_broker.state_dir))

    assert (done.returncode, done.stdout) == (0, f"created topic {topic!r} (3 partition(s))\n"), done.stderr
    listed = listed_topic(managed_broker.bootstrap, topic)
    assert listed.error is None
    assert sorted(listed.partitions) == [0, 1, 2]
    assert all(p.error is None and p.leader >= 0 for p in listed.partitions.values())


def test_topic_command_on_an_existing_topic_fails_unless_told_if_not_exists(managed_broker):
    topic = fresh_topic_name()
    managed_broker.create_topic(topic)
    again = scripts_kafka("topic", topic, "--dir", str(managed_broker.state_dir))
    tolerated = scripts_kafka("topic", topic, "--if-not-exists", "--dir", str(managed_broker.state_dir))

    assert (again.returncode, again.stderr) == (1, f"kafka: topic {topic!r} already exists\n")
    assert (tolerated.returncode, tolerated.stdout) == (0, f"topic {topic!r} already exists\n")


def test_topic_command_reports_the_broker_s_refusal_of_a_config(managed_broker):
    topic = fresh_topic_name()
    done = scripts_kafka("topic", topic, "--config", "retention.ms=soon", "--dir", str(managed_broker.state_dir))

    assert done.returncode == 1
    assert done.stderr.startswith(f"kafka: creating topic {topic!r} failed: INVALID_CONFIG "), done.stderr
    assert "retention.ms" in done.stderr


def test_delete_topic_command_returns_once_the_broker_no_longer_lists_it(managed_broker):
    topic = fresh_topic_name()
    managed_broker.create_topic(topic)
    done = scripts_kafka("delete-topic", topic, "--dir", str(managed_broker.state_dir))

    assert (done.returncode, done.stdout) == (0, f"deleted topic {topic!r}\n"), done.stderr
    assert listed_topic(managed_broker.bootstrap, topic).error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_delete_topic_command_on_a_missing_topic_fails_unless_told_if_exists(managed_broker):
    topic = fresh_topic_name()
    missing = scripts_kafka("delete-topic", topic, "--dir", str(managed_broker.state_dir))
    tolerated = scripts_kafka("delete-topic", topic, "--if-exists", "--dir", str(managed_broker.state_dir))

    assert (missing.returncode, missing.stderr) == (1, f"kafka: topic {topic!r} does not exist\n")
    assert (tolerated.returncode, tolerated.stdout) == (0, f"topic {topic!r} does not exist\n")


def repo_copy_without_venv(tmp_path):
    """scripts/kafka alone in a directory tree with no .venv beside it."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(SCRIPT, tmp_path / "scripts" / "kafka")
    return tmp_path / "scripts" / "kafka"


# `python -S` leaves site-packages out, so confluent-kafka cannot be imported: a Python without it.
BARE_PYTHON = (sys.executable, "-S")


def test_a_python_without_confluent_kafka_and_no_venv_exits_7_saying_what_to_install(tmp_path):
    script = repo_copy_without_venv(tmp_path)
    done = scripts_kafka("topic", "t", "--dir", str(tmp_path / "state"), python=BARE_PYTHON, script=script)

    assert done.returncode == 7, done.stderr
    assert "confluent-kafka is not installed" in done.stderr
    assert "pip install -r requirements.txt" in done.stderr


@pytest.mark.parametrize("venv", [".venv", ".cache/venv-runtime-3.13"])
def test_a_python_without_confluent_kafka_runs_the_script_again_with_a_project_python(tmp_path, venv):
    script = repo_copy_without_venv(tmp_path)
    venv_python = tmp_path / venv / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    # Stands for a project Python (scripts/test's, scripts/run-local's): this Python with its site-packages.
    venv_python.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} \"$@\"\n")
    venv_python.chmod(0o755)
    done = scripts_kafka("topic", "t", "--dir", str(tmp_path / "state"), python=BARE_PYTHON, script=script)

    # Past the client check, it finds no broker there: the exit code of a command run with the client.
    assert (done.returncode, done.stderr) == (3, f"kafka: no broker running in {tmp_path / 'state'}\n")


def test_commands_that_only_handle_processes_need_no_confluent_kafka(tmp_path):
    script = repo_copy_without_venv(tmp_path)
    done = scripts_kafka("status", "--dir", str(tmp_path / "state"), python=BARE_PYTHON, script=script)

    assert (done.returncode, done.stdout.splitlines()[0]) == (3, "stopped"), done.stderr
