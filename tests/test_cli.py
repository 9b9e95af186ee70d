"""The operators' CLI: settings files, `check` against the real broker, and the replay core with plain pages."""

import io
import json
import os
import select
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cache_invalidator.cli.appsettings import SettingsFileError, load_values, strip_json_comments
from cache_invalidator.cli.main import main
from cache_invalidator.cli.replay import ReplaySource, replay_pages, run_replay, stop_after_until
from cache_invalidator.settings import Settings
from cache_invalidator.translation import ContainerKind
from tests import secret_scan
from tests.app_loading import BASE_SETTINGS
from tests.kafka_reading import new_topic_name, read_topic

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT_KEY = "dGVzdC1jb3Ntb3Mta2V5"  # BASE_SETTINGS' AccountKey
SASL_PASSWORD = "pa55-w0rd-never-shown"


def run(argv, environ, **kwargs):
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, environ=environ, stdout=out, stderr=err, **kwargs)
    return code, out.getvalue(), err.getvalue()


def whisks(count, ts=1_700_000_000, start=0):
    return [{"id": f"guest|action{i}", "_ts": ts} for i in range(start, start + count)]


def keys(messages):
    return [key for key, _ in messages]


# -- settings files -----------------------------------------------------------------------------


def test_comments_are_stripped_but_not_inside_strings():
    text = '{\n  // a comment\n  "a": "https://x//y", /* block\n  comment */ "b": "c\\"//d"\n}'
    assert json.loads(strip_json_comments(text)) == {"a": "https://x//y", "b": 'c"//d'}


def test_the_commented_example_file_loads():
    values = load_values(ROOT / "local.settings.json.example")
    assert (values["COSMOSDB"], values["LOCAL_RUN_NAME"]) == ("", "dev")
    assert values["KAFKA_PRODUCER_LINGER_MS"] == "0"
    assert "COSMOSDB__accountEndpoint" not in values  # commented out


def test_settings_file_errors_say_what_is_wrong(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "Values": {\n    "A": "b",,\n  }\n}')
    with pytest.raises(SettingsFileError, match="line 3"):
        load_values(bad)
    encrypted = tmp_path / "encrypted.json"
    encrypted.write_text('{"IsEncrypted": true, "Values": {}}')
    with pytest.raises(SettingsFileError, match="encrypted"):
        load_values(encrypted)
    code, _, err = run(["check", "--settings", str(tmp_path / "missing.json")], {})
    assert code == 2 and "missing.json" in err


def test_settings_file_values_take_precedence_over_the_environment(tmp_path, app_settings):
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"Values": {"CLUSTER_ID": "from-file"}}))
    code, out, _ = run(["check", "--no-kafka", "--no-cosmos", "--settings", str(path)],
                       {**app_settings, "CLUSTER_ID": "from-env"})
    assert code == 0, out
    assert "from-file" in out and "from-env" not in out


# -- check: settings ----------------------------------------------------------------------------


def test_check_names_every_bad_setting_and_exits_1():
    env = {"KAFKA_HOSTS": "localhost", "KAFKA_DELIVERY_TIMEOUT_SECONDS": "soon",
           "COSMOSDB_MAX_ITEMS_PER_INVOCATION": "0"}
    code, out, _ = run(["check"], env)
    assert code == 1
    for setting in ("COSMOSDB_NAME", "COSMOSDB", "COSMOSDB_MAX_ITEMS_PER_INVOCATION", "KAFKA_HOSTS",
                    "KAFKA_DELIVERY_TIMEOUT_SECONDS"):
        assert f"PROBLEM setting {setting}:" in out, out
    assert "skipped the Kafka settings have problems" in out


def test_check_shows_the_effective_settings(app_settings):
    code, out, _ = run(["check", "--no-kafka", "--no-cosmos"], {**app_settings, "CLUSTER_ID": "westeurope"})
    assert code == 0, out
    assert "westeurope-whisks" in out and "westeurope-subjects" in out
    assert "cache-invalidator-lease" in out and app_settings["KAFKA_TOPIC"] in out
    assert "All checks passed" in out


def test_check_rejects_a_connection_string_without_key(app_settings):
    env = {**app_settings, "COSMOSDB": "AccountEndpoint=https://localhost:8081/;"}
    code, out, _ = run(["check", "--no-kafka", "--no-cosmos"], env)
    assert code == 1 and "no AccountKey" in out


# -- check: Kafka -------------------------------------------------------------------------------


def test_check_reports_the_topic_and_its_partitions(kafka_broker, app_settings):
    topic = new_topic_name()
    kafka_broker.create_topic(topic, partitions=3)
    code, out, _ = run(["check", "--no-cosmos"], {**app_settings, "KAFKA_TOPIC": topic})
    assert code == 0, out
    assert f"topic '{topic}' exists with 3 partition(s)" in out
    assert "broker(s) answer" in out


def test_check_reports_a_missing_topic_as_a_problem(app_settings):
    missing = new_topic_name("missing")
    code, out, _ = run(["check", "--no-cosmos"], {**app_settings, "KAFKA_TOPIC": missing})
    assert code == 1
    assert f"PROBLEM topic '{missing}' does not exist" in out


def test_check_does_not_create_a_missing_topic(kafka_broker, app_settings):
    missing = new_topic_name("missing")
    run(["check", "--no-cosmos"], {**app_settings, "KAFKA_TOPIC": missing})
    code, out, _ = run(["check", "--no-cosmos"], {**app_settings, "KAFKA_TOPIC": missing})
    assert code == 1 and "does not exist" in out


def test_check_reports_unreachable_brokers_within_the_timeout(app_settings):
    code, out, _ = run(["check", "--no-cosmos", "--timeout", "2"], {**app_settings, "KAFKA_HOSTS": "127.0.0.1:1"})
    assert code == 1 and "no cluster metadata from KAFKA_HOSTS=127.0.0.1:1 within 2 s: _TRANSPORT" in out


def test_check_names_a_producer_property_kafka_rejects(app_settings):
    code, out, _ = run(["check", "--no-cosmos"], {**app_settings, "KAFKA_PRODUCER_NO_SUCH_THING": "1"})
    assert code == 1 and "KAFKA_PRODUCER_NO_SUCH_THING" in out


def test_check_never_prints_secrets(app_settings):
    env = {**app_settings, "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "PLAIN",
           "KAFKA_SASL_USERNAME": "invalidator", "KAFKA_SASL_PASSWORD": SASL_PASSWORD,
           "KAFKA_PRODUCER_SSL_KEY_PASSWORD": "another-secret-value",
           # Unreachable, so that the Cosmos DB part reports an error text too.
           "COSMOSDB": f"AccountEndpoint=https://127.0.0.1:1/;AccountKey={ACCOUNT_KEY};"}
    code, out, err = run(["check", "--timeout", "2"], env)
    assert code == 1  # the plaintext test broker does not speak SASL, and Cosmos DB is not there
    text = out + err
    for secret in (SASL_PASSWORD, ACCOUNT_KEY, "another-secret-value"):
        assert secret not in text
    assert "KAFKA_SASL_PASSWORD" in out and "AccountKey=***" in out


def test_check_reports_an_unreachable_cosmos_db_naming_the_setting(app_settings):
    env = {**app_settings, "COSMOSDB": f"AccountEndpoint=https://127.0.0.1:1/;AccountKey={ACCOUNT_KEY};"}
    code, out, _ = run(["check", "--no-kafka", "--timeout", "2"], env)
    assert code == 1
    assert "PROBLEM setting COSMOSDB: cannot reach https://127.0.0.1:1/" in out


def test_check_over_sasl_ssl(secured_kafka_broker):
    topic = new_topic_name()
    secured_kafka_broker.create_topic(topic)
    env = {**BASE_SETTINGS, **secured_kafka_broker.app_settings(), "KAFKA_TOPIC": topic}
    code, out, _ = run(["check", "--no-cosmos"], env)
    assert code == 0, out
    assert f"topic '{topic}' exists with 1 partition(s)" in out
    assert secured_kafka_broker.password not in out and "KAFKA_SASL_PASSWORD" in out


def test_check_with_a_wrong_password_names_the_sasl_settings(secured_kafka_broker):
    wrong = "wrong-password-for-check-7261"
    secret_scan.register_secret(wrong)
    env = {**BASE_SETTINGS, **secured_kafka_broker.app_settings(), "KAFKA_SASL_PASSWORD": wrong}
    code, out, _ = run(["check", "--no-cosmos", "--timeout", "5"], env)
    assert code == 1
    assert "KAFKA_SASL_PASSWORD" in out.split("Kafka\n", 1)[1], out
    assert wrong not in out and secured_kafka_broker.password not in out


def test_check_refuses_a_mechanism_the_kafka_client_is_built_without_as_the_app_does():
    env = {**BASE_SETTINGS, "KAFKA_HOSTS": "127.0.0.1:9092", "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
           "KAFKA_SASL_MECHANISM": "GSSAPI", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": SASL_PASSWORD}
    code, out, _ = run(["check", "--no-cosmos"], env)
    assert code == 1
    assert "PROBLEM setting KAFKA_SASL_MECHANISM: GSSAPI is not built into the Kafka client" in out, out


def test_check_names_a_sasl_protocol_without_a_mechanism():
    env = {**BASE_SETTINGS, "KAFKA_HOSTS": "127.0.0.1:9092", "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
           "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": SASL_PASSWORD}
    code, out, _ = run(["check", "--no-cosmos"], env)
    assert code == 1 and "PROBLEM setting KAFKA_SASL_MECHANISM: is required but not set" in out, out


# -- check and replay: Key Vault references among the settings ----------------------------------

SECRET_URI = "@Microsoft.KeyVault(SecretUri=https://ow-kv-7713.vault.azure.net/secrets/kafka-pw-westeurope/)"
VAULT_AND_NAME = "@Microsoft.KeyVault(VaultName=ow-kv-7713;SecretName=kafka-pw-westeurope)"


def downloaded_settings(tmp_path, values):
    """A region's settings as `func azure functionapp fetch-app-settings` writes them (decrypted)."""
    path = tmp_path / "westeurope.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    return path


@pytest.mark.parametrize("reference", [SECRET_URI, VAULT_AND_NAME], ids=["SecretUri", "VaultName"])
def test_check_says_a_key_vault_reference_is_one_shows_none_of_it_and_sends_nothing(tmp_path, reference):
    brokers = socket.create_server(("127.0.0.1", 0))  # where KAFKA_HOSTS points: nothing may connect
    try:
        values = {**BASE_SETTINGS, "KAFKA_HOSTS": f"127.0.0.1:{brokers.getsockname()[1]}",
                  "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                  "KAFKA_SASL_USERNAME": "invalidator", "KAFKA_SASL_PASSWORD": reference}
        code, out, err = run(["check", "--no-cosmos", "--timeout", "2", "--settings",
                              str(downloaded_settings(tmp_path, values))], {})
        connected, _, _ = select.select([brokers], [], [], 0.5)
    finally:
        brokers.close()
    assert code == 1
    assert "PROBLEM setting KAFKA_SASL_PASSWORD: a Key Vault reference (@Microsoft.KeyVault(...))" in out, out
    assert "KAFKA_SASL_PASSWORD" in out and "export KAFKA_SASL_PASSWORD=" in out
    assert "skipped KAFKA_SASL_PASSWORD holds a Key Vault reference (see Settings): nothing was sent" in out
    for part in ("ow-kv-7713", "kafka-pw-westeurope", "vault.azure.net", "SecretUri", "VaultName"):
        assert part not in out + err, part
    assert connected == [], "check connected to the brokers"


def test_a_key_vault_reference_among_settings_check_does_not_use_is_a_warning(tmp_path):
    values = {**BASE_SETTINGS, "KAFKA_HOSTS": "127.0.0.1:9092", "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
              "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": SECRET_URI}
    code, out, _ = run(["check", "--no-kafka", "--no-cosmos", "--settings", str(downloaded_settings(tmp_path, values))],
                       {})
    assert code == 0 and "WARNING setting KAFKA_SASL_PASSWORD: a Key Vault reference" in out, out


def test_the_environment_takes_the_place_of_a_key_vault_reference_in_the_file(secured_kafka_broker, tmp_path):
    topic = new_topic_name()
    secured_kafka_broker.create_topic(topic)
    secured = secured_kafka_broker.app_settings()
    values = {**BASE_SETTINGS, **secured, "KAFKA_TOPIC": topic, "KAFKA_SASL_PASSWORD": VAULT_AND_NAME}
    environment = {"KAFKA_SASL_PASSWORD": secured["KAFKA_SASL_PASSWORD"], "KAFKA_TOPIC": "not-this-one"}
    code, out, _ = run(["check", "--no-cosmos", "--settings", str(downloaded_settings(tmp_path, values))], environment)
    assert code == 0, out
    assert "KAFKA_SASL_PASSWORD: the environment's value, in place of the Key Vault reference" in out
    # Everything else the file holds wins over the environment.
    assert f"topic '{topic}' exists" in out and "not-this-one" not in out
    assert secured["KAFKA_SASL_PASSWORD"] not in out


def test_replay_refuses_a_key_vault_reference_and_reads_nothing(app_settings, tmp_path):
    calls = []
    values = {**app_settings, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
              "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": SECRET_URI}
    code, out, err = run(["replay", "--container", "whisks", "--since", "2024-05-01", "--settings",
                          str(downloaded_settings(tmp_path, values))], {}, page_source=fake_source({}, calls))
    assert (code, calls, out) == (1, [], "")
    assert "error: setting KAFKA_SASL_PASSWORD: a Key Vault reference" in err and "ow-kv-7713" not in err


# -- replay core against the real broker --------------------------------------------------------


def settings_for(app_settings, **extra):
    return Settings.from_env({**app_settings, **extra})


def test_replayed_pages_arrive_in_order(kafka_broker, topic, app_settings):
    pages = [whisks(3), whisks(2, start=3), []]
    summary = replay_pages(pages, ContainerKind.WHISKS, "whisks", settings_for(app_settings))
    assert keys(read_topic(kafka_broker.bootstrap, topic)) == [f"guest/action{i}" for i in range(5)]
    assert (summary.pages, summary.documents, summary.messages) == (3, 5, 5)


def test_messages_are_the_apps_own(kafka_broker, topic, app_settings):
    replay_pages([whisks(1)], ContainerKind.WHISKS, "whisks", settings_for(app_settings))
    assert read_topic(kafka_broker.bootstrap, topic) == [
        ("guest/action0", '{"instanceId":"cache-invalidator","key":{"mainId":"guest/action0"}}')]


def test_subjects_yield_their_namespaces(kafka_broker, topic, app_settings):
    subject = {"id": "alice", "_ts": 1, "namespaces": [{"name": "alice", "uuid": "u", "key": "k"}, {"name": "team"}]}
    replay_pages([[subject]], ContainerKind.SUBJECTS, "subjects", settings_for(app_settings))
    assert keys(read_topic(kafka_broker.bootstrap, topic)) == ["alice", "team"]


def test_until_leaves_later_changes_out(kafka_broker, topic, app_settings):
    page = [{"id": "a", "_ts": 999}, {"id": "b", "_ts": 1000}, {"id": "c", "_ts": 1001}, None]
    summary = replay_pages([page], ContainerKind.WHISKS, "whisks", settings_for(app_settings), until_ts=1000)
    assert keys(read_topic(kafka_broker.bootstrap, topic)) == ["a", "b"]
    assert (summary.documents, summary.after_until, summary.messages, summary.poison) == (4, 1, 2, 1)


def test_since_leaves_earlier_changes_out(kafka_broker, topic, app_settings):
    page = [{"id": "a", "_ts": 999}, {"id": "b", "_ts": 1000}, {"id": "no-ts"}]
    summary = replay_pages([page], ContainerKind.WHISKS, "whisks", settings_for(app_settings), since_ts=1000)
    assert keys(read_topic(kafka_broker.bootstrap, topic)) == ["b", "no-ts"]
    assert (summary.documents, summary.before_since, summary.messages) == (3, 1, 2)
    assert "1 changed before --since left out" in summary.describe(False, topic)


def test_a_feed_range_is_read_only_up_to_the_first_page_past_until():
    read = []

    def pages():
        for page in ([{"_ts": 1}], [{"_ts": 2}, {"_ts": 6}], [{"_ts": 7}], [{"_ts": 8}]):
            read.append(page)
            yield page

    assert list(stop_after_until(pages(), 5)) == [[{"_ts": 1}], [{"_ts": 2}, {"_ts": 6}]]
    assert len(read) == 2
    assert len(list(stop_after_until([[{"_ts": 1}], [], [{"_ts": 9}]], None))) == 2


def test_own_cluster_changes_are_skipped(kafka_broker, topic, app_settings):
    page = [{"id": "mine", "_ts": 1, "_clusterId": "eu"}, {"id": "theirs", "_ts": 1, "_clusterId": "us"}]
    summary = replay_pages([page], ContainerKind.WHISKS, "whisks", settings_for(app_settings, CLUSTER_ID="eu"))
    assert keys(read_topic(kafka_broker.bootstrap, topic)) == ["theirs"]
    assert summary.own_cluster == 1


def test_dry_run_prints_and_sends_nothing(kafka_broker, topic, app_settings):
    out, err = io.StringIO(), io.StringIO()
    code = run_replay(settings_for(app_settings), [ReplaySource(ContainerKind.WHISKS, "whisks", [whisks(2)])],
                      until_ts=None, dry_run=True, out=out, err=err)
    assert code == 0
    assert out.getvalue().splitlines() == [
        'guest/action0\t{"instanceId":"cache-invalidator","key":{"mainId":"guest/action0"}}',
        'guest/action1\t{"instanceId":"cache-invalidator","key":{"mainId":"guest/action1"}}',
    ]
    assert read_topic(kafka_broker.bootstrap, topic) == []
    assert "whisks: 2 documents read in 1 pages, 2 messages printed (dry run, not sent)" in err.getvalue()


def test_dry_run_hides_api_keys(app_settings):
    out, err = io.StringIO(), io.StringIO()
    subject = {"id": "alice", "_ts": 1, "namespaces": [{"name": "alice", "uuid": "u-1", "key": "s3cr3t-api-key"}]}
    run_replay(settings_for(app_settings, INVALIDATE_AUTH_KEYS="true"),
               [ReplaySource(ContainerKind.SUBJECTS, "subjects", [[subject]])],
               until_ts=None, dry_run=True, out=out, err=err)
    assert "s3cr3t-api-key" not in out.getvalue()
    assert '"mainId":"u-1","secondaryId":"***"' in out.getvalue()


def test_summary_counts_every_container(kafka_broker, topic, app_settings):
    out, err = io.StringIO(), io.StringIO()
    sources = [ReplaySource(ContainerKind.WHISKS, "whisks", [whisks(2), whisks(1, start=2)]),
               ReplaySource(ContainerKind.SUBJECTS, "subjects", [[{"id": "bob", "_ts": 5}]])]
    code = run_replay(settings_for(app_settings), sources, until_ts=None, dry_run=False, out=out, err=err)
    assert code == 0
    summary = err.getvalue()
    assert f"whisks: 3 documents read in 2 pages, 3 messages sent to '{topic}'" in summary
    assert f"subjects: 1 documents read in 1 pages, 1 messages sent to '{topic}'" in summary
    assert "total: 4 documents read, 4 messages sent" in summary
    assert out.getvalue() == ""
    assert len(read_topic(kafka_broker.bootstrap, topic)) == 4


def test_delivery_failure_exits_1_with_a_clear_message(app_settings):
    missing = new_topic_name("missing")
    settings = settings_for(app_settings, KAFKA_TOPIC=missing, KAFKA_DELIVERY_TIMEOUT_SECONDS="2")
    read = []

    def pages():
        for page in (whisks(2), whisks(2, start=2)):
            read.append(page)
            yield page

    out, err = io.StringIO(), io.StringIO()
    code = run_replay(settings, [ReplaySource(ContainerKind.WHISKS, "whisks", pages())],
                      until_ts=None, dry_run=False, out=out, err=err)
    assert code == 1
    text = err.getvalue()
    assert "error: replay of 'whisks' stopped: Kafka did not acknowledge a page" in text
    assert "the topic does not exist" in text and missing in text
    assert "run the same command again" in text
    assert len(read) == 1  # the next page is not read before this one is delivered


def test_progress_bar_only_on_a_terminal(app_settings):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for err, shown in ((io.StringIO(), False), (Terminal(), True)):
        run_replay(settings_for(app_settings), [ReplaySource(ContainerKind.WHISKS, "whisks", [whisks(2)])],
                   until_ts=None, dry_run=True, out=io.StringIO(), err=err)
        assert ("docs" in err.getvalue().split("Replay summary")[0]) is shown


def test_poison_documents_are_logged_without_their_content(app_settings):
    out, err = io.StringIO(), io.StringIO()
    page = [{"id": "a/b", "secret": "do-not-print"}, {"id": "ok", "_ts": 1}]
    run_replay(settings_for(app_settings), [ReplaySource(ContainerKind.WHISKS, "whisks", [page])],
               until_ts=None, dry_run=True, out=out, err=err)
    assert "Skipped poison document at position 0" in err.getvalue()
    assert "do-not-print" not in err.getvalue() + out.getvalue()


# -- replay through the command line, with pages instead of Cosmos DB ---------------------------


def fake_source(pages_by_container, calls):
    def source(env, trigger, names, since, until_ts, *, timeout, page_size):
        calls.append({"names": names, "since": since, "until_ts": until_ts, "page_size": page_size})
        return {name: pages_by_container[name] for name in names}, lambda: calls.append("closed")
    return source


def test_replay_command_sends_the_window(kafka_broker, topic, app_settings):
    calls = []
    source = fake_source({"whisks": [whisks(2, ts=1_714_564_800)], "subjects": [[{"id": "bob", "_ts": 1_714_564_801}]]},
                         calls)
    code, out, err = run(["replay", "--container", "all", "--since", "2024-05-01T10:00:00+02:00",
                          "--until", "2024-05-01T12:00:00", "--page-size", "50"], app_settings, page_source=source)
    assert code == 0, err
    assert calls[0]["names"] == ["whisks", "subjects"]
    assert calls[0]["since"].isoformat() == "2024-05-01T08:00:00+00:00"
    assert calls[0]["until_ts"] == 1_714_564_800 and calls[0]["page_size"] == 50
    assert calls[-1] == "closed"
    # Only the whisks changed at --until: bob changed a second later.
    assert keys(read_topic(kafka_broker.bootstrap, topic)) == ["guest/action0", "guest/action1"]


def test_replay_command_dry_run_prints_messages(kafka_broker, topic, app_settings):
    calls = []
    code, out, err = run(["replay", "--container", "whisks", "--since", "2024-05-01", "--dry-run"], app_settings,
                         page_source=fake_source({"whisks": [whisks(1, ts=1_714_564_800)]}, calls))
    assert code == 0
    assert out.startswith("guest/action0\t")
    assert read_topic(kafka_broker.bootstrap, topic) == []


def test_replay_command_uses_the_configured_container_names(app_settings):
    calls = []
    run(["replay", "--container", "subjects", "--since", "2024-05-01", "--dry-run"],
        {**app_settings, "COSMOSDB_SUBJECTS_CONTAINER": "subjects2"},
        page_source=fake_source({"subjects2": []}, calls))
    assert calls[0]["names"] == ["subjects2"]


def test_replay_command_rejects_bad_times_and_settings(app_settings):
    assert run(["replay", "--container", "whisks", "--since", "yesterday"], app_settings)[0] == 2
    code, _, err = run(["replay", "--container", "whisks", "--since", "2024-05-02", "--until", "2024-05-01"],
                       app_settings)
    assert code == 2 and "--until is before --since" in err
    code, _, err = run(["replay", "--container", "whisks", "--since", "2024-05-01"],
                       {k: v for k, v in app_settings.items() if k != "KAFKA_HOSTS"})
    assert code == 1 and "KAFKA_HOSTS" in err


# -- marks of the all-versions-and-deletes feed, and replay from them ---------------------------


def delete_envelope(doc_id, crts):
    return {"current": None, "metadata": {"crts": crts, "lsn": 9, "operationType": "delete", "previousImageLSN": 8,
                                          "timeToLiveExpired": False, "id": doc_id, "partitionKey": {"id": doc_id}}}


def test_replayed_all_versions_and_deletes_pages_send_hard_deletes_and_skip_own_writes(kafka_broker, topic,
                                                                                      app_settings):
    own = {"current": {"id": "guest|mine", "_clusterId": "westeurope", "_ts": 1000},
           "metadata": {"crts": 1000.0, "lsn": 7, "operationType": "create", "previousImageLSN": 0,
                        "timeToLiveExpired": False}}
    page = [own, delete_envelope("guest|mine", 1001.5), delete_envelope("guest|later", 2000.0)]
    summary = replay_pages([page], ContainerKind.WHISKS, "whisks",
                           settings_for(app_settings, CLUSTER_ID="westeurope"), until_ts=1500)
    assert keys(read_topic(kafka_broker.bootstrap, topic)) == ["guest/mine"]
    assert (summary.own_cluster, summary.after_until, summary.messages) == (1, 1, 1)


def marks_file(tmp_path, database="openwhisk", marks=None):
    path = tmp_path / "marks.json"
    path.write_text(json.dumps({"format": "cache-invalidator marks 1", "database": database,
                                "marked_at": "2026-05-01T10:00:00Z",
                                "marks": {"whisks": "d2hpc2tz", "subjects": "c3ViamVjdHM="} if marks is None else marks}))
    return str(path)


def test_replay_from_a_mark_reads_each_container_from_its_mark(kafka_broker, topic, app_settings, tmp_path):
    calls = []
    source = fake_source({"whisks": [[delete_envelope("guest|gone", 1_714_564_800.5)]], "subjects": []}, calls)
    code, out, err = run(["replay", "--container", "all", "--from-mark", marks_file(tmp_path)], app_settings,
                         page_source=source)
    assert code == 0, err
    assert calls[0]["since"] == {"whisks": "d2hpc2tz", "subjects": "c3ViamVjdHM="}
    assert keys(read_topic(kafka_broker.bootstrap, topic)) == ["guest/gone"]


@pytest.mark.parametrize("contents, reason", [
    ("not json", "not JSON"),
    ('{"marks": {}}', "not a file `python -m cache_invalidator mark` wrote"),
], ids=["not JSON", "another file"])
def test_replay_from_a_file_that_holds_no_marks_says_so(app_settings, tmp_path, contents, reason):
    path = tmp_path / "marks.json"
    path.write_text(contents)
    code, _, err = run(["replay", "--container", "all", "--from-mark", str(path)], app_settings)
    assert (code, reason in err) == (2, True), err


def test_replay_from_marks_of_another_database_or_without_a_container_says_which(app_settings, tmp_path):
    code, _, err = run(["replay", "--container", "all", "--from-mark", marks_file(tmp_path, "other")], app_settings)
    assert code == 2 and "marks of database 'other', not of COSMOSDB_NAME='openwhisk'" in err
    code, _, err = run(["replay", "--container", "all", "--from-mark", marks_file(tmp_path, marks={"whisks": "x"})],
                       app_settings)
    assert code == 2 and "no mark for 'subjects'" in err


def test_replay_takes_since_or_a_mark_not_both(app_settings, tmp_path):
    assert run(["replay", "--container", "all", "--since", "2024-05-01", "--from-mark", marks_file(tmp_path)],
               app_settings)[0] == 2
    assert run(["replay", "--container", "all"], app_settings)[0] == 2


def test_mark_prints_each_containers_mark_for_replay(app_settings):
    seen = []

    def marker(env, trigger, *, timeout):
        seen.append((trigger.whisks_container, trigger.subjects_container))
        return {"whisks": "d2hpc2tz", "subjects": "c3ViamVjdHM="}

    code, out, err = run(["mark"], app_settings, marker=marker)
    document = json.loads(out)
    assert (code, seen, document["format"], document["database"], document["marks"]) == (
        0, [("whisks", "subjects")], "cache-invalidator marks 1", "openwhisk",
        {"whisks": "d2hpc2tz", "subjects": "c3ViamVjdHM="})


# -- what the Functions host loads, and --help --------------------------------------------------


def test_function_app_loads_nothing_of_the_cli():
    code = (
        "import sys, function_app\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'tqdm' or m.startswith("
        "('azure.cosmos', 'azure.identity', 'cache_invalidator.cli')))\n"
        "print(loaded)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "COSMOSDB", "CLUSTER_ID"))}
    env.update(BASE_SETTINGS)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("command", [[], ["check"], ["replay"]])
def test_every_command_has_help(command):
    proc = subprocess.run([sys.executable, "-m", "cache_invalidator", *command, "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: python -m cache_invalidator")


def test_no_command_is_a_usage_error():
    code, out, err = run([], {})
    assert code == 2 and "usage:" in err
