"""The six alert rules as an operator meets them: each says what to run and where docs/OPERATIONS.md explains it,
and a state applied before the rules became one resource keeps them (moved blocks), read from offline plans."""

import json
import re
import uuid

from conftest import INFRA, REGIONS as PLANNED, REPO_ROOT, SHARED, SUBSCRIPTION

RULES = ("failed_batches", "lag", "stale_region", "behind_region", "watch_silent", "oldest_pending_change")
ALERT = 'module.region["{}"].azurerm_monitor_scheduled_query_rules_alert_v2.alert["{}"]'


def github_anchor(heading):
    """The anchor GitHub gives a Markdown heading: lowercase, punctuation dropped, blanks as '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_rule_names_a_command_to_run_and_the_operations_section_that_explains_it(regions_plan):
    operations = (REPO_ROOT / "docs" / "OPERATIONS.md").read_text()
    anchors = {github_anchor(line.lstrip("#")) for line in operations.splitlines() if line.startswith("#")}
    for region in ("westeurope", "eastus", "westus2"):
        for rule in RULES:
            description = regions_plan.after(ALERT.format(region, rule))["description"]
            assert re.search(r"`(python -m cache_invalidator (check|replay)|az )[^`]*`", description), (rule, description)
            links = re.findall(r"docs/OPERATIONS\.md#([\w-]+)", description)
            assert len(links) == 1 and links[0] in anchors, f"{rule}: {description}"
            assert region in description
            # Azure keeps a rule's description; a screenful is what the alert's e-mail shows.
            assert len(description) <= 600, (rule, len(description))


def test_the_operations_sections_the_rules_name_name_the_rules():
    """Each section under "Alerts" in docs/OPERATIONS.md says which rule it is about, by its name's suffix."""
    operations = (REPO_ROOT / "docs" / "OPERATIONS.md").read_text()
    section = operations.split("\n## Alerts\n", 1)[1].split("\n## ", 1)[0]
    for rule in RULES:
        assert f"`<app>-{rule.replace('_', '-')}`" in section, rule


def state_of_the_separate_rules(plan, region):
    """A state as applied before the rules became one resource: region's five rules at the addresses they had as
    resources of their own, and the Application Insights (with its workspace) they are scoped to.

    Each resource holds its planned values, with the ids Azure would have assigned where the plan knows none.
    """
    planned = {resource["address"]: resource for module in plan.document["planned_values"]["root_module"]["child_modules"]
               for resource in module.get("resources", [])}
    group = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/openwhisk/providers"
    workspace_id = f"{group}/Microsoft.OperationalInsights/workspaces/owcache-{region}-logs"
    insights_id = f"{group}/Microsoft.Insights/components/owcache-{region}-insights"
    module = f'module.region["{region}"]'
    held = [("azurerm_log_analytics_workspace", "this", 0, f"{module}.azurerm_log_analytics_workspace.this[0]",
             {"id": workspace_id}),
            ("azurerm_application_insights", "this", None, f"{module}.azurerm_application_insights.this",
             {"id": insights_id, "workspace_id": workspace_id})]
    for rule in ("failed_batches", "lag", "stale_region", "watch_silent", "oldest_pending_change"):
        address = ALERT.format(region, rule)
        name = planned[address]["values"]["name"]
        held.append(("azurerm_monitor_scheduled_query_rules_alert_v2", rule, None, address,
                     {"id": f"{group}/Microsoft.Insights/scheduledQueryRules/{name}", "scopes": [insights_id]}))
    resources = []
    for kind, name, index, address, assigned in held:
        instance = {"schema_version": planned[address]["schema_version"],
                    "attributes": {**planned[address]["values"], **assigned}, "sensitive_attributes": []}
        if index is not None:
            instance["index_key"] = index
        resources.append({"module": module, "mode": "managed", "type": kind, "name": name,
                          "provider": 'provider["registry.terraform.io/hashicorp/azurerm"]', "instances": [instance]})
    return {"version": 4, "terraform_version": "1.5.7", "serial": 1, "lineage": str(uuid.uuid4()), "outputs": {},
            "resources": resources}


def test_rules_applied_as_resources_of_their_own_move_into_the_map_and_are_not_replaced(terraform, regions_plan):
    state = terraform.workspace / f"{uuid.uuid4().hex[:8]}.tfstate"
    state.write_text(json.dumps(state_of_the_separate_rules(regions_plan, "eastus")))
    code, output, plan = terraform.plan({**SHARED, "regions": PLANNED}, state=state)
    assert code == 0, output
    for rule in ("failed_batches", "lag", "stale_region", "watch_silent", "oldest_pending_change"):
        change = plan.changes[ALERT.format("eastus", rule)]
        assert change.get("previous_address") == f'module.region["eastus"].azurerm_monitor_scheduled_query_rules_alert_v2.{rule}'
        assert "create" not in change["change"]["actions"] and "delete" not in change["change"]["actions"], (
            rule, change["change"]["actions"])
    # The rule that came after the map is new.
    assert plan.changes[ALERT.format("eastus", "behind_region")]["change"]["actions"] == ["create"]
    assert INFRA.joinpath("terraform.tfstate").exists() is False
