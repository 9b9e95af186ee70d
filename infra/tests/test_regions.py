"""What `terraform plan` of infra/ creates for each region, read from the plan's JSON.

The plan (conftest.py's regions_plan) has two regions with SASL_SSL Kafka and a third
whose Kafka is private (VNet integration). Values Azure assigns at apply (identities'
ids, endpoints) are unknown in a plan; the tests check that they come from the right
resource through the plan's configuration references.
"""

import json
import re

from cache_invalidator.settings import Settings, TriggerSettings
from conftest import ACTION_GROUP_ID, COSMOSDB_ACCOUNT_ID, KEY_VAULT_ID, REGIONS as PLANNED, REPO_ROOT, SHARED, SITE, SUBNET_ID, sasl_region

REGIONS = ("westeurope", "eastus", "westus2")
KEY_VAULT_REFERENCE = re.compile(r"^@Microsoft\.KeyVault\(VaultName=([a-zA-Z0-9-]{3,24});SecretName=([0-9a-zA-Z-]{1,127})\)$")


def settings_the_app_reads():
    """Every setting in README.md's settings tables, which tests below hold to settings.py."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("\n## Settings\n", 1)[1].split("\n### From the original service", 1)[0]
    names = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Za-z][A-Za-z0-9_<>]*)`", line.split("|")[1]))
    return names


def documented_optional():
    """The settings docs/DEPLOY.md lists as set only when a region configures them."""
    deploy = (REPO_ROOT / "docs" / "DEPLOY.md").read_text()
    section = deploy.split("\n### Settings a region gets only when it names them\n", 1)[1].split("\n#", 1)[0]
    return {name for line in section.splitlines() if line.startswith("| `")
            for name in re.findall(r"`([A-Za-z][A-Za-z0-9_<>]*)`", line.split("|")[1])}


def documented_never_set():
    """The settings docs/DEPLOY.md's table of optional settings says no region ever gets."""
    deploy = (REPO_ROOT / "docs" / "DEPLOY.md").read_text()
    section = deploy.split("\n### Settings a region gets only when it names them\n", 1)[1].split("\n#", 1)[0]
    return {name for line in section.splitlines() if line.startswith("| `") and line.split("|")[2].strip().startswith("never")
            for name in re.findall(r"`([A-Za-z][A-Za-z0-9_<>]*)`", line.split("|")[1])}


def known(settings):
    """App settings with placeholders for the values Azure assigns at apply."""
    return {name: "00000000-0000-0000-0000-0000000000ff" if value is None else value for name, value in settings.items()}


def test_the_settings_tables_name_every_setting_settings_py_reads():
    source = (REPO_ROOT / "cache_invalidator" / "settings.py").read_text()
    read = set(re.findall(r'"((?:COSMOSDB|KAFKA|CLUSTER|INVALIDAT|LEASE_WATCH|OPENWHISK)[A-Za-z0-9_]*)"', source))
    read = {name for name in read if name != "KAFKA_PRODUCER_"}
    assert read - settings_the_app_reads() == set()


def test_the_apps_settings_are_the_ones_the_plan_shows(regions_plan):
    app = regions_plan.config(["region"], "azapi_resource.function_app")
    assert "local.app_settings" in app["expressions"]["body"]["references"]
    output = next(o for name, o in regions_plan.document["configuration"]["root_module"]["module_calls"]["region"]
                  ["module"]["outputs"].items() if name == "app_settings")
    assert output["expression"]["references"] == ["local.app_settings"]


def test_every_setting_the_app_reads_is_set_in_every_region_or_documented_optional(regions_plan):
    optional = documented_optional()
    for region in REGIONS:
        settings = regions_plan.app_settings(region)
        missing = {name for name in settings_the_app_reads() if name not in settings and name not in optional}
        assert missing == set(), f"region {region} lacks {sorted(missing)}"


def test_settings_documented_as_never_set_are_in_no_region(regions_plan):
    never = documented_never_set()
    assert {"COSMOSDB", "LOCAL_RUN_NAME"} <= never
    for region in REGIONS:
        assert never & set(regions_plan.app_settings(region)) == set(), region


def test_optional_settings_are_set_where_a_region_names_them(regions_plan):
    settings = regions_plan.app_settings("westeurope")
    assert settings["COSMOSDB_PREFERRED_LOCATIONS"] == "West Europe,North Europe"
    assert settings["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert settings["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert settings["KAFKA_SASL_USERNAME"] == "cache-invalidator"
    assert settings["KAFKA_PRODUCER_LINGER_MS"] == "5"
    assert settings["COSMOSDB_START_FROM_TIME"] == "2026-05-01T09:55:00Z"
    private = regions_plan.app_settings("westus2")
    assert not {name for name in private if name.startswith(("KAFKA_SASL", "KAFKA_SECURITY", "KAFKA_PRODUCER", "COSMOSDB_PREFERRED",
                                                              "COSMOSDB_START_FROM_TIME"))}


def test_settings_differ_between_regions_only_where_the_region_says(regions_plan):
    first, second = regions_plan.app_settings("westeurope"), regions_plan.app_settings("eastus")
    differing = {name for name in set(first) | set(second) if first.get(name) != second.get(name)}
    # Besides what the entries differ in, only each region's own storage account (its
    # identity's client id differs too, but is known only after apply).
    assert differing == {"CLUSTER_ID", "KAFKA_HOSTS", "KAFKA_SASL_PASSWORD", "COSMOSDB_PREFERRED_LOCATIONS",
                         "COSMOSDB_START_FROM_TIME", "KAFKA_PRODUCER_LINGER_MS", "KAFKA_PRODUCER_SSL_KEY_PASSWORD", "AzureWebJobsStorage__accountName"}
    assert (first["CLUSTER_ID"], second["CLUSTER_ID"]) == ("westeurope", "eastus")


def test_each_regions_settings_parse_in_the_app_with_distinct_lease_prefixes(regions_plan):
    prefixes = []
    for region in REGIONS:
        settings = known(regions_plan.app_settings(region))
        trigger = TriggerSettings.from_env(settings)
        Settings.from_env(settings)
        assert trigger.create_lease_container is False
        assert trigger.lease_container == "cache-invalidator-lease"
        prefixes += [trigger.lease_prefix(trigger.whisks_container), trigger.lease_prefix(trigger.subjects_container)]
    assert len(set(prefixes)) == len(prefixes) == 6
    assert "westeurope-whisks" in prefixes and "eastus-subjects" in prefixes


def test_the_lease_prefixes_output_matches_the_apps_own(regions_plan):
    outputs = regions_plan.document["planned_values"]["outputs"]["lease_prefixes"]["value"]
    for region in REGIONS:
        trigger = TriggerSettings.from_env(known(regions_plan.app_settings(region)))
        assert outputs[region] == {"whisks": trigger.lease_prefix("whisks"), "subjects": trigger.lease_prefix("subjects")}


def test_a_regions_change_feed_mode_reaches_its_app_and_its_lease_prefixes(regions_plan):
    modes = {region: regions_plan.app_settings(region)["COSMOSDB_CHANGE_FEED_MODE"] for region in REGIONS}
    outputs = regions_plan.document["planned_values"]["outputs"]["lease_prefixes"]["value"]
    assert modes == {"westeurope": "LatestVersion", "eastus": "LatestVersion", "westus2": "AllVersionsAndDeletes"}
    assert (outputs["westus2"], outputs["eastus"]["whisks"]) == (
        {"whisks": "westus2-whisks-avad", "subjects": "westus2-subjects-avad"}, "eastus-whisks")


def test_kafka_password_is_a_key_vault_reference_to_the_regions_secret(regions_plan):
    for region in ("westeurope", "eastus"):
        reference = regions_plan.app_settings(region)["KAFKA_SASL_PASSWORD"]
        match = KEY_VAULT_REFERENCE.match(reference)
        assert match, reference
        assert match.groups() == (KEY_VAULT_ID.rsplit("/", 1)[1], f"kafka-password-{region}")
    producer_secret = regions_plan.app_settings("westeurope")["KAFKA_PRODUCER_SSL_KEY_PASSWORD"]
    assert KEY_VAULT_REFERENCE.match(producer_secret).group(2) == "kafka-key-password-westeurope"


def test_the_app_may_read_exactly_its_own_secrets(regions_plan):
    assignments = regions_plan.addresses("azurerm_role_assignment")
    for region, secrets in {"westeurope": {"kafka-password-westeurope", "kafka-key-password-westeurope"},
                            "eastus": {"kafka-password-eastus"}, "westus2": set()}.items():
        mine = [a for a in assignments if a.startswith(f'module.region["{region}"].azurerm_role_assignment.key_vault_secrets_user')]
        scopes = {regions_plan.after(a)["scope"] for a in mine}
        assert scopes == {f"{KEY_VAULT_ID}/secrets/{secret}" for secret in secrets}
        for address in mine:
            assert regions_plan.after(address)["role_definition_name"] == "Key Vault Secrets User"
    config = regions_plan.config(["region"], "azurerm_role_assignment.key_vault_secrets_user")
    # The references resolve with the app's own identity (see docs/DEPLOY.md).
    assert "azapi_resource.function_app.identity" in config["expressions"]["principal_id"]["references"]


def test_connections_are_identity_based(regions_plan):
    for region in REGIONS:
        settings = regions_plan.app_settings(region)
        assert settings["COSMOSDB__accountEndpoint"] == "https://openwhisk-cosmos.documents.azure.com:443/"
        assert settings["COSMOSDB__credential"] == "managedidentity"
        assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
        # Assigned at apply: the identity's client id.
        assert "COSMOSDB__clientId" in settings and "AzureWebJobsStorage__clientId" in settings
        assert not {"COSMOSDB", "AzureWebJobsStorage", "APPINSIGHTS_INSTRUMENTATIONKEY"} & set(settings)
        authentication = regions_plan.request(SITE.format(region))["properties"]["functionAppConfig"]["deployment"]["storage"]["authentication"]
        assert authentication["type"] == "UserAssignedIdentity"
        assert "storageAccountConnectionStringName" not in authentication
        storage = regions_plan.after(f'module.region["{region}"].azurerm_storage_account.this')
        assert storage["shared_access_key_enabled"] is False
        insights = regions_plan.after(f'module.region["{region}"].azurerm_application_insights.this')
        assert insights["local_authentication_enabled"] is False
    body_refs = regions_plan.config(["region"], "azapi_resource.function_app")["expressions"]["body"]["references"]
    assert "azurerm_user_assigned_identity.this.id" in body_refs


def test_each_app_has_the_user_assigned_identity_and_its_own(regions_plan):
    for region in REGIONS:
        identity = regions_plan.after(SITE.format(region))["identity"]
        assert [block["type"] for block in identity] == ["SystemAssigned, UserAssigned"]
    config = regions_plan.config(["region"], "azapi_resource.function_app")
    assert "azurerm_user_assigned_identity.this.id" in config["expressions"]["identity"][0]["identity_ids"]["references"]


def test_https_only_and_tls_1_2_at_least(regions_plan):
    for region in REGIONS:
        properties = regions_plan.request(SITE.format(region))["properties"]
        assert properties["httpsOnly"] is True
        site = properties["siteConfig"]
        assert (site["minTlsVersion"], site["scmMinTlsVersion"]) == ("1.2", "1.2")
        policy = f'module.region["{region}"].azapi_resource.scm_basic_publishing'
        assert (regions_plan.after(policy)["name"], regions_plan.request(policy)) == ("scm", {"properties": {"allow": False}})
        storage = regions_plan.after(f'module.region["{region}"].azurerm_storage_account.this')
        assert storage["https_traffic_only_enabled"] is True and storage["min_tls_version"] == "TLS1_2"


def test_runtime_is_the_python_scripts_package_builds_for(regions_plan):
    package_script = (REPO_ROOT / "scripts" / "package").read_text()
    packaged = re.search(r'^DEFAULT_PYTHON_VERSION = "([0-9.]+)"', package_script, re.M).group(1)
    for region in REGIONS:
        runtime = regions_plan.request(SITE.format(region))["properties"]["functionAppConfig"]["runtime"]
        assert runtime == {"name": "python", "version": packaged}


def test_warm_instances_are_kept_for_the_apps_own_function_names(regions_plan, monkeypatch):
    import importlib.util

    for name, value in known(regions_plan.app_settings("eastus")).items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("function_app_for_infra", REPO_ROOT / "function_app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # The change-feed triggers; the lease watch's timer runs on demand (docs/DEPLOY.md, "The lease watch").
    functions = {f"function:{f.get_function_name()}" for f in module.app.get_functions()
                 if f.get_trigger().get_dict_repr()["type"] == "cosmosDBTrigger"}
    assert len(functions) == 2
    for region in REGIONS:
        scale = regions_plan.request(SITE.format(region))["properties"]["functionAppConfig"]["scaleAndConcurrency"]
        assert {entry["name"] for entry in scale["alwaysReady"]} == functions
        assert {entry["instanceCount"] for entry in scale["alwaysReady"]} == {1}


def test_vnet_integration_only_where_a_region_names_a_subnet(regions_plan):
    private = regions_plan.request(SITE.format("westus2"))["properties"]
    assert private["virtualNetworkSubnetId"] == SUBNET_ID
    assert private["siteConfig"]["vnetRouteAllEnabled"] is True
    public = regions_plan.request(SITE.format("westeurope"))["properties"]
    assert "virtualNetworkSubnetId" not in public
    assert public["siteConfig"]["vnetRouteAllEnabled"] is False


def test_the_lease_container_is_created_once_with_partition_key_id(regions_plan):
    assert regions_plan.addresses("azurerm_cosmosdb_sql_container") == ["azurerm_cosmosdb_sql_container.lease[0]"]
    lease = regions_plan.after("azurerm_cosmosdb_sql_container.lease[0]")
    assert (lease["name"], lease["partition_key_paths"], lease["database_name"]) == ("cache-invalidator-lease", ["/id"], "openwhisk")


def test_adding_a_region_leaves_the_other_regions_as_they_were(terraform, regions_plan):
    """But for LEASE_WATCH_REGIONS, which names every region's cluster id (the lease watch expects the new one),
    and the workbook, which gains the new region's group and nothing else."""
    code, output, two = terraform.plan({**SHARED, "regions": {key: PLANNED[key] for key in ("westeurope", "eastus")}})
    assert code == 0, output
    assert {a for a in regions_plan.changes if 'region["westus2"]' not in a} == set(two.changes)
    workbook = "azurerm_application_insights_workbook.operations"
    for address in set(two.changes) - {workbook}:
        assert without_watch_regions(two.after(address)) == without_watch_regions(regions_plan.after(address)), address
    before, after = (json.loads(plan.after(workbook)["data_json"])["items"] for plan in (two, regions_plan))
    assert [item for item in after if item["name"] != "region westus2"] == before
    assert {k: v for k, v in two.after(workbook).items() if k != "data_json"} == {
        k: v for k, v in regions_plan.after(workbook).items() if k != "data_json"}
    for region in ("westeurope", "eastus"):
        assert (two.app_settings(region)["LEASE_WATCH_REGIONS"], regions_plan.app_settings(region)["LEASE_WATCH_REGIONS"]) == (
            "eastus,westeurope", "eastus,westeurope,westus2")


def without_watch_regions(value):
    """A planned value with the LEASE_WATCH_REGIONS app setting left out, wherever it sits."""
    if isinstance(value, dict):
        return {k: without_watch_regions(v) for k, v in value.items() if k != "LEASE_WATCH_REGIONS"}
    if isinstance(value, list):
        return [without_watch_regions(v) for v in value
                if not (isinstance(v, dict) and v.get("name") == "LEASE_WATCH_REGIONS")]
    return value


def test_an_existing_lease_container_is_left_alone(terraform):
    code, output, plan = terraform.plan({**SHARED, "create_lease_container": False, "regions": {"eastus": sasl_region("eastus")}})
    assert code == 0, output
    assert plan.addresses("azurerm_cosmosdb_sql_container") == []
    assert plan.app_settings("eastus")["COSMOSDB_CREATE_LEASE_CONTAINER"] == "false"


def test_alerts_watch_each_regions_application_insights_and_notify_the_action_group(regions_plan):
    for region in REGIONS:
        for alert, aggregation, threshold in (("failed_batches", "Count", 0), ("lag", "Maximum", 60)):
            rule = regions_plan.after(f'module.region["{region}"].azurerm_monitor_scheduled_query_rules_alert_v2.alert["{alert}"]')
            criteria = rule["criteria"][0]
            assert (criteria["time_aggregation_method"], criteria["threshold"]) == (aggregation, threshold)
            assert rule["action"][0]["action_groups"] == [ACTION_GROUP_ID]
    config = regions_plan.config(["region"], "azurerm_monitor_scheduled_query_rules_alert_v2.alert")
    assert "azurerm_application_insights.this.id" in config["expressions"]["scopes"]["references"]

