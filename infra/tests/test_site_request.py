"""The request each region's Function App sends Azure, read from the plan's JSON.

The site is an azapi_resource of type Microsoft.Web/sites@2023-12-01: its body is the
request, and a provider adds nothing to it (azurerm_function_app_flex_consumption added
an exact AzureWebJobsStorage with an empty key, which no plan showed). So these tests
read exactly the settings and configuration each site gets. Values Azure assigns at
apply (the identity's client id, ids, endpoints) are None in the planned body.
"""

import json
import re

from cache_invalidator.settings import Settings, TriggerSettings
from conftest import REPO_ROOT, SITE, SUBSCRIPTION
from test_regions import REGIONS, documented_optional, known

STORAGE = 'module.region["{}"].azurerm_storage_account.this'
SCM_POLICY = 'module.region["{}"].azapi_resource.scm_basic_publishing'


def settings_py_reads():
    """Every setting name cache_invalidator/settings.py reads (KAFKA_PRODUCER_<NAME> as its prefix)."""
    source = (REPO_ROOT / "cache_invalidator" / "settings.py").read_text()
    names = set(re.findall(r'"((?:COSMOSDB|KAFKA|CLUSTER|INVALIDAT)[A-Za-z0-9_]*)"', source))
    return {"KAFKA_PRODUCER_<NAME>" if name == "KAFKA_PRODUCER_" else name for name in names}


def test_no_sites_request_carries_an_exact_azure_web_jobs_storage_setting(regions_plan):
    for region in REGIONS:
        settings = regions_plan.site_settings(region)
        assert [name for name in settings if name.lower() == "azurewebjobsstorage"] == [], region
        assert [name for name, value in settings.items() if value and "AccountKey=" in value] == [], region
        assert "connectionStrings" not in regions_plan.request(SITE.format(region))["properties"]["siteConfig"]


def test_the_host_reaches_its_storage_with_the_identity(regions_plan):
    for region in REGIONS:
        settings = regions_plan.site_settings(region)
        assert settings["AzureWebJobsStorage__accountName"] == regions_plan.after(STORAGE.format(region))["name"]
        assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
        # The identity's client id, which Azure assigns when it creates the identity.
        assert "AzureWebJobsStorage__clientId" in settings and settings["AzureWebJobsStorage__clientId"] is None


def test_the_deployment_package_is_read_with_the_user_assigned_identity(regions_plan):
    for region in REGIONS:
        storage = regions_plan.request(SITE.format(region))["properties"]["functionAppConfig"]["deployment"]["storage"]
        assert storage["type"] == "blobContainer"
        assert storage["authentication"]["type"] == "UserAssignedIdentity"
        assert "userAssignedIdentityResourceId" in storage["authentication"]
        assert "storageAccountConnectionStringName" not in storage["authentication"]
    references = regions_plan.config(["region"], "azapi_resource.function_app")["expressions"]["body"]["references"]
    assert {"azurerm_user_assigned_identity.this.id", "azurerm_storage_account.this.primary_blob_endpoint",
            "azurerm_storage_container.deployment.name"} <= set(references)


def test_each_sites_request_carries_the_regions_settings_and_nothing_else(regions_plan):
    for region in REGIONS:
        assert regions_plan.site_settings(region) == {**regions_plan.app_settings(region),
                                                      "APPLICATIONINSIGHTS_CONNECTION_STRING": None}


def test_every_setting_settings_py_reads_is_in_each_sites_request_or_documented_optional(regions_plan):
    optional = documented_optional()
    for region in REGIONS:
        missing = settings_py_reads() - set(regions_plan.site_settings(region)) - optional
        assert missing == set(), f"region {region}'s request lacks {sorted(missing)}"


def test_each_sites_request_settings_parse_in_the_app(regions_plan):
    for region in REGIONS:
        settings = known(regions_plan.site_settings(region))
        trigger = TriggerSettings.from_env(settings)
        Settings.from_env(settings)
        # westus2 reads the all-versions-and-deletes feed (conftest.REGIONS), under prefixes of its own.
        suffix = "-avad" if region == "westus2" else ""
        assert trigger.lease_prefix(trigger.whisks_container) == f"{region}-whisks{suffix}"


def _validation_config(directory, requests):
    """A configuration of azapi_resources with these bodies, fully known, so that azapi checks them at plan.

    azapi v1.15.0 checks a body against its embedded API schema at plan only when every
    value in it is known: the real plan, whose bodies hold ids and client ids assigned at
    apply, is not checked. Here each planned body, with a placeholder string for each of
    those values, is planned again on its own.
    """
    directory.mkdir()
    blocks = ['terraform {\n  required_providers {\n    azapi = { source = "Azure/azapi" }\n  }\n}\n\n'
              f'provider "azapi" {{\n  subscription_id            = "{SUBSCRIPTION}"\n  skip_provider_registration = true\n}}\n']
    for index, (resource_type, name, parent_id, location, body) in enumerate(requests):
        (directory / f"body-{index}.json").write_text(json.dumps(body))
        location_line = f'  location  = "{location}"\n' if location else ""
        blocks.append(f'\nresource "azapi_resource" "request_{index}" {{\n  type      = "{resource_type}"\n'
                      f'  name      = "{name}"\n  parent_id = "{parent_id}"\n{location_line}'
                      f'  body      = jsondecode(file("${{path.module}}/body-{index}.json"))\n}}\n')
    (directory / "main.tf").write_text("".join(blocks))
    return directory


def _placeholders(value):
    """The body with each value known only after apply (None) replaced by a string."""
    if value is None:
        return "known-after-apply"
    if isinstance(value, dict):
        return {key: _placeholders(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_placeholders(inner) for inner in value]
    return value


def _planned_requests(plan):
    requests = []
    for region in REGIONS:
        site = plan.after(SITE.format(region))
        requests.append((site["type"], site["name"], site["parent_id"], site["location"],
                         _placeholders(plan.request(SITE.format(region)))))
        site_id = f"{site['parent_id']}/providers/Microsoft.Web/sites/{site['name']}"
        policy = plan.after(SCM_POLICY.format(region))
        requests.append((policy["type"], policy["name"], site_id, None, _placeholders(plan.request(SCM_POLICY.format(region)))))
    return requests


def test_each_regions_planned_requests_pass_the_apis_schema(terraform, regions_plan, tmp_path):
    directory = _validation_config(tmp_path / "valid", _planned_requests(regions_plan))
    code, diagnostics, plan = terraform.plan({}, directory=directory)
    assert code == 0, diagnostics
    assert len(plan.addresses("azapi_resource")) == 2 * len(REGIONS)


def test_the_apis_schema_refuses_a_request_with_a_property_the_api_lacks(terraform, regions_plan, tmp_path):
    requests = _planned_requests(regions_plan)
    resource_type, name, parent_id, location, body = requests[0]
    # azurerm's argument name where the API's is minTlsVersion.
    body["properties"]["siteConfig"]["minimumTlsVersion"] = "1.2"
    directory = _validation_config(tmp_path / "invalid", [(resource_type, name, parent_id, location, body)])
    code, diagnostics, _ = terraform.plan({}, directory=directory)
    assert code != 0, "the plan was expected to fail"
    assert "`properties.siteConfig.minimumTlsVersion` is not expected here" in diagnostics
    assert "minTlsVersion" in diagnostics


def test_each_site_keeps_azapis_schema_check_on(regions_plan):
    for region in REGIONS:
        site = regions_plan.after(SITE.format(region))
        assert (site["type"], site["schema_validation_enabled"]) == ("Microsoft.Web/sites@2023-12-01", True)
