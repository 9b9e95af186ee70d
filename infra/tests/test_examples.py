"""The examples plan as they are: their regions pass every guard and get one Function App each."""

import json
import re

from conftest import ACTION_GROUP_ID, COSMOSDB_ACCOUNT_ID, GROUP, INFRA, SUBSCRIPTION, WORKSPACE_ID


def function_apps(plan):
    return [address for address in plan.addresses("azapi_resource") if address.endswith(".azapi_resource.function_app")]


def test_two_regions_example_plans_a_function_app_per_region(two_regions_plan):
    assert function_apps(two_regions_plan) == [
        f'module.cache_invalidator.module.region["{region}"].azapi_resource.function_app'
        for region in ("eastus", "westeurope")]


def test_two_regions_example_plans_one_workbook_with_a_group_per_region(two_regions_plan):
    workbooks = two_regions_plan.addresses("azurerm_application_insights_workbook")
    assert workbooks == ["module.cache_invalidator.azurerm_application_insights_workbook.operations"]
    data = json.loads(two_regions_plan.after(workbooks[0])["data_json"])
    groups = [item["content"]["title"] for item in data["items"] if item["type"] == 12]
    assert groups == ["Region eastus (owcache-eastus)", "Region westeurope (owcache-westeurope)"]


def test_two_regions_example_outputs_the_alert_queries_and_the_workbook_docs_deploy_names(two_regions_plan):
    """docs/DEPLOY.md has the operator read `terraform output alert_queries` in a folder made from this example."""
    deploy = (INFRA.parent / "docs" / "DEPLOY.md").read_text()
    outputs = two_regions_plan.document["output_changes"]
    for name in sorted(set(re.findall(r"terraform output (?:-json )?(\w+)", deploy))):
        assert name in outputs, f"docs/DEPLOY.md reads the output {name}, which infra/examples/two-regions lacks"
    assert set(outputs["alert_queries"]["after"]) == {"eastus", "westeurope"}
    assert "workbook" in outputs


def test_private_kafka_example_plans_vnet_integrated_apps_and_no_lease_container(terraform):
    regions = {region: {"kafka_hosts": "10.0.0.4:9092",
                        "subnet_id": f"{GROUP}/providers/Microsoft.Network/virtualNetworks/{region}/subnets/functions"}
               for region in ("westeurope", "eastus", "westus2")}
    code, diagnostics, plan = terraform.plan(
        {"subscription_id": SUBSCRIPTION, "resource_group_name": "openwhisk", "cosmosdb_account_id": COSMOSDB_ACCOUNT_ID,
         "action_group_id": ACTION_GROUP_ID, "log_analytics_workspace_id": WORKSPACE_ID, "regions": regions},
        directory=INFRA / "examples" / "private-kafka")
    assert code == 0, diagnostics
    assert len(function_apps(plan)) == 3
    for address in function_apps(plan):
        assert plan.request(address)["properties"]["virtualNetworkSubnetId"].endswith("/subnets/functions")
    assert plan.addresses("azurerm_cosmosdb_sql_container") == []
    assert plan.addresses("azurerm_log_analytics_workspace") == []
