"""The Cosmos DB data-plane grants the plan makes: each region's identity, the operators, and the way from the old grant.

The grants are tests/data_plane_access.py's REGION_IDENTITY and OPERATOR, the same the emulator tests judge the
app's, the CLI's and Microsoft's processor's requests against. The plans here name containers other than the
defaults, so that a scope can only be right by following the region's settings.
"""

import re

import pytest

from cache_invalidator.settings import TriggerSettings
from conftest import COSMOSDB_ACCOUNT_ID, KEY_VAULT_ID, REPO_ROOT, SHARED, sasl_region
from tests.data_plane_access import OPERATOR, REGION_IDENTITY, ROLES

CONTAINERS = {"whisks": "ow-whisks", "subjects": "ow-subjects", "lease": "ow-leases"}
TWO_REGIONS = {**SHARED, "cosmosdb_database_name": "openwhisk-prod", "cosmosdb_containers": CONTAINERS,
               "regions": {"westeurope": sasl_region("westeurope"), "eastus": sasl_region("eastus")}}
ASSIGNMENT = "azurerm_cosmosdb_sql_role_assignment"
ROLE_ID = re.compile(r"^" + re.escape(COSMOSDB_ACCOUNT_ID) + r"/sqlRoleDefinitions/([0-9a-f-]{36})$")


@pytest.fixture(scope="module")
def two_regions_plan(terraform):
    code, output, plan = terraform.plan(TWO_REGIONS)
    assert code == 0, output
    return plan


def grants(plan, address_prefix):
    """(role name, scope relative to the account) of every Cosmos DB role assignment whose address starts so."""
    found = set()
    for address in plan.addresses(ASSIGNMENT):
        if address.startswith(address_prefix):
            after = plan.after(address)
            role = ROLES[ROLE_ID.match(after["role_definition_id"]).group(1)][0]
            found.add((role, after["scope"].removeprefix(COSMOSDB_ACCOUNT_ID)))
    return found


def expected(parts, database, names):
    return {(ROLES[role][0], f"/dbs/{database}/colls/{names[part]}") for part, role in parts.items()}


def test_each_regions_identity_reads_the_two_watched_containers_and_keeps_its_leases_and_nothing_more(
        two_regions_plan):
    for region in ("westeurope", "eastus"):
        # The names the region's own settings give, as the app parses them.
        trigger = TriggerSettings.from_env({name: value or "placeholder" for name, value
                                            in two_regions_plan.app_settings(region).items()})
        names = {"whisks": trigger.whisks_container, "subjects": trigger.subjects_container,
                 "lease": trigger.lease_container}
        assert names == CONTAINERS
        assert grants(two_regions_plan, f'module.region["{region}"].') == expected(
            REGION_IDENTITY, trigger.database, names)
    for address in ("azurerm_cosmosdb_sql_role_assignment.data_reader",
                    "azurerm_cosmosdb_sql_role_assignment.lease_data_contributor"):
        config = two_regions_plan.config(["region"], address)
        assert config["expressions"]["principal_id"]["references"][0] == "azurerm_user_assigned_identity.this.principal_id"


def test_no_cosmos_db_grant_is_made_on_a_database_or_the_account(two_regions_plan):
    scopes = [two_regions_plan.after(address)["scope"] for address in two_regions_plan.addresses(ASSIGNMENT)]
    assert len(scopes) == 6
    assert all(re.fullmatch(re.escape(COSMOSDB_ACCOUNT_ID) + r"/dbs/[^/]+/colls/[^/]+", scope) for scope in scopes), scopes


def test_an_operator_reads_the_three_containers_and_nothing_more(terraform, two_regions_plan):
    operators = {"alice": "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb", "oncall": "cccccccc-3333-4444-5555-dddddddddddd"}
    code, output, plan = terraform.plan({**TWO_REGIONS, "operator_principal_ids": operators})
    assert code == 0, output
    assert grants(two_regions_plan, "azurerm_cosmosdb_sql_role_assignment.operator_data_reader") == set()
    for name, principal in operators.items():
        mine = [a for a in plan.addresses(ASSIGNMENT) if plan.after(a).get("principal_id") == principal]
        assert {(ROLES[ROLE_ID.match(plan.after(a)["role_definition_id"]).group(1)][0],
                 plan.after(a)["scope"].removeprefix(COSMOSDB_ACCOUNT_ID)) for a in mine} == expected(
            OPERATOR, "openwhisk-prod", CONTAINERS), name


def test_an_operator_id_that_is_not_a_guid_is_refused_by_name(terraform):
    code, output, _ = terraform.plan({**TWO_REGIONS, "operator_principal_ids": {"alice": "alice@example.com"}})
    assert code != 0 and "operator_principal_ids" in output and "alice@example.com" in output


OLD_GRANT = 'module.region["eastus"].azurerm_cosmosdb_sql_role_assignment.data_contributor'
NEW_GRANT = 'module.region["eastus"].azurerm_cosmosdb_sql_role_assignment.lease_data_contributor'


def deployed_before():
    """A state holding what the grants replace: eastus's identity's Data Contributor on the whole database."""
    attributes = {
        "id": f"{COSMOSDB_ACCOUNT_ID}/sqlRoleAssignments/11111111-aaaa-bbbb-cccc-222222222222",
        "name": "11111111-aaaa-bbbb-cccc-222222222222", "resource_group_name": "openwhisk",
        "account_name": "openwhisk-cosmos", "principal_id": "33333333-dddd-eeee-ffff-444444444444",
        "role_definition_id": f"{COSMOSDB_ACCOUNT_ID}/sqlRoleDefinitions/00000000-0000-0000-0000-000000000002",
        "scope": f"{COSMOSDB_ACCOUNT_ID}/dbs/openwhisk-prod", "timeouts": None}
    return {"version": 4, "terraform_version": "1.5.7", "serial": 1, "lineage": "5e5e5e5e-0000-4000-8000-000000000001",
            "outputs": {}, "resources": [{
                "module": 'module.region["eastus"]', "mode": "managed", "type": ASSIGNMENT, "name": "data_contributor",
                "provider": 'provider["registry.terraform.io/hashicorp/azurerm"]',
                "instances": [{"schema_version": 0, "attributes": attributes, "sensitive_attributes": []}]}]}


def apply_order(graph_dot):
    """What each node of `terraform graph` waits for, directly or not (an edge `a -> b`: b first).

    The command prints the graph transitively reduced, which keeps what waits for what.
    """
    edges = {}
    for a, b in re.findall(r'^\s*"(.+?)" -> "(.+?)"\s*$', graph_dot, re.M):
        edges.setdefault(a.replace('\\"', '"'), set()).add(b.replace('\\"', '"'))
    waits = {}
    for node in edges:
        seen, todo = set(), [node]
        while todo:
            for before in edges.get(todo.pop(), ()):
                if before not in seen:
                    seen.add(before)
                    todo.append(before)
        waits[node] = seen
    return waits


def test_the_database_wide_grant_is_deleted_only_after_the_container_grants_are_created(terraform):
    code, output, plan = terraform.plan(TWO_REGIONS, state=deployed_before())
    assert code == 0, output
    # The old grant is the lease grant's former address, replaced create-before-destroy: no gap, and no
    # second Data Contributor left on the database.
    change = plan.changes[NEW_GRANT]
    assert (change.get("previous_address"), change["change"]["actions"]) == (OLD_GRANT, ["create", "delete"])
    assert change["change"]["before"]["scope"] == f"{COSMOSDB_ACCOUNT_ID}/dbs/openwhisk-prod"
    assert OLD_GRANT not in plan.changes
    waits = apply_order(terraform.run(plan.directory, "graph", f"-plan={plan.file}").stdout)
    region = '[root] module.region["eastus"].azurerm_cosmosdb_sql_role_assignment'
    [deleted] = [node for node in waits if node.startswith(f"{region}.lease_data_contributor (destroy deposed ")]
    # Readers first, then the lease grant, then the database-wide grant goes: by the grants' own order, not
    # by way of the Function App, which an existing deployment may leave unchanged.
    assert f"{region}.lease_data_contributor" in waits[deleted]
    assert {f'{region}.data_reader["whisks"]', f'{region}.data_reader["subjects"]'} <= waits[
        f"{region}.lease_data_contributor"]


WHO = {"azurerm_user_assigned_identity.this.principal_id": "a region's user-assigned identity",
       "azapi_resource.function_app.identity": "a region's app (system-assigned identity)"}


def documented_grants():
    """(who, role) of each row of docs/DEPLOY.md's "Who may do what" table that infra/ makes."""
    deploy = (REPO_ROOT / "docs" / "DEPLOY.md").read_text()
    section = deploy.split("\n## Who may do what\n", 1)[1].split("\n#", 1)[0]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| ") and not line.startswith(("| who ", "| ---"))]
    return {(who, re.sub(r" \(`[0-9a-f-]{36}`\)$", "", role)) for who, role, _, _ in rows
            if "not made by `infra/`" not in who}


def planned_grants(plan):
    """(who, role) of every role assignment in the plan, who told by where its principal comes from."""
    found = set()
    for resource_type in ("azurerm_role_assignment", ASSIGNMENT):
        for address in plan.addresses(resource_type):
            after = plan.after(address)
            role = after.get("role_definition_name") or ROLES[ROLE_ID.match(after["role_definition_id"]).group(1)][0]
            if address.startswith("module.region["):
                name = re.sub(r"\[[^\]]*\]$", "", address.split("].", 1)[1])
                references = plan.config(["region"], name)["expressions"]["principal_id"]["references"]
                who = next(WHO[reference] for reference in references if reference in WHO)
            else:
                assert address.startswith(f"{ASSIGNMENT}.operator_data_reader["), address
                who = "each entry of `operator_principal_ids`"
            found.add((who, role))
    return found


def test_deploys_table_lists_every_grant_the_plan_makes_and_no_other(terraform):
    operators = {"oncall": "cccccccc-3333-4444-5555-dddddddddddd"}
    code, output, plan = terraform.plan({**TWO_REGIONS, "key_vault_id": KEY_VAULT_ID, "operator_principal_ids": operators})
    assert code == 0, output
    assert planned_grants(plan) == documented_grants()
