"""The lease watch in infra/: its settings in every region, and its four alerts, read from the offline plan.

Their queries are checked, and applied to the app's own watch lines, in test_queries.py.
"""

from cache_invalidator.settings import WatchSettings
from conftest import ACTION_GROUP_ID, SHARED, sasl_region
from test_regions import REGIONS, known

ALERT = 'module.region["{}"].azurerm_monitor_scheduled_query_rules_alert_v2.alert["{}"]'


def queries(plan, region="eastus"):
    return plan.document["planned_values"]["outputs"]["alert_queries"]["value"][region]


def test_every_region_expects_every_regions_cluster_id(regions_plan):
    for region in REGIONS:
        watch = WatchSettings.from_env(known(regions_plan.app_settings(region)))
        assert watch.expected_regions == ("eastus", "westeurope", "westus2")
        assert (watch.stale_seconds, watch.pending_seconds) == (120, 300)


def test_the_schedule_is_left_to_the_app_unless_set(terraform, regions_plan):
    assert "LEASE_WATCH_SCHEDULE" not in regions_plan.app_settings("eastus")
    code, output, plan = terraform.plan({**SHARED, "regions": {"eastus": sasl_region("eastus")},
                                         "lease_watch_schedule": "30 */2 * * * *"})
    assert code == 0, output
    assert plan.app_settings("eastus")["LEASE_WATCH_SCHEDULE"] == "30 */2 * * * *"


def test_each_region_has_the_four_watch_alerts_on_its_application_insights(regions_plan):
    expected = {"stale_region": ("Count", "GreaterThan", 0, ["region", "container"], "PT5M"),
                "behind_region": ("Count", "GreaterThan", 0, ["region", "container"], "PT5M"),
                "watch_silent": ("Count", "LessThan", 1, [], "PT10M"),
                "oldest_pending_change": ("Maximum", "GreaterThan", 32400, ["region", "container"], "PT5M")}
    for region in REGIONS:
        for alert, (aggregation, operator, threshold, dimensions, window) in expected.items():
            rule = regions_plan.after(ALERT.format(region, alert))
            criteria = rule["criteria"][0]
            assert (criteria["time_aggregation_method"], criteria["operator"], criteria["threshold"],
                    [d["name"] for d in criteria.get("dimension") or []], rule["window_duration"]) == (
                aggregation, operator, threshold, dimensions, window), (region, alert)
            assert rule["action"][0]["action_groups"] == [ACTION_GROUP_ID]
            assert criteria["query"] == queries(regions_plan, region)[
                {"stale_region": "stale_regions", "behind_region": "behind_regions", "watch_silent": "watch_lines",
                 "oldest_pending_change": "oldest_pending_change"}[alert]]
    config = regions_plan.config(["region"], "azurerm_monitor_scheduled_query_rules_alert_v2.alert")
    assert "azurerm_application_insights.this.id" in config["expressions"]["scopes"]["references"]


def test_the_pending_change_alert_and_checks_threshold_follow_the_declared_soft_delete_ttl(terraform):
    code, output, plan = terraform.plan({**SHARED, "regions": {"eastus": sasl_region("eastus")},
                                         "soft_delete_ttl_seconds": 2592000})
    assert code == 0, output
    rule = plan.after(ALERT.format("eastus", "oldest_pending_change"))
    assert rule["criteria"][0]["threshold"] == 2332800  # 27 d: 90 % of 30 d
    assert "2332800 s" in rule["description"] and "2592000 s" in rule["description"]
    assert plan.app_settings("eastus")["OPENWHISK_SOFT_DELETE_TTL_SECONDS"] == "2592000"


def test_a_region_behind_alerts_within_the_alert_window_whatever_the_ttl(regions_plan):
    rule = regions_plan.after(ALERT.format("eastus", "behind_region"))
    assert (rule["window_duration"], rule["evaluation_frequency"]) == ("PT5M", "PT5M")
    assert rule["criteria"][0]["query"].endswith('| where status == "behind" | project timestamp, region, container, oldest_pending_seconds')


def test_a_soft_delete_ttl_below_an_hour_fails_naming_it(terraform):
    code, output, _ = terraform.plan({**SHARED, "regions": {"eastus": sasl_region("eastus")}, "soft_delete_ttl_seconds": 600})
    assert code != 0 and "soft_delete_ttl_seconds must be a whole number of seconds, at least 3600" in output, output


def test_a_stale_threshold_below_a_leases_expiry_fails_naming_it(terraform):
    code, output, _ = terraform.plan({**SHARED, "regions": {"eastus": sasl_region("eastus")},
                                      "lease_watch_stale_seconds": 30})
    assert code != 0 and "lease_watch_stale_seconds must be a whole number of at least 60" in output, output
