"""A wrong region entry fails `terraform plan` at variable validation, naming the region.

Each plan here runs the real validation blocks of infra/variables.tf in Terraform 1.5.7;
what fails must fail before anything is created, with a message that says which region
and what to change.
"""

import re

from conftest import SHARED, sasl_region

from cache_invalidator.producer import built_in_sasl_mechanisms
from cache_invalidator.settings import MANAGED_PRODUCER_PROPERTIES, SASL_MECHANISM_FEATURES


def plan_failure(terraform, regions, **shared):
    code, diagnostics, _ = terraform.plan({**SHARED, **shared, "regions": regions})
    assert code != 0, "the plan was expected to fail"
    return diagnostics


def test_two_regions_with_the_same_cluster_id_fail_naming_both(terraform):
    output = plan_failure(terraform, {"westeurope": sasl_region("westeurope"),
                                      "eastus": sasl_region("eastus", cluster_id="westeurope")})
    assert "Invalid value for variable" in output
    assert 'regions eastus and westeurope share cluster_id "westeurope"' in output


def test_only_the_regions_sharing_a_cluster_id_are_named(terraform):
    output = plan_failure(terraform, {"westeurope": sasl_region("westeurope"),
                                      "eastus": sasl_region("shared"), "westus2": sasl_region("shared")})
    assert 'regions eastus and westus2 share cluster_id "shared"' in output
    assert "westeurope share" not in output and "and westeurope" not in output


def test_cluster_id_not_shaped_like_a_lease_prefix_fails_naming_the_region(terraform):
    output = plan_failure(terraform, {"westeurope": sasl_region("westeurope"),
                                      "eastus": sasl_region("eastus", cluster_id="east/us")})
    assert 'cluster_id must look like a lease prefix' in output
    assert 'region eastus ("east/us")' in output


def test_a_start_time_without_a_zone_fails_naming_the_region(terraform):
    output = plan_failure(terraform, {"westeurope": sasl_region("westeurope"),
                                      "eastus": sasl_region("eastus", cosmosdb_start_from_time="2026-05-01T10:00:00")})
    assert "cosmosdb_start_from_time must be an RFC 3339 time with a zone" in output
    assert 'region eastus ("2026-05-01T10:00:00")' in output


def test_a_start_time_beside_start_from_beginning_fails_naming_the_region(terraform):
    output = plan_failure(terraform, {"westeurope": sasl_region("westeurope", cosmosdb_start_from_beginning=True,
                                                               cosmosdb_start_from_time="2026-05-01T10:00:00Z")})
    assert "region westeurope: cosmosdb_start_from_time and cosmosdb_start_from_beginning = true exclude each other" \
        in output


def test_a_start_time_beside_the_shared_start_from_beginning_fails_naming_the_region(terraform):
    output = plan_failure(terraform, {"westeurope": sasl_region("westeurope"),
                                      "eastus": sasl_region("eastus", cosmosdb_start_from_time="2026-05-01T10:00:00Z")},
                          cosmosdb_start_from_beginning=True)
    assert "region eastus: cosmosdb_start_from_time and cosmosdb_start_from_beginning = true exclude each other" \
        in output
    assert "region westeurope:" not in output


def test_an_unknown_change_feed_mode_fails_naming_the_region(terraform):
    output = plan_failure(terraform, {"westeurope": sasl_region("westeurope", cosmosdb_change_feed_mode="Incremental")})
    assert "cosmosdb_change_feed_mode must be LatestVersion or AllVersionsAndDeletes" in output
    assert 'region westeurope ("Incremental")' in output


def test_all_versions_and_deletes_beside_a_start_time_fails_naming_the_region_and_both_settings(terraform):
    output = plan_failure(terraform, {"westeurope": sasl_region("westeurope"), "eastus": sasl_region(
        "eastus", cosmosdb_change_feed_mode="AllVersionsAndDeletes", cosmosdb_start_from_time="2026-05-01T10:00:00Z")})
    assert "cosmosdb_change_feed_mode = AllVersionsAndDeletes starts from now or from its leases only" in output
    assert "COSMOSDB_START_FROM_TIME" in output and "region eastus" in output and "region westeurope" not in output


def test_all_versions_and_deletes_beside_the_shared_start_from_the_beginning_fails_naming_the_cluster(terraform):
    output = plan_failure(terraform, {"westeurope": sasl_region("westeurope",
                                                               cosmosdb_change_feed_mode="AllVersionsAndDeletes")},
                          cosmosdb_start_from_beginning=True)
    assert ("app_settings of cluster westeurope: COSMOSDB_CHANGE_FEED_MODE=AllVersionsAndDeletes starts from now or "
            "from its leases only") in output


def test_sasl_username_without_its_password_secret_fails_naming_the_region(terraform):
    output = plan_failure(terraform, {"westeurope": sasl_region("westeurope"),
                                      "eastus": sasl_region("eastus", kafka_sasl_password_secret_name=None)})
    assert "the Kafka settings of region eastus are incomplete" in output
    assert "kafka_sasl_username and kafka_sasl_password_secret_name go together" in output


def test_scram_without_credentials_fails_naming_the_region(terraform):
    region = sasl_region("eastus", kafka_sasl_username=None, kafka_sasl_password_secret_name=None)
    output = plan_failure(terraform, {"eastus": region})
    assert "the Kafka settings of region eastus are incomplete" in output
    assert "kafka_sasl_mechanism PLAIN or SCRAM needs kafka_sasl_username" in output


def test_a_sasl_protocol_without_a_mechanism_fails_naming_the_region(terraform):
    output = plan_failure(terraform, {"westeurope": sasl_region("westeurope"),
                                      "eastus": sasl_region("eastus", kafka_sasl_mechanism=None)})
    assert "the Kafka settings of region eastus are incomplete: kafka_security_protocol SASL_SSL or SASL_PLAINTEXT " \
           "needs a kafka_sasl_mechanism" in output


def test_the_guard_accepts_exactly_the_mechanisms_the_packaged_kafka_client_is_built_with(terraform):
    # One region per mechanism librdkafka knows; the guard's message names each one it refuses.
    regions = {mechanism.lower(): sasl_region(mechanism.lower(), kafka_sasl_mechanism=mechanism)
               for mechanism in SASL_MECHANISM_FEATURES}
    output = plan_failure(terraform, regions)
    [line] = [line for line in output.splitlines() if "kafka_sasl_mechanism must be" in line]
    refused = set(re.findall(r'region [a-z0-9-]+ \("([A-Z0-9-]+)"\)', line))
    assert refused == set(SASL_MECHANISM_FEATURES) - set(built_in_sasl_mechanisms()) == {"GSSAPI"}, line


def test_the_guard_refuses_exactly_the_producer_properties_the_app_manages(terraform):
    region = {"cluster_id": "eastus", "kafka_hosts": "10.0.0.4:9092",
              "kafka_producer_properties": {name: "x" for name in [*MANAGED_PRODUCER_PROPERTIES, "linger.ms"]}}
    output = plan_failure(terraform, {"eastus": region})
    [line] = [line for line in output.splitlines() if "the app manages these producer properties itself" in line]
    assert f"region eastus ({', '.join(sorted(MANAGED_PRODUCER_PROPERTIES))})" in line, line


def test_sasl_mechanism_without_a_sasl_protocol_fails_naming_the_region(terraform):
    region = sasl_region("eastus", kafka_security_protocol="SSL")
    output = plan_failure(terraform, {"eastus": region})
    assert "the Kafka settings of region eastus are incomplete" in output
    assert "needs kafka_security_protocol SASL_SSL or SASL_PLAINTEXT" in output


def test_kafka_hosts_without_a_port_fail_naming_the_region(terraform):
    output = plan_failure(terraform, {"eastus": {"cluster_id": "eastus", "kafka_hosts": "kafka-0.eastus:9093,kafka-1.eastus"}})
    assert 'kafka_hosts must be host:port[,host:port...]; wrong in region eastus ("kafka-0.eastus:9093,kafka-1.eastus")' in output


def test_a_producer_property_the_app_manages_fails_naming_the_region(terraform):
    region = {"cluster_id": "eastus", "kafka_hosts": "10.0.0.4:9092", "kafka_producer_properties": {"acks": "1"}}
    output = plan_failure(terraform, {"eastus": region})
    assert "the app manages these producer properties itself" in output
    assert "region eastus (acks)" in output


def test_a_secret_producer_property_in_plain_settings_fails_naming_the_region(terraform):
    region = {"cluster_id": "eastus", "kafka_hosts": "10.0.0.4:9092",
              "kafka_producer_properties": {"sasl.oauthbearer.client.secret": "s3cr3t"}}
    output = plan_failure(terraform, {"eastus": region})
    assert "belong in kafka_producer_secret_names" in output
    assert "region eastus (sasl.oauthbearer.client.secret)" in output
    # The value itself is not repeated in the message.
    assert "s3cr3t" not in output


def test_key_vault_secrets_without_a_key_vault_fail_naming_the_region(terraform):
    output = plan_failure(terraform, {"eastus": sasl_region("eastus")}, key_vault_id=None)
    assert "region eastus names Key Vault secrets (kafka-password-eastus) but key_vault_id is not set" in output


def test_two_regions_given_the_same_storage_account_name_fail(terraform):
    output = plan_failure(terraform, {"westeurope": sasl_region("westeurope", storage_account_name="owcachefunctions"),
                                      "eastus": sasl_region("eastus", storage_account_name="owcachefunctions")})
    assert "Two regions got the same Function App or storage account name" in output
    assert '"storage_account":"owcachefunctions"' in output


def test_a_maximum_instance_count_below_flex_consumptions_lowest_for_python_fails_naming_the_region(terraform):
    output = plan_failure(terraform, {"westeurope": sasl_region("westeurope"),
                                      "eastus": sasl_region("eastus", maximum_instance_count=39)})
    assert "maximum_instance_count must be a whole number from 40" in output
    assert "region eastus (39)" in output and "westeurope (" not in output
