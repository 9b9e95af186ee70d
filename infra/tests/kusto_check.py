"""Every KQL query infra/ defines, as the plan renders it, checked by Microsoft's Kusto.Language and by RE2.

Kusto.Language (npm's @kusto/language-service-next, which scripts/check-infra installs into
.cache/tools and names in KUSTO_LANGUAGE) parses each query and binds every name in it against
the tables of the data source that runs it, run by Node.js through kusto/analyse.js. It does not
check a regular expression's syntax, so each pattern it finds in the query is compiled with RE2
(google-re2), the engine Kusto's regular expressions are.

Which tables a query sees is decided by where it runs: an alert rule by its scope (a reference to
the region's Application Insights gives the `traces` schema, a Log Analytics workspace would give
`AppTraces`), a workbook item by its data source and resource type.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path

import re2

ANALYSER = Path(__file__).resolve().parent / "kusto" / "analyse.js"

# Application Insights' own `traces`, the table a query in an Application Insights scope reads (alert
# rules scoped to the component, workbook items with resourceType microsoft.insights/components).
# Columns and types: Microsoft's "Migrate to workspace-based Application Insights resources", table
# schemas, AppTraces (legacy table: traces).
APPLICATION_INSIGHTS = {
    "traces": "(appId:string, application_Version:string, appName:string, client_Browser:string, client_City:string, "
              "client_CountryOrRegion:string, client_IP:string, client_Model:string, client_OS:string, "
              "client_StateOrProvince:string, client_Type:string, cloud_RoleInstance:string, cloud_RoleName:string, "
              "customDimensions:dynamic, customMeasurements:dynamic, iKey:string, itemCount:int, itemId:string, "
              "itemType:string, message:string, operation_Id:string, operation_Name:string, operation_ParentId:string, "
              "operation_SyntheticSource:string, sdkVersion:string, session_Id:string, severityLevel:int, "
              "timestamp:datetime, user_AccountId:string, user_AuthenticatedId:string, user_Id:string)",
}

# The same records in a Log Analytics workspace, what a query scoped to the workspace reads.
# Microsoft's Azure Monitor Logs table reference, AppTraces.
LOG_ANALYTICS_WORKSPACE = {
    "AppTraces": "(AppRoleInstance:string, AppRoleName:string, AppVersion:string, _BilledSize:real, ClientBrowser:string, "
                 "ClientCity:string, ClientCountryOrRegion:string, ClientIP:string, ClientModel:string, ClientOS:string, "
                 "ClientStateOrProvince:string, ClientType:string, IKey:string, _IsBillable:string, ItemCount:int, "
                 "Measurements:dynamic, Message:string, OperationId:string, OperationName:string, ParentId:string, "
                 "Properties:dynamic, ReferencedItemId:string, ReferencedType:string, ResourceGUID:string, "
                 "_ResourceId:string, SDKVersion:string, SessionId:string, SeverityLevel:int, SourceSystem:string, "
                 "_SubscriptionId:string, SyntheticSource:string, TenantId:string, TimeGenerated:datetime, Type:string, "
                 "UserAccountId:string, UserAuthenticatedId:string, UserId:string)",
}

# Azure Resource Graph's table of alerts (workbook items with resourceType microsoft.resourcegraph/resources).
# Microsoft publishes no column list for it; these are the columns every Resource Graph table has, as
# Microsoft's own Alerts workbook template and the Resource Graph query examples read them. The query
# here reads type, name and properties only.
RESOURCE_GRAPH = {
    "alertsmanagementresources": "(id:string, name:string, type:string, tenantId:string, kind:string, location:string, "
                                 "resourceGroup:string, subscriptionId:string, managedBy:string, sku:dynamic, "
                                 "plan:dynamic, properties:dynamic, tags:dynamic, identity:dynamic, zones:dynamic, "
                                 "extendedLocation:dynamic)",
}

DATABASES = {"application_insights": APPLICATION_INSIGHTS, "log_analytics_workspace": LOG_ANALYTICS_WORKSPACE,
             "resource_graph": RESOURCE_GRAPH}

# The resource an alert rule's scope references, by Terraform resource type.
SCOPE_DATABASES = {"azurerm_application_insights": "application_insights",
                   "azurerm_log_analytics_workspace": "log_analytics_workspace"}
# A workbook item's data source: (queryType, resourceType).
WORKBOOK_DATABASES = {(0, "microsoft.insights/components"): "application_insights",
                      (0, "microsoft.operationalinsights/workspaces"): "log_analytics_workspace",
                      (1, "microsoft.resourcegraph/resources"): "resource_graph"}


@dataclasses.dataclass(frozen=True)
class Query:
    """A query as the plan renders it: where it comes from, the tables it runs against, its text."""

    name: str
    database: str
    text: str


def alert_queries(plan) -> list[Query]:
    """The query of every scheduled query rule the plan creates, with the tables its scope gives it."""
    queries = []
    for address in plan.addresses("azurerm_monitor_scheduled_query_rules_alert_v2"):
        change = plan.changes[address]
        module_path = [part.split("[")[0].removeprefix("module.") for part in change["module_address"].split(".module.")] \
            if change.get("module_address") else []
        references = plan.config(module_path, f"{change['type']}.{change['name']}")["expressions"]["scopes"]["references"]
        scoped = {reference.split(".")[0] for reference in references if reference.startswith("azurerm_")}
        databases = {SCOPE_DATABASES.get(kind, kind) for kind in scoped}
        assert len(databases) == 1 and databases <= set(DATABASES), (
            f"{address}: its scope references {sorted(scoped)}; the check knows the tables of "
            f"{sorted(SCOPE_DATABASES)} only")
        queries.append(Query(address, databases.pop(), plan.after(address)["criteria"][0]["query"]))
    return queries


def workbook_queries(plan) -> list[Query]:
    """The query of every item of every workbook the plan creates, with the tables its data source gives it."""
    queries = []
    for address in plan.addresses("azurerm_application_insights_workbook"):
        data = plan.after(address)["data_json"]
        assert data is not None, f"{address}: its data_json is known only after apply, so its queries cannot be checked"
        for item in workbook_items(json.loads(data)["items"]):
            content = item["content"]
            if "query" not in content:
                continue
            source = (content.get("queryType"), content.get("resourceType"))
            assert source in WORKBOOK_DATABASES, f"{address} item {item['name']!r}: the check knows no tables of {source}"
            queries.append(Query(f"{address} item {item['name']!r}", WORKBOOK_DATABASES[source], content["query"]))
    return queries


def workbook_items(items):
    """Every item, those inside groups included."""
    for item in items:
        yield item
        if item.get("type") == 12:
            yield from workbook_items(item["content"].get("items", []))


@dataclasses.dataclass
class Result:
    """What the check found in one query: its problems (none when it passes) and its regular expressions."""

    query: Query
    problems: list[str]
    regexes: list[str]

    def __str__(self):
        return f"{self.query.name} ({self.query.database}):\n" + "".join(f"  {p}\n" for p in self.problems) + \
               f"  the query:\n    {self.query.text}"


def check(queries: list[Query]) -> dict[str, Result]:
    """Kusto.Language's diagnostics and RE2's refusals of each query, by query name; one run of Node.js for all."""
    if not queries:
        return {}
    results = {}
    for query, answer in zip(queries, analyse(queries)):
        problems = [f"Kusto {d['code']} {d['severity']} at {d['start']}: {d['message']} "
                    f"(near {query.text[max(0, d['start'] - 20):d['start'] + d['length'] + 20]!r})"
                    for d in answer["diagnostics"]]
        for regex in answer["regexes"]:
            try:
                re2.compile(regex["pattern"])
            except re2.error as exc:
                problems.append(f"RE2 refuses the regular expression of {regex['function']} at {regex['start']}, "
                                f"{regex['pattern']}: {_text(exc)}")
        problems += [f"a regular expression the check cannot read: {use}" for use in answer["unchecked"]]
        results[query.name] = Result(query, problems, [regex["pattern"] for regex in answer["regexes"]])
    return results


def failures(results: dict[str, Result]) -> str:
    """The results with problems, each naming its query and quoting it; empty when every query passed."""
    return "\n\n".join(str(result) for result in results.values() if result.problems)


def analyse(queries: list[Query]) -> list[dict]:
    modules = os.environ.get("KUSTO_LANGUAGE")
    node = shutil.which("node")
    assert modules and Path(modules, "@kusto", "language-service-next").is_dir() and node, (
        "KUSTO_LANGUAGE does not name the node_modules folder holding @kusto/language-service-next, or node is "
        "missing; run these tests through scripts/check-infra, which installs it")
    used = {query.database for query in queries}
    request = {"databases": {name: {table: columns(schema) for table, schema in DATABASES[name].items()} for name in used},
               "queries": [dataclasses.asdict(query) for query in queries]}
    result = subprocess.run([node, str(ANALYSER), modules], input=json.dumps(request), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, f"kusto/analyse.js failed (exit {result.returncode}):\n{result.stderr}"
    return json.loads(result.stdout)


def columns(schema: str) -> list[list[str]]:
    """[[column, type], ...] of a schema written `(column:type, ...)`."""
    return [[part.strip() for part in column.split(":")] for column in schema.strip("()").split(",")]


def _text(exc) -> str:
    message = exc.args[0] if exc.args else exc
    return message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
