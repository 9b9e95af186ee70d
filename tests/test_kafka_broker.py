"""The test broker itself (scripts/kafka through the kafka_broker fixtures)."""

import time
import uuid

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

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
