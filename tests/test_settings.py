"""Settings are parsed once, with errors that name the setting and reprs that hide secrets."""

import pytest

from cache_invalidator.settings import (
    InvalidSetting,
    MissingSetting,
    Settings,
    TriggerSettings,
    WatchSettings,
    watch_schedule,
)

KAFKA = {"KAFKA_HOSTS": "127.0.0.1:9092"}
COSMOS = {"COSMOSDB_NAME": "openwhisk", "COSMOSDB": "AccountEndpoint=https://a/;AccountKey=c2VjcmV0LWNvc21vcy1rZXk=;"}


def error_for(env, parse=Settings.from_env):
    with pytest.raises(InvalidSetting) as info:
        parse(env)
    return info.value


def test_kafka_hosts_is_required():
    with pytest.raises(MissingSetting, match="KAFKA_HOSTS"):
        Settings.from_env({})


def test_malformed_kafka_hosts_is_named():
    assert error_for({"KAFKA_HOSTS": "localhost"}).setting == "KAFKA_HOSTS"


def test_defaults_match_the_original_service():
    settings = Settings.from_env(KAFKA)
    assert (settings.kafka.topic, settings.instance_id, settings.cluster_id, settings.invalidate_auth_keys) == (
        "cacheInvalidation", "cache-invalidator", None, False,
    )


def test_blank_cluster_id_means_none():
    assert Settings.from_env({**KAFKA, "CLUSTER_ID": "  "}).cluster_id is None


def test_invalidate_auth_keys_accepts_true():
    assert Settings.from_env({**KAFKA, "INVALIDATE_AUTH_KEYS": "true"}).invalidate_auth_keys is True


def test_invalidate_auth_keys_rejects_other_words():
    assert error_for({**KAFKA, "INVALIDATE_AUTH_KEYS": "maybe"}).setting == "INVALIDATE_AUTH_KEYS"


def test_delivery_timeout_must_be_a_number():
    assert error_for({**KAFKA, "KAFKA_DELIVERY_TIMEOUT_SECONDS": "soon"}).setting == "KAFKA_DELIVERY_TIMEOUT_SECONDS"


def test_delivery_timeout_stays_below_function_timeout():
    assert error_for({**KAFKA, "KAFKA_DELIVERY_TIMEOUT_SECONDS": "600"}).setting == "KAFKA_DELIVERY_TIMEOUT_SECONDS"


def test_delivery_timeout_becomes_the_message_timeout():
    config = Settings.from_env({**KAFKA, "KAFKA_DELIVERY_TIMEOUT_SECONDS": "12.5"}).kafka.producer_config()
    assert config["message.timeout.ms"] == 12500


def test_acks_all_and_idempotence_are_always_on():
    config = Settings.from_env({**KAFKA, "KAFKA_PRODUCER_LINGER_MS": "5"}).kafka.producer_config()
    assert (config["acks"], config["enable.idempotence"], config["linger.ms"]) == ("all", True, "5")


def test_producer_properties_cannot_weaken_delivery():
    assert error_for({**KAFKA, "KAFKA_PRODUCER_ACKS": "1"}).setting == "KAFKA_PRODUCER_ACKS"


def test_topic_name_is_validated():
    assert error_for({**KAFKA, "KAFKA_TOPIC": "bad topic"}).setting == "KAFKA_TOPIC"


def test_unknown_security_protocol_is_named():
    assert error_for({**KAFKA, "KAFKA_SECURITY_PROTOCOL": "TLS"}).setting == "KAFKA_SECURITY_PROTOCOL"


def test_sasl_password_without_username_names_the_missing_one():
    with pytest.raises(MissingSetting, match="KAFKA_SASL_USERNAME"):
        Settings.from_env({**KAFKA, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_PASSWORD": "pw"})


def test_sasl_credentials_need_a_sasl_protocol():
    env = {**KAFKA, "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "pw"}
    assert error_for(env).setting == "KAFKA_SECURITY_PROTOCOL"


def test_sasl_settings_reach_the_producer_config():
    env = {**KAFKA, "KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "KAFKA_SASL_MECHANISM": "PLAIN",
           "KAFKA_SASL_USERNAME": "$ConnectionString", "KAFKA_SASL_PASSWORD": "Endpoint=sb://x/;SharedAccessKey=abc",
           "KAFKA_SSL_CA_LOCATION": "/etc/ssl/ca.pem"}
    config = Settings.from_env(env).kafka.producer_config()
    assert {k: config[k] for k in ("security.protocol", "sasl.mechanism", "sasl.username", "sasl.password", "ssl.ca.location")} == {
        "security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", "sasl.username": "$ConnectionString",
        "sasl.password": "Endpoint=sb://x/;SharedAccessKey=abc", "ssl.ca.location": "/etc/ssl/ca.pem",
    }


def test_a_sasl_protocol_without_a_mechanism_is_refused_naming_the_mechanism_and_what_the_client_can_do():
    env = {**KAFKA, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "pw"}
    with pytest.raises(MissingSetting) as info:
        Settings.from_env(env)
    assert info.value.setting == "KAFKA_SASL_MECHANISM"
    assert "one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER" in str(info.value)


def test_an_unknown_sasl_mechanism_is_named():
    env = {**KAFKA, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "KERBEROS"}
    assert error_for(env).setting == "KAFKA_SASL_MECHANISM"


def test_a_sasl_mechanism_needs_a_sasl_protocol():
    assert error_for({**KAFKA, "KAFKA_SASL_MECHANISM": "OAUTHBEARER"}).setting == "KAFKA_SECURITY_PROTOCOL"


def test_plain_and_scram_need_credentials():
    for mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        with pytest.raises(MissingSetting) as info:
            Settings.from_env({**KAFKA, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": mechanism})
        assert info.value.setting == "KAFKA_SASL_USERNAME", mechanism


def test_the_mechanism_asks_the_kafka_client_for_its_feature():
    env = {**KAFKA, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "scram-sha-512",
           "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "pw"}
    config = Settings.from_env(env).kafka.producer_config()
    assert (config["sasl.mechanism"], config["builtin.features"]) == ("SCRAM-SHA-512", "sasl_scram")


def test_builtin_features_is_managed_by_the_app():
    assert error_for({**KAFKA, "KAFKA_PRODUCER_BUILTIN_FEATURES": "zstd"}).setting == "KAFKA_PRODUCER_BUILTIN_FEATURES"


def test_password_never_appears_in_the_settings_repr():
    env = {**KAFKA, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "u",
           "KAFKA_SASL_PASSWORD": "hunter2-pw"}
    assert "hunter2-pw" not in repr(Settings.from_env(env))


def test_secret_producer_properties_are_hidden_in_the_repr():
    env = {**KAFKA, "KAFKA_PRODUCER_SSL_KEY_PASSWORD": "key-pw-123"}
    assert "key-pw-123" not in repr(Settings.from_env(env))


def test_cosmos_key_never_appears_in_trigger_settings_repr():
    assert "c2VjcmV0LWNvc21vcy1rZXk=" not in repr(TriggerSettings.from_env(COSMOS))


def test_database_name_is_required_at_indexing():
    with pytest.raises(MissingSetting, match="COSMOSDB_NAME"):
        TriggerSettings.from_env({"COSMOSDB": COSMOS["COSMOSDB"]})


def test_a_cosmos_connection_is_required_at_indexing():
    with pytest.raises(MissingSetting, match="COSMOSDB__accountEndpoint"):
        TriggerSettings.from_env({"COSMOSDB_NAME": "openwhisk"})


def test_max_items_per_invocation_must_be_positive():
    assert error_for({**COSMOS, "COSMOSDB_MAX_ITEMS_PER_INVOCATION": "0"}, TriggerSettings.from_env).setting == (
        "COSMOSDB_MAX_ITEMS_PER_INVOCATION"
    )


def test_invalid_container_name_is_named():
    assert error_for({**COSMOS, "COSMOSDB_WHISKS_CONTAINER": "a/b"}, TriggerSettings.from_env).setting == (
        "COSMOSDB_WHISKS_CONTAINER"
    )


def test_a_local_run_name_with_a_dash_is_named():
    # `-` would let a part of the name read as a region's `<cluster>-<container>` prefix.
    assert error_for({**COSMOS, "LOCAL_RUN_NAME": "alice-whisks"}, TriggerSettings.from_env).setting == (
        "LOCAL_RUN_NAME"
    )


def test_linger_defaults_to_zero_because_each_batch_waits_for_its_acks():
    assert Settings.from_env(KAFKA).kafka.producer_config()["linger.ms"] == 0


def test_linger_can_be_overridden():
    assert Settings.from_env({**KAFKA, "KAFKA_PRODUCER_LINGER_MS": "20"}).kafka.producer_config()["linger.ms"] == "20"


def test_start_from_time_is_unset_by_default():
    assert TriggerSettings.from_env(COSMOS).start_from_time is None


def test_start_from_time_becomes_utc_with_a_z():
    trigger = TriggerSettings.from_env({**COSMOS, "COSMOSDB_START_FROM_TIME": "2026-05-01T12:00:00+02:00"})
    assert trigger.start_from_time == "2026-05-01T10:00:00Z"


def test_start_from_time_without_a_time_zone_is_refused_naming_the_setting():
    error = error_for({**COSMOS, "COSMOSDB_START_FROM_TIME": "2026-05-01T10:00:00"}, TriggerSettings.from_env)
    assert error.setting == "COSMOSDB_START_FROM_TIME" and "no time zone" in str(error)


def test_start_from_time_that_is_not_a_time_is_refused_naming_the_setting():
    error = error_for({**COSMOS, "COSMOSDB_START_FROM_TIME": "yesterday"}, TriggerSettings.from_env)
    assert error.setting == "COSMOSDB_START_FROM_TIME" and "ISO 8601" in str(error)


def test_start_from_time_and_start_from_beginning_together_are_refused():
    env = {**COSMOS, "COSMOSDB_START_FROM_TIME": "2026-05-01T10:00:00Z", "COSMOSDB_START_FROM_BEGINNING": "true"}
    error = error_for(env, TriggerSettings.from_env)
    assert error.setting == "COSMOSDB_START_FROM_TIME" and "COSMOSDB_START_FROM_BEGINNING" in str(error)
    assert "the Cosmos DB extension refuses" in str(error)


def test_the_lease_watch_defaults_expect_no_region_and_judge_after_two_minutes():
    watch = WatchSettings.from_env({})
    assert (watch.expected_regions, watch.stale_seconds, watch.pending_seconds, watch.timeout_seconds) == (
        (), 120, 300, 20.0)


def test_the_lease_watch_reads_the_expected_regions_as_a_list():
    assert WatchSettings.from_env({"LEASE_WATCH_REGIONS": " westeurope, eastus,,westeurope "}).expected_regions == (
        "westeurope", "eastus")


def test_an_expected_region_with_a_blank_is_named():
    assert error_for({"LEASE_WATCH_REGIONS": "west europe"}, WatchSettings.from_env).setting == "LEASE_WATCH_REGIONS"


def test_the_lease_watch_thresholds_must_be_whole_positive_seconds():
    assert [error_for({name: value}, WatchSettings.from_env).setting
            for name, value in (("LEASE_WATCH_STALE_SECONDS", "0"), ("LEASE_WATCH_PENDING_SECONDS", "soon"))] == [
        "LEASE_WATCH_STALE_SECONDS", "LEASE_WATCH_PENDING_SECONDS"]


def test_the_lease_watch_timeout_stays_below_the_function_timeout():
    assert error_for({"LEASE_WATCH_TIMEOUT_SECONDS": "300"}, WatchSettings.from_env).setting == (
        "LEASE_WATCH_TIMEOUT_SECONDS")


def test_the_lease_watch_schedule_has_six_fields():
    assert (watch_schedule({}), watch_schedule({"LEASE_WATCH_SCHEDULE": " 0  */5 * * * * "})) == (
        "0 */1 * * * *", "0 */5 * * * *")
    assert error_for({"LEASE_WATCH_SCHEDULE": "*/5 * * * *"}, watch_schedule).setting == "LEASE_WATCH_SCHEDULE"


def test_change_feed_mode_defaults_to_latest_version_with_the_usual_prefixes():
    trigger = TriggerSettings.from_env({**COSMOS, "CLUSTER_ID": "eastus"})
    assert (trigger.change_feed_mode, trigger.lease_prefix("whisks")) == ("LatestVersion", "eastus-whisks")


def test_all_versions_and_deletes_has_lease_prefixes_of_its_own():
    trigger = TriggerSettings.from_env({**COSMOS, "CLUSTER_ID": "eastus", "COSMOSDB_CHANGE_FEED_MODE": "AllVersionsAndDeletes"})
    assert (trigger.lease_prefix("whisks"), trigger.lease_prefix("subjects")) == ("eastus-whisks-avad", "eastus-subjects-avad")


def test_all_versions_and_deletes_without_a_cluster_id_suffixes_the_container_name():
    trigger = TriggerSettings.from_env({**COSMOS, "COSMOSDB_CHANGE_FEED_MODE": "allversionsanddeletes"})
    assert (trigger.change_feed_mode, trigger.lease_prefix("whisks")) == ("AllVersionsAndDeletes", "whisks-avad")


def test_an_unknown_change_feed_mode_is_named():
    error = error_for({**COSMOS, "COSMOSDB_CHANGE_FEED_MODE": "Incremental"}, TriggerSettings.from_env)
    assert (error.setting, "LatestVersion or AllVersionsAndDeletes" in str(error)) == ("COSMOSDB_CHANGE_FEED_MODE", True)


@pytest.mark.parametrize("start", [{"COSMOSDB_START_FROM_BEGINNING": "true"},
                                   {"COSMOSDB_START_FROM_TIME": "2026-05-01T10:00:00Z"}], ids=["beginning", "time"])
def test_all_versions_and_deletes_refuses_a_start_option_naming_both_settings(start):
    error = error_for({**COSMOS, **start, "COSMOSDB_CHANGE_FEED_MODE": "AllVersionsAndDeletes"}, TriggerSettings.from_env)
    (name,) = start
    assert (error.setting, f"setting {name}: is set together with COSMOSDB_CHANGE_FEED_MODE=AllVersionsAndDeletes"
            in str(error)) == (name, True)


def test_all_versions_and_deletes_accepts_a_start_from_the_beginning_turned_off():
    trigger = TriggerSettings.from_env({**COSMOS, "COSMOSDB_START_FROM_BEGINNING": "false",
                                        "COSMOSDB_CHANGE_FEED_MODE": "AllVersionsAndDeletes"})
    assert (trigger.start_from_beginning, trigger.start_from_time) == (False, None)


def test_a_local_runs_all_versions_and_deletes_prefixes_are_its_own_too():
    trigger = TriggerSettings.from_env({**COSMOS, "LOCAL_RUN_NAME": "alice", "COSMOSDB_CHANGE_FEED_MODE": "AllVersionsAndDeletes"})
    assert trigger.lease_prefix("whisks") == "local.alice.whisks-avad"
