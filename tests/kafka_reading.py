"""Reads back what reached a real Kafka topic."""

import time
import uuid

from confluent_kafka import Consumer, TopicPartition


def new_topic_name(prefix="cacheInvalidation"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def read_topic(bootstrap, topic, timeout=30.0, **config):
    """Every message on the topic, up to its high watermark at the time of the call, as (key, value) text pairs per partition order."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"test-reader-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        **config,
    })
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        ends = {}
        for p in partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        messages = []
        done = {p for p, high in ends.items() if high == 0}
        deadline = time.monotonic() + timeout
        while len(done) < len(partitions):
            if time.monotonic() > deadline:
                raise AssertionError(f"topic {topic} not read to its end within {timeout} s")
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise AssertionError(f"consuming {topic}: {msg.error()}")
            messages.append((msg.partition(), msg.key().decode("utf-8"), msg.value().decode("utf-8")))
            if msg.offset() + 1 >= ends[msg.partition()]:
                done.add(msg.partition())
        return [(key, value) for _, key, value in messages]
    finally:
        consumer.close()
