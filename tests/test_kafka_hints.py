"""The setting an error names, for Kafka errors a test broker cannot be made to return.

The brokers of these tests are Kafka 4.4, which gives an idempotent producer its id with Write on a topic;
CLUSTER_AUTHORIZATION_FAILED for a missing IdempotentWrite ACL comes only from brokers before 2.8.
"""

from confluent_kafka import KafkaError

from cache_invalidator.producer import setting_hint
from cache_invalidator.settings import Settings

KAFKA = Settings.from_env({"KAFKA_HOSTS": "kafka-0:9093", "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "PLAIN",
                           "KAFKA_SASL_USERNAME": "invalidator", "KAFKA_SASL_PASSWORD": "pw"}).kafka


def test_cluster_authorization_failure_names_the_idempotent_write_acl():
    hint = setting_hint(KafkaError(KafkaError.CLUSTER_AUTHORIZATION_FAILED), KAFKA)
    assert "IdempotentWrite ACL on the cluster" in hint and "before 2.8" in hint
    assert "may not write to the topic" not in hint


def test_topic_authorization_failure_names_write_on_the_topic():
    hint = setting_hint(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED), KAFKA)
    assert "may not write to the topic" in hint and "KAFKA_TOPIC" in hint
