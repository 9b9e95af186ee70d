"""The function metadata the worker hands to the host (app.get_functions())."""

import pytest

from cache_invalidator.settings import SettingsError
from tests.app_loading import BASE_SETTINGS, change_feed_functions, functions_by_name, load_function_app


def triggers(monkeypatch, **extra):
    module = load_function_app(monkeypatch, {**BASE_SETTINGS, **extra})
    return {name: f.get_trigger().get_dict_repr() for name, f in change_feed_functions(module).items()}


def test_two_cosmos_db_triggers_on_whisks_and_subjects(monkeypatch):
    found = {name: (t["type"], t["containerName"]) for name, t in triggers(monkeypatch).items()}
    assert found == {
        "invalidate_whisks": ("cosmosDBTrigger", "whisks"),
        "invalidate_subjects": ("cosmosDBTrigger", "subjects"),
    }


def test_both_triggers_use_the_connection_setting_and_database(monkeypatch):
    found = {(t["connection"], t["databaseName"]) for t in triggers(monkeypatch).values()}
    assert found == {("COSMOSDB", "openwhisk")}


def test_renamed_containers_appear_literally(monkeypatch):
    found = triggers(monkeypatch, COSMOSDB_WHISKS_CONTAINER="w2", COSMOSDB_SUBJECTS_CONTAINER="s2")
    assert {t["containerName"] for t in found.values()} == {"w2", "s2"}


def test_both_share_one_lease_container(monkeypatch):
    assert {t["leaseContainerName"] for t in triggers(monkeypatch).values()} == {"cache-invalidator-lease"}


def test_lease_prefixes_are_the_container_names_without_cluster_id(monkeypatch):
    found = {name: t["leaseContainerPrefix"] for name, t in triggers(monkeypatch).items()}
    assert found == {"invalidate_whisks": "whisks", "invalidate_subjects": "subjects"}


def test_lease_prefixes_carry_the_cluster_id(monkeypatch):
    found = {name: t["leaseContainerPrefix"] for name, t in triggers(monkeypatch, CLUSTER_ID="westeurope").items()}
    assert found == {"invalidate_whisks": "westeurope-whisks", "invalidate_subjects": "westeurope-subjects"}


def test_a_local_run_reads_under_prefixes_no_region_uses(monkeypatch):
    found = {name: t["leaseContainerPrefix"]
             for name, t in triggers(monkeypatch, CLUSTER_ID="westeurope", LOCAL_RUN_NAME="alice@laptop").items()}
    assert found == {"invalidate_whisks": "local.alice@laptop.whisks",
                     "invalidate_subjects": "local.alice@laptop.subjects"}


def test_retry_policy_retries_forever_with_exponential_backoff(monkeypatch):
    module = load_function_app(monkeypatch, BASE_SETTINGS)
    policies = [f.get_settings_dict("retry_policy") for f in change_feed_functions(module).values()]
    expected = {
        "setting_name": "retry_policy",
        "strategy": "exponential_backoff",
        "max_retry_count": "-1",
        "minimum_interval": "00:00:01",
        "maximum_interval": "00:01:00",
    }
    assert policies == [expected, expected]


def test_lease_container_is_created_with_a_connection_string(monkeypatch):
    assert {t["createLeaseContainerIfNotExists"] for t in triggers(monkeypatch).values()} == {True}


def test_lease_container_is_not_created_with_a_managed_identity(monkeypatch):
    module = load_function_app(monkeypatch, {"COSMOSDB_NAME": "openwhisk", "COSMOSDB__accountEndpoint": "https://acct.documents.azure.com:443/"})
    found = {f.get_trigger().get_dict_repr()["createLeaseContainerIfNotExists"] for f in change_feed_functions(module).values()}
    assert found == {False}


def test_lease_container_creation_can_be_forced_with_a_managed_identity(monkeypatch):
    module = load_function_app(monkeypatch, {
        "COSMOSDB_NAME": "openwhisk",
        "COSMOSDB__accountEndpoint": "https://acct.documents.azure.com:443/",
        "COSMOSDB_CREATE_LEASE_CONTAINER": "true",
    })
    found = {f.get_trigger().get_dict_repr()["createLeaseContainerIfNotExists"] for f in change_feed_functions(module).values()}
    assert found == {True}


def test_feed_defaults_favour_freshness(monkeypatch):
    t = triggers(monkeypatch)["invalidate_whisks"]
    assert (t["feedPollDelay"], t["maxItemsPerInvocation"], t["startFromBeginning"]) == (1000, 1000, False)
    assert "preferredLocations" not in t
    assert "startFromTime" not in t


def test_start_from_time_reaches_both_triggers_in_utc(monkeypatch):
    found = triggers(monkeypatch, COSMOSDB_START_FROM_TIME="2026-05-01T12:00:00+02:00")
    assert {name: t["startFromTime"] for name, t in found.items()} == {
        "invalidate_whisks": "2026-05-01T10:00:00Z", "invalidate_subjects": "2026-05-01T10:00:00Z",
    }


def test_optional_feed_settings_reach_the_metadata(monkeypatch):
    t = triggers(
        monkeypatch,
        COSMOSDB_START_FROM_BEGINNING="true",
        COSMOSDB_PREFERRED_LOCATIONS="West Europe,North Europe",
        COSMOSDB_MAX_ITEMS_PER_INVOCATION="250",
        COSMOSDB_FEED_POLL_DELAY_MS="500",
    )["invalidate_subjects"]
    assert (t["startFromBeginning"], t["preferredLocations"], t["maxItemsPerInvocation"], t["feedPollDelay"]) == (
        True, "West Europe,North Europe", 250, 500,
    )


def test_indexing_without_database_names_the_setting(monkeypatch):
    with pytest.raises(SettingsError, match="COSMOSDB_NAME"):
        load_function_app(monkeypatch, {"COSMOSDB": BASE_SETTINGS["COSMOSDB"]})


def test_functions_take_the_change_batch_only(monkeypatch):
    module = load_function_app(monkeypatch, BASE_SETTINGS)
    assert [[b["name"] for b in f.get_bindings_dict()["bindings"]] for f in change_feed_functions(module).values()] == [["changes"], ["changes"]]


def watch_trigger(monkeypatch, **extra):
    module = load_function_app(monkeypatch, {**BASE_SETTINGS, **extra})
    return functions_by_name(module)["watch_leases"].get_trigger().get_dict_repr()


def test_the_lease_watch_runs_on_a_timer_every_minute(monkeypatch):
    t = watch_trigger(monkeypatch)
    assert (t["type"], t["name"], t["schedule"], t["runOnStartup"]) == ("timerTrigger", "timer", "0 */1 * * * *", False)


def test_the_lease_watch_schedule_is_a_setting(monkeypatch):
    assert watch_trigger(monkeypatch, LEASE_WATCH_SCHEDULE="30 */5 * * * *")["schedule"] == "30 */5 * * * *"


def test_a_bad_lease_watch_schedule_names_the_setting(monkeypatch):
    with pytest.raises(SettingsError, match="LEASE_WATCH_SCHEDULE"):
        load_function_app(monkeypatch, {**BASE_SETTINGS, "LEASE_WATCH_SCHEDULE": "every minute"})


def test_the_lease_watch_has_no_retry_policy(monkeypatch):
    """A missed run is replaced by the next one; retrying a read of leases only repeats it."""
    module = load_function_app(monkeypatch, BASE_SETTINGS)
    assert functions_by_name(module)["watch_leases"].get_settings_dict("retry_policy") is None


def test_loading_the_app_does_not_import_azure_cosmos(monkeypatch):
    """Only the lease watch reads Cosmos DB itself, and it imports the SDK when it first runs."""
    import subprocess
    import sys

    from tests.app_loading import ROOT

    env = {"PATH": "/usr/bin:/bin", **BASE_SETTINGS}
    probe = subprocess.run([sys.executable, "-c", "import sys, function_app; "
                            "print(sorted(m for m in sys.modules if m.startswith(('azure.cosmos', 'azure.identity', "
                            "'cache_invalidator.lease_watch'))))"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert (probe.returncode, probe.stdout.strip()) == (0, "[]"), probe.stderr


def test_latest_version_mode_writes_no_change_feed_mode_into_the_binding(monkeypatch):
    """The default mode's metadata is what it always was: an extension older than 4.16 does not know the property."""
    assert ["changeFeedMode" in t for t in triggers(monkeypatch, COSMOSDB_CHANGE_FEED_MODE="LatestVersion").values()] \
        == [False, False]


def test_all_versions_and_deletes_reaches_both_triggers(monkeypatch):
    found = triggers(monkeypatch, COSMOSDB_CHANGE_FEED_MODE="AllVersionsAndDeletes")
    assert {name: t["changeFeedMode"] for name, t in found.items()} == {
        "invalidate_whisks": "AllVersionsAndDeletes", "invalidate_subjects": "AllVersionsAndDeletes"}


def test_all_versions_and_deletes_reads_under_lease_prefixes_of_its_own(monkeypatch):
    found = triggers(monkeypatch, COSMOSDB_CHANGE_FEED_MODE="AllVersionsAndDeletes", CLUSTER_ID="westeurope")
    assert {name: t["leaseContainerPrefix"] for name, t in found.items()} == {
        "invalidate_whisks": "westeurope-whisks-avad", "invalidate_subjects": "westeurope-subjects-avad"}


def test_indexing_refuses_all_versions_and_deletes_with_a_start_from_the_beginning(monkeypatch):
    with pytest.raises(SettingsError, match="COSMOSDB_START_FROM_BEGINNING.*COSMOSDB_CHANGE_FEED_MODE"):
        load_function_app(monkeypatch, {**BASE_SETTINGS, "COSMOSDB_CHANGE_FEED_MODE": "AllVersionsAndDeletes",
                                        "COSMOSDB_START_FROM_BEGINNING": "true"})
