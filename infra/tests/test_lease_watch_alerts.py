"""The lease watch in infra/: its settings in every region, and its three alerts, read from the offline plan.

The alert queries are applied to the app's own watch lines (cache_invalidator/lease_watch.py's report), so
that a change to the line that the queries would no longer read fails here.
"""

import logging
import re

import pytest
from cache_invalidator.lease_watch import BEHIND, HEALTHY, MISSING, STALE, UNREADABLE, RegionFinding, WatchRun, report
from cache_invalidator.settings import WatchSettings
from conftest import ACTION_GROUP_ID, SHARED, sasl_region
from test_regions import REGIONS, known, kql_extracts

ALERT = 'module.region["{}"].azurerm_monitor_scheduled_query_rules_alert_v2.alert["{}"]'


@pytest.fixture(scope="module")
def watch_lines():
    """The app's own watch lines, one per status, by status."""
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("cache_invalidator")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        report(WatchRun("westeurope", [
            RegionFinding("eastus", "whisks", STALE, "eastus-whisks", leases=4, owners=("h",), renewed_seconds_ago=600.0,
                          oldest_pending_seconds=640.5, reason="leases last renewed 600 s ago"),
            RegionFinding("westus2", "subjects", MISSING, "westus2-subjects", reason="no leases"),
            RegionFinding("westeurope", "whisks", HEALTHY, "westeurope-whisks", leases=4, oldest_pending_seconds=0.0),
            RegionFinding("eastus", "subjects", BEHIND, "eastus-subjects", leases=4, oldest_pending_seconds=33000.0),
            RegionFinding("*", "*", UNREADABLE, reason="lease container gone"),
        ], request_charge=20.0, duration_ms=30.0))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    return {record.status: record.getMessage() for record in records}


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


def test_the_stale_region_query_finds_stale_and_missing_regions_in_the_apps_lines(regions_plan, watch_lines):
    query = queries(regions_plan)["stale_regions"]
    assert 'where message startswith "Lease watch "' in query and 'where status in ("stale", "missing")' in query
    extracts = kql_extracts(query)
    found = {status: tuple(re.search(extracts[column], line).group(1) for column in ("status", "region", "container"))
             for status, line in watch_lines.items()}
    assert found[STALE] == ("stale", "eastus", "whisks")
    assert found[MISSING] == ("missing", "westus2", "subjects")
    assert found[HEALTHY] == ("healthy", "westeurope", "whisks")


def test_the_silence_query_counts_only_lines_that_read_the_leases(regions_plan, watch_lines):
    query = queries(regions_plan)["watch_lines"]
    assert 'where status != "unreadable"' in query
    status = kql_extracts(query)["status"]
    assert {s: re.search(status, line).group(1) for s, line in watch_lines.items()} == {
        s: s for s in (STALE, MISSING, HEALTHY, BEHIND, UNREADABLE)}


def test_the_pending_query_reads_the_oldest_pending_changes_age(regions_plan, watch_lines):
    extracts = kql_extracts(queries(regions_plan)["oldest_pending_change"])
    assert float(re.search(extracts["oldest_pending_seconds"], watch_lines[BEHIND]).group(1)) == 33000.0
    assert re.search(extracts["oldest_pending_seconds"], watch_lines[MISSING]) is None  # "None": not a number


def test_each_region_has_the_three_watch_alerts_on_its_application_insights(regions_plan):
    expected = {"stale_region": ("Count", "GreaterThan", 0, ["region", "container"], "PT5M"),
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
                {"stale_region": "stale_regions", "watch_silent": "watch_lines",
                 "oldest_pending_change": "oldest_pending_change"}[alert]]
    config = regions_plan.config(["region"], "azurerm_monitor_scheduled_query_rules_alert_v2.alert")
    assert "azurerm_application_insights.this.id" in config["expressions"]["scopes"]["references"]


def test_the_pending_change_threshold_is_the_operators(terraform):
    code, output, plan = terraform.plan({**SHARED, "regions": {"eastus": sasl_region("eastus")},
                                         "alert_pending_change_age_seconds": 3000})
    assert code == 0, output
    assert plan.after(ALERT.format("eastus", "oldest_pending_change"))["criteria"][0]["threshold"] == 3000


def test_a_stale_threshold_below_a_leases_expiry_fails_naming_it(terraform):
    code, output, _ = terraform.plan({**SHARED, "regions": {"eastus": sasl_region("eastus")},
                                      "lease_watch_stale_seconds": 30})
    assert code != 0 and "lease_watch_stale_seconds must be a whole number of at least 60" in output, output
