pytest_plugins = ["tests.kafka_broker", "tests.cosmos_emulator", "tests.secret_scan", "tests.openwhisk_oracle"]

import pytest

from cache_invalidator.producer import close_shared_producers
from tests.app_loading import BASE_SETTINGS, load_function_app
from tests.kafka_reading import new_topic_name


@pytest.fixture(autouse=True)
def _fresh_producers():
    """Each test gets its own producers; none outlives it."""
    yield
    close_shared_producers(timeout=0)


@pytest.fixture
def topic(kafka_broker):
    """A new single-partition topic, so that the order of all messages can be compared."""
    name = new_topic_name()
    kafka_broker.create_topic(name)
    return name


@pytest.fixture
def app_settings(kafka_broker, topic):
    """App settings that point at the test broker and topic, with a short delivery deadline."""
    return {**BASE_SETTINGS, "KAFKA_HOSTS": kafka_broker.bootstrap, "KAFKA_TOPIC": topic,
            "KAFKA_DELIVERY_TIMEOUT_SECONDS": "5"}


@pytest.fixture
def function_app(monkeypatch, app_settings):
    """function_app.py indexed with app_settings."""
    return load_function_app(monkeypatch, app_settings)
