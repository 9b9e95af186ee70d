"""The examples plan as they are: their regions pass every guard and get one Function App each."""

from conftest import ACTION_GROUP_ID, COSMOSDB_ACCOUNT_ID, GROUP, INFRA, KEY_VAULT_ID, SUBSCRIPTION, WORKSPACE_ID


def function_apps(plan):
    return [address for address in plan.addresses("azapi_resource") if address.endswith(".azapi_resource.function_app")]


def test_two_regions_example_plans_a_function_app_per_region(terraform):
    code, diagnostics, plan = terraform.plan(
        {"subscription_id": SUBSCRIPTION, "resource_group_name": "openwhisk", "cosmosdb_account_id": COSMOSDB_ACCOUNT_ID,
         "key_vault_id": KEY_VAULT_ID, "action_group_id": ACTION_GROUP_ID},
        directory=INFRA / "examples" / "two-regions")
    assert code == 0, diagnostics
    assert function_apps(plan) == [
        f'module.cache_invalidator.module.region["{region}"].azapi_resource.function_app'
        for region in ("eastus", "westeurope")]


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
