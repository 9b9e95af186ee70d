"""What the worker runtime tells the host when it indexes function_app.py: the function metadata and indexing errors.

The expectations are tests/test_wiring.py's, read here from the runtime's
FunctionMetadataResponse (raw bindings, retry options) instead of from
app.get_functions().
"""

import json
from datetime import timedelta

from tests.app_loading import APP_SETTING_PREFIXES, BASE_SETTINGS
from tests.kafka_reading import read_topic
from devhost.worker_host import worker_environment

CONNECTION_STRING = BASE_SETTINGS["COSMOSDB"]


def all_triggers(host):
    """Each function's trigger binding, as the raw binding the host reads."""
    return {name: json.loads(function.raw_bindings[0]) for name, function in host.functions.items()}


def triggers(host):
    """The Cosmos DB triggers' bindings."""
    return {name: t for name, t in all_triggers(host).items() if t["type"] == "cosmosDBTrigger"}


def test_metadata_names_both_functions_with_their_change_feed_bindings(start_worker):
    host = start_worker(BASE_SETTINGS)
    common = {"direction": "IN", "type": "cosmosDBTrigger", "name": "changes", "connection": "COSMOSDB",
              "databaseName": "openwhisk", "leaseContainerName": "cache-invalidator-lease",
              "createLeaseContainerIfNotExists": True, "feedPollDelay": 1000, "maxItemsPerInvocation": 1000,
              "startFromBeginning": False}
    assert triggers(host) == {
        "invalidate_whisks": {**common, "containerName": "whisks", "leaseContainerPrefix": "whisks"},
        "invalidate_subjects": {**common, "containerName": "subjects", "leaseContainerPrefix": "subjects"},
    }


def test_metadata_carries_the_cluster_id_and_the_optional_feed_settings(start_worker):
    host = start_worker({**BASE_SETTINGS, "CLUSTER_ID": "westeurope", "COSMOSDB_START_FROM_BEGINNING": "true",
                         "COSMOSDB_PREFERRED_LOCATIONS": "West Europe,North Europe",
                         "COSMOSDB_MAX_ITEMS_PER_INVOCATION": "250", "COSMOSDB_FEED_POLL_DELAY_MS": "500"})
    found = {name: (t["leaseContainerPrefix"], t["startFromBeginning"], t["preferredLocations"],
                    t["maxItemsPerInvocation"], t["feedPollDelay"]) for name, t in triggers(host).items()}
    assert found == {
        "invalidate_whisks": ("westeurope-whisks", True, "West Europe,North Europe", 250, 500),
        "invalidate_subjects": ("westeurope-subjects", True, "West Europe,North Europe", 250, 500),
    }


def test_metadata_carries_the_start_time_in_utc(start_worker):
    host = start_worker({**BASE_SETTINGS, "COSMOSDB_START_FROM_TIME": "2026-05-01T12:00:00+02:00"})
    assert {name: t["startFromTime"] for name, t in triggers(host).items()} == {
        "invalidate_whisks": "2026-05-01T10:00:00Z", "invalidate_subjects": "2026-05-01T10:00:00Z",
    }


def test_metadata_carries_all_versions_and_deletes_and_its_own_lease_prefixes(start_worker):
    host = start_worker({**BASE_SETTINGS, "CLUSTER_ID": "westeurope", "COSMOSDB_CHANGE_FEED_MODE": "AllVersionsAndDeletes"})
    assert {name: (t["changeFeedMode"], t["leaseContainerPrefix"]) for name, t in triggers(host).items()} == {
        "invalidate_whisks": ("AllVersionsAndDeletes", "westeurope-whisks-avad"),
        "invalidate_subjects": ("AllVersionsAndDeletes", "westeurope-subjects-avad"),
    }


def test_the_worker_indexes_with_the_azure_functions_the_package_ships_for_3_13(start_worker):
    """requirements.txt pins azure-functions for Python 3.13 to devhost/requirements.txt's version."""
    import re
    from pathlib import Path

    import azure.functions

    root = Path(__file__).resolve().parents[2]
    pins = {re.search(r"^azure-functions==(\S+?)(;|$)", (root / path).read_text(), re.M).group(1)
            for path in ("requirements.txt", "devhost/requirements.txt")}
    assert pins == {azure.functions.__version__}


def test_init_refuses_all_versions_and_deletes_with_a_start_time_naming_both_settings(start_worker):
    host = start_worker({**BASE_SETTINGS, "COSMOSDB_CHANGE_FEED_MODE": "AllVersionsAndDeletes",
                         "COSMOSDB_START_FROM_TIME": "2026-05-01T10:00:00Z"}, init=False)
    result = host.init().result
    assert (host.protos.StatusResult.Status.Name(result.status),
            "COSMOSDB_START_FROM_TIME" in result.exception.message,
            "COSMOSDB_CHANGE_FEED_MODE" in result.exception.message) == ("Failure", True, True)


def test_metadata_does_not_create_the_lease_container_with_a_managed_identity(start_worker):
    host = start_worker({"COSMOSDB_NAME": "openwhisk",
                         "COSMOSDB__accountEndpoint": "https://acct.documents.azure.com:443/"})
    assert {t["createLeaseContainerIfNotExists"] for t in triggers(host).values()} == {False}


def test_retry_options_retry_forever_with_exponential_backoff(start_worker):
    host = start_worker(BASE_SETTINGS)
    retry = host.protos.RpcRetryOptions
    found = {name: (retry.RetryStrategy.Name(f.retry_options.retry_strategy), f.retry_options.max_retry_count,
                    f.retry_options.minimum_interval.ToTimedelta(), f.retry_options.maximum_interval.ToTimedelta())
             for name, f in host.functions.items() if name in triggers(host)}
    expected = ("exponential_backoff", -1, timedelta(seconds=1), timedelta(minutes=1))
    assert found == {"invalidate_whisks": expected, "invalidate_subjects": expected}


def test_the_three_functions_load_as_worker_indexed_python_functions(start_worker):
    host = start_worker(BASE_SETTINGS)
    found = {name: (f.language, f.properties.get("worker_indexed"), f.script_file.endswith("function_app.py"))
             for name, f in host.functions.items()}
    assert found == {"invalidate_whisks": ("python", "True", True), "invalidate_subjects": ("python", "True", True),
                     "watch_leases": ("python", "True", True)}


def test_metadata_names_the_lease_watch_with_its_timer_binding(start_worker):
    host = start_worker({**BASE_SETTINGS, "LEASE_WATCH_SCHEDULE": "15 */2 * * * *"})
    assert all_triggers(host)["watch_leases"] == {"direction": "IN", "type": "timerTrigger", "name": "timer",
                                                  "schedule": "15 */2 * * * *", "runOnStartup": False}
    assert host.functions["watch_leases"].HasField("retry_options") is False


def test_init_reports_a_missing_database_setting_by_name(start_worker):
    host = start_worker({"COSMOSDB": CONNECTION_STRING}, init=False)
    result = host.init().result
    assert (host.protos.StatusResult.Status.Name(result.status), "COSMOSDB_NAME" in result.exception.message) == (
        "Failure", True), result.exception.message


def test_after_a_failed_init_the_metadata_response_says_success_with_no_functions(start_worker):
    """Why the host (and this driver) must read the init response: the metadata hides the error."""
    host = start_worker({"COSMOSDB": CONNECTION_STRING}, init=False)
    host.init()
    metadata = host.functions_metadata()
    assert (host.protos.StatusResult.Status.Name(metadata.result.status),
            len(metadata.function_metadata_results)) == ("Success", 0)


def test_a_placeholder_worker_specialised_by_an_environment_reload_indexes_the_app_with_its_settings(
        start_worker, app_settings, kafka_broker, topic):
    """Linux Consumption and Flex start a worker before they know the app; its settings arrive in the reload."""
    host = start_worker({}, init=False)
    host.init()  # no app settings yet: indexing fails, as for an app-less placeholder
    env = worker_environment({**app_settings, "PYTHON_ENABLE_DEBUG_LOGGING": "1"}, APP_SETTING_PREFIXES)
    reloaded = host.reload_environment(env)
    host.load_all()
    status, message = host.invoke("invalidate_whisks", json.dumps([{"id": "guest|hello"}]))
    assert host.protos.StatusResult.Status.Name(reloaded.result.status) == "Success", reloaded.result.exception.message
    assert (status, message) == ("Success", "")
    assert read_topic(kafka_broker.bootstrap, topic) == [
        ("guest/hello", '{"instanceId":"cache-invalidator","key":{"mainId":"guest/hello"}}')]
