"""Ids at the edges, and the biggest batches, through the function to the real broker."""

import logging
import resource
import time
import tracemalloc

import pytest

from tests.contract import contract_json, intended_keys
from tests.app_loading import functions_by_name, host_batch, invoke, load_function_app
from tests.host_driver import make_reporter
from tests.kafka_reading import read_topic
from tests.openwhisk_oracle import assert_openwhisk_reads_as_intended


def contract_value(main_id, secondary_id=None):
    key = {"mainId": main_id} if secondary_id is None else {"mainId": main_id, "secondaryId": secondary_id}
    return contract_json({"instanceId": "cache-invalidator", "key": key})


def sent(bootstrap, topic):
    return read_topic(bootstrap, topic)


def assert_openwhisk_reads_what_was_sent(parser, bootstrap, topic, documents, subjects, what):
    """What reached the topic parses in OpenWhisk to the keys the documents mean (API keys included)."""
    __tracebackhide__ = True  # the documents hold API keys
    assert_openwhisk_reads_as_intended(
        parser, [(key.encode(), value.encode()) for key, value in sent(bootstrap, topic)],
        intended_keys(documents, subjects, None, True), "cache-invalidator", what)


@pytest.fixture
def report(request, record_property):
    return make_reporter(request, record_property)


# Cosmos DB ids: at most 255 characters; any Unicode but '/', '\\', '?', '#'.
MAX_ASCII = "guest|" + "a" * 249
MAX_WIDE = "漢" * 127 + "|" + "字" * 127  # 255 characters, 765 bytes of UTF-8
MAX_EMOJI = "😀" * 127 + "|" + "🚀" * 127  # 255 code points, 4 bytes each in UTF-8

EDGE_WHISKS = [
    (MAX_ASCII, "guest/" + "a" * 249),
    (MAX_WIDE, "漢" * 127 + "/" + "字" * 127),
    (MAX_EMOJI, "😀" * 127 + "/" + "🚀" * 127),
    ("gäst|aktion-ü", "gäst/aktion-ü"),
    ("用户|包|动作", "用户/包/动作"),
    ("guest|e\u0301", "guest/e\u0301"),  # combining accent, not normalised
    ("שלום|פעולה", "שלום/פעולה"),  # right to left
    ("guest|with space", "guest/with space"),
    ('guest|quote"back\\slash', 'guest/quote"back\\slash'),
    ("guest|tab\tnewline\n", "guest/tab\tnewline\n"),
    ("|guest|x|", "/guest/x/"),
    ("||", "//"),
    ("|", "/"),
]


EDGE_WHISKS_DOCUMENTS = [{"id": doc_id, "_ts": 1} for doc_id, _ in EDGE_WHISKS]


def test_whisks_ids_at_the_edges_reach_kafka_unescaped(function_app, kafka_broker, topic):
    assert all(len(doc_id) == 255 for doc_id in (MAX_ASCII, MAX_WIDE, MAX_EMOJI))
    invoke(function_app, "invalidate_whisks", EDGE_WHISKS_DOCUMENTS)
    assert sent(kafka_broker.bootstrap, topic) == [(key, contract_value(key)) for _, key in EDGE_WHISKS]


def test_whisks_ids_at_the_edges_parse_in_openwhisk_to_their_keys(function_app, kafka_broker, topic,
                                                                 openwhisk_parser):
    invoke(function_app, "invalidate_whisks", EDGE_WHISKS_DOCUMENTS)
    assert_openwhisk_reads_what_was_sent(openwhisk_parser, kafka_broker.bootstrap, topic, EDGE_WHISKS_DOCUMENTS,
                                         False, "whisks ids at the edges")


EDGE_SUBJECTS = [
    {"id": "ユーザー", "namespaces": [{"name": "名前空間", "uuid": "ü-uuid", "key": "schlüssel-🔑"}]},
    {"id": MAX_WIDE.replace("|", "x"), "namespaces": []},
    {"id": "名前空間|limits", "concurrentInvocations": 5},
    {"id": "|limits"},  # no namespace before the bar: only its own key
]


def test_subject_ids_and_namespaces_at_the_edges(monkeypatch, app_settings, kafka_broker, topic):
    module = load_function_app(monkeypatch, {**app_settings, "INVALIDATE_AUTH_KEYS": "true"})
    invoke(module, "invalidate_subjects", EDGE_SUBJECTS)
    wide = MAX_WIDE.replace("|", "x")
    assert sent(kafka_broker.bootstrap, topic) == [
        ("ユーザー", contract_value("ユーザー")),
        ("名前空間", contract_value("名前空間")),
        ("ü-uuid", contract_value("ü-uuid", "schlüssel-🔑")),
        (wide, contract_value(wide)),
        ("名前空間/limits", contract_value("名前空間/limits")),
        # its namespace key 名前空間 is the exact message already sent for the first document: sent once
        ("/limits", contract_value("/limits")),
    ]


def test_subject_limits_and_auth_key_messages_parse_in_openwhisk_to_their_keys(monkeypatch, app_settings,
                                                                             kafka_broker, topic, openwhisk_parser):
    module = load_function_app(monkeypatch, {**app_settings, "INVALIDATE_AUTH_KEYS": "true"})
    invoke(module, "invalidate_subjects", EDGE_SUBJECTS)
    assert_openwhisk_reads_what_was_sent(openwhisk_parser, kafka_broker.bootstrap, topic, EDGE_SUBJECTS, True,
                                         "subjects at the edges")


# U+FFFF is spray-json's end-of-input marker: written raw, OpenWhisk would refuse the message
# (tests/test_openwhisk_parser.py shows it); written \uffff, it reads the character.
UFFFF_WHISKS = [{"id": "guest|\uffff"}, {"id": "guest|a\uffffb\ufffe"}]
UFFFF_SUBJECTS = [{"id": "alice\uffff", "namespaces": [{"name": "ns\uffff", "uuid": "uuid\uffff",
                                                        "key": "api-key-\uffff-0123456789"}]},
                  {"id": "ns\uffff|limits"}]


def test_uffff_reaches_kafka_escaped(monkeypatch, app_settings, kafka_broker, topic):
    module = load_function_app(monkeypatch, {**app_settings, "INVALIDATE_AUTH_KEYS": "true"})
    invoke(module, "invalidate_whisks", UFFFF_WHISKS)
    invoke(module, "invalidate_subjects", UFFFF_SUBJECTS)
    assert sent(kafka_broker.bootstrap, topic) == [
        ("guest/\uffff", '{"instanceId":"cache-invalidator","key":{"mainId":"guest/\\uffff"}}'),
        ("guest/a\uffffb\ufffe", '{"instanceId":"cache-invalidator","key":{"mainId":"guest/a\\uffffb\ufffe"}}'),
        ("alice\uffff", '{"instanceId":"cache-invalidator","key":{"mainId":"alice\\uffff"}}'),
        ("ns\uffff", '{"instanceId":"cache-invalidator","key":{"mainId":"ns\\uffff"}}'),
        ("uuid\uffff", '{"instanceId":"cache-invalidator","key":{"mainId":"uuid\\uffff",'
                       '"secondaryId":"api-key-\\uffff-0123456789"}}'),
        ("ns\uffff/limits", '{"instanceId":"cache-invalidator","key":{"mainId":"ns\\uffff/limits"}}'),
    ]


def test_uffff_in_main_and_secondary_ids_parses_in_openwhisk_to_the_character(monkeypatch, app_settings,
                                                                            kafka_broker, topic, openwhisk_parser):
    module = load_function_app(monkeypatch, {**app_settings, "INVALIDATE_AUTH_KEYS": "true"})
    invoke(module, "invalidate_whisks", UFFFF_WHISKS)
    assert_openwhisk_reads_what_was_sent(openwhisk_parser, kafka_broker.bootstrap, topic, UFFFF_WHISKS, False,
                                         "whisks ids with U+FFFF")
    subjects_topic = topic + "-subjects"
    kafka_broker.create_topic(subjects_topic)
    module = load_function_app(monkeypatch, {**app_settings, "KAFKA_TOPIC": subjects_topic,
                                             "INVALIDATE_AUTH_KEYS": "true"})
    invoke(module, "invalidate_subjects", UFFFF_SUBJECTS)
    assert_openwhisk_reads_what_was_sent(openwhisk_parser, kafka_broker.bootstrap, subjects_topic, UFFFF_SUBJECTS,
                                         True, "subjects with U+FFFF")


def test_empty_namespace_name_is_skipped_with_a_warning_and_the_subject_still_sent(function_app, kafka_broker,
                                                                                   topic, caplog):
    documents = [{"id": "alice", "namespaces": [{"name": ""}, {"name": "alice-ns"}, {"uuid": "u"}]}]
    with caplog.at_level(logging.WARNING, logger="cache_invalidator"):
        invoke(function_app, "invalidate_subjects", documents)
    assert sent(kafka_broker.bootstrap, topic) == [("alice", contract_value("alice")),
                                                    ("alice-ns", contract_value("alice-ns"))]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("'alice'" in w and "empty" in w for w in warnings), warnings
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


BULK = 50_000


def test_a_batch_of_50000_documents_arrives_whole(monkeypatch, app_settings, kafka_broker, topic, report):
    # The production deadline (30 s), not the tests' 5 s: this is about size, not speed.
    module = load_function_app(monkeypatch, {**app_settings, "KAFKA_DELIVERY_TIMEOUT_SECONDS": "30"})
    documents = [{"id": f"guest|bulk-{i}", "_ts": 1_700_000_000, "version": "0.0.1", "publish": False,
                  "exec": {"kind": "nodejs:20", "code": "function main(p) { return p }", "binary": False},
                  "annotations": [{"key": "exec", "value": "nodejs:20"}]} for i in range(BULK)]
    function = functions_by_name(module)["invalidate_whisks"].get_user_function()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    batch = host_batch(documents)  # the worker decodes the host's JSON before the function runs
    tracemalloc.start()
    try:
        started = time.monotonic()
        function(batch)
        seconds = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    messages = read_topic(kafka_broker.bootstrap, topic, timeout=120)
    keys = [key for key, _ in messages]
    report(f"[50,000-document batch] expected keys={BULK} messages={len(messages)} distinct keys arrived="
           f"{len(set(keys))} missing={BULK - len(set(keys) & {f'guest/bulk-{i}' for i in range(BULK)})} | "
           f"tracemalloc peak of the function call={peak / 2**20:.1f} MiB, ru_maxrss (host JSON decoding included) grew by "
           f"{(rss_after - rss_before) / 1024:.1f} MiB (to {rss_after / 1024:.0f} MiB) | invocation took {seconds:.1f} s "
           f"(with tracemalloc on; not a benchmark)")
    assert keys == [f"guest/bulk-{i}" for i in range(BULK)]
    assert all(value == contract_value(key) for key, value in messages)
