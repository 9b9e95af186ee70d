"""Every alert and workbook query of infra/, as the plan renders it: Kusto.Language and RE2 accept it, and its
patterns read the lines the app's own code writes (kusto_check.py says how).

A diagnostic or a refused pattern fails here, naming the rule or workbook item and quoting the query. A change to
a line's format that a query would no longer read (a renamed field, a new status word) fails the real-lines tests.
"""

import dataclasses
import logging
import re
import time

import pytest
import re2
from cache_invalidator.handler import _report_batch
from cache_invalidator.lease_watch import BEHIND, HEALTHY, MISSING, STALE, UNREADABLE, RegionFinding, WatchRun, report
from cache_invalidator.translation import ContainerKind, translate
from kusto_check import Query, alert_queries, check, failures, workbook_queries

BATCH_LINE, WATCH_LINE = "Change batch ", "Lease watch "
# A query's extract() of a field of the line into a column: `column = extract(@"pattern", 1, message)`,
# or wrapped in tolong()/todouble().
EXTRACT = re.compile(r'(\w+) = (?:to(long|double)\()?extract\(@"([^"]+)", 1, message\)')


def every_query(plan):
    return alert_queries(plan) + workbook_queries(plan)


def seeded(query, mistake):
    wrong = SEEDED[mistake][0](query.text)
    assert wrong != query.text
    return dataclasses.replace(query, name=f"{query.name} with {mistake}", text=wrong)


SEEDED = {
    "a misspelt column": (lambda text: text.replace("message startswith", "mesage startswith", 1), "Kusto KS142"),
    "a stray comma": (lambda text: text.replace(" | project", ", | project", 1), "Kusto KS"),
    "an unbalanced group in a pattern": (lambda text: text.replace(r'(\S+)", 1, message)', r'(\S+", 1, message)', 1),
                                         "RE2 refuses the regular expression"),
}
PARSE_REGEX = Query("a parse kind=regex", "application_insights",
                    'traces | parse kind=regex message with "container=" container:string " " rest:string')


@pytest.fixture(scope="module")
def checked(regions_plan, two_regions_plan):
    """Every query of both plans, the seeded mistakes and the same rule against a workspace, through one run."""
    failed_batches = next(q for q in alert_queries(regions_plan) if q.name.endswith('alert["failed_batches"]'))
    watch_silent = next(q for q in alert_queries(regions_plan) if q.name.endswith('alert["watch_silent"]'))
    queries = (every_query(regions_plan) + every_query(two_regions_plan)
               + [seeded(failed_batches, mistake) for mistake in sorted(SEEDED)]
               + [dataclasses.replace(watch_silent, name=f"{watch_silent.name} in a workspace",
                                      database="log_analytics_workspace"), PARSE_REGEX])
    return check(queries)


def test_every_alert_and_workbook_query_passes_kusto_language_and_re2(regions_plan, checked):
    queries = every_query(regions_plan)
    alerts = [q for q in queries if "scheduled_query_rules" in q.name]
    assert len(alerts) == 6 * 3 and len(queries) == len(alerts) + 8 * 3
    problems = failures({q.name: checked[q.name] for q in queries})
    assert not problems, problems


def test_the_two_regions_examples_queries_pass_kusto_language_and_re2(two_regions_plan, checked):
    queries = every_query(two_regions_plan)
    assert len(queries) == (6 + 8) * 2
    problems = failures({q.name: checked[q.name] for q in queries})
    assert not problems, problems


def test_alert_rules_scoped_to_application_insights_read_its_traces_table(regions_plan):
    assert {query.database for query in alert_queries(regions_plan)} == {"application_insights"}
    sources = {query.database for query in workbook_queries(regions_plan)}
    assert sources == {"application_insights", "resource_graph"}


@pytest.mark.parametrize("mistake", sorted(SEEDED))
def test_a_seeded_mistake_fails_the_check_naming_the_rule_and_quoting_the_query(checked, mistake):
    name = next(name for name in checked if name.endswith(f'alert["failed_batches"] with {mistake}'))
    result = checked[name]
    assert result.problems and SEEDED[mistake][1] in str(result), str(result)
    assert str(result).startswith('module.region["') and result.query.text in str(result)
    print(f"\n--- {mistake} ---\n{result}")


def test_the_same_query_against_a_workspaces_apptraces_fails(checked):
    result = next(result for name, result in checked.items() if name.endswith("in a workspace"))
    assert "Kusto KS204" in str(result) and "'traces'" in str(result)


def test_a_regex_the_check_cannot_read_fails_rather_than_passes(checked):
    assert "cannot read" in str(checked[PARSE_REGEX.name])


# -- the lines the app writes ---------------------------------------------------------------


def captured(emit):
    """The records the app's logger `cache_invalidator` receives while emit() runs."""
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("cache_invalidator")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        emit()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    return records


@pytest.fixture(scope="module")
def batch_lines():
    """Batch lines of every outcome, written by handler.py: with a lag and without one (no _ts), with skips and poison."""
    now = int(time.time())
    with_lag = translate([{"id": "guest|hello", "_ts": now - 90}, {"id": "guest|own", "_ts": now - 95, "_clusterId": "eastus"},
                          None, {"id": "guest|other", "_ts": now - 99}],
                         ContainerKind.WHISKS, instance_id="cache-invalidator", cluster_id="eastus", invalidate_auth_keys=False)
    without_lag = translate([{"id": "alice", "subject": "alice", "namespaces": [{"name": "alice"}]}],
                            ContainerKind.SUBJECTS, instance_id="cache-invalidator", cluster_id=None, invalidate_auth_keys=False)

    def emit():
        for outcome in ("delivered", "failed"):
            _report_batch(with_lag, "whisks", outcome, "cacheInvalidation", 0.5)
            _report_batch(without_lag, "subjects", outcome, "ow_cacheInvalidation", 0.25)

    records = [r for r in captured(emit) if r.getMessage().startswith(BATCH_LINE)]
    assert len(records) == 4
    return records


@pytest.fixture(scope="module")
def watch_lines():
    """Watch lines of every status, written by lease_watch.py's report."""
    run = WatchRun("westeurope", [
        RegionFinding("eastus", "whisks", STALE, "eastus-whisks", leases=4, owners=("h",), renewed_seconds_ago=600.0,
                      oldest_checkpoint=118, pending_changes=7, oldest_pending_seconds=640.5, reason="leases last renewed 600 s ago"),
        RegionFinding("westus2", "subjects", MISSING, "westus2-subjects", reason="no leases"),
        RegionFinding("westeurope", "whisks", HEALTHY, "westeurope-whisks", leases=4, pending_changes=0, oldest_pending_seconds=0.0),
        RegionFinding("eastus", "subjects", BEHIND, "eastus-subjects", leases=4, pending_changes=12, oldest_pending_seconds=33000.0,
                      reason="oldest change not yet handed"),
        RegionFinding("*", "*", UNREADABLE, reason="lease container gone"),
    ], request_charge=20.0, duration_ms=30.0)
    records = [r for r in captured(lambda: report(run)) if r.getMessage().startswith(WATCH_LINE)]
    assert {r.status for r in records} == {STALE, MISSING, HEALTHY, BEHIND, UNREADABLE}
    return records


def extracts(query):
    """(column, KQL type, pattern) of each field a query extracts from the line's text."""
    return [(column, kind or "string", pattern) for column, kind, pattern in EXTRACT.findall(query.text)]


def line_kind(query):
    for kind in (BATCH_LINE, WATCH_LINE):
        if f'where message startswith "{kind}"' in query.text:
            return kind
    return None


def test_every_pattern_of_every_query_is_one_this_test_reads(regions_plan, checked):
    """The text's extract() calls, as read here, are every pattern Kusto.Language finds in the query."""
    for query in every_query(regions_plan):
        if query.database != "application_insights":
            continue
        assert sorted(pattern for _, _, pattern in extracts(query)) == sorted(checked[query.name].regexes), query.name
        assert line_kind(query) is not None, f"{query.name} reads neither line: {query.text}"


def test_every_extracted_value_is_the_value_the_app_logged(regions_plan, batch_lines, watch_lines):
    """Applied with RE2 to each line, each pattern yields that line's field of the same name, as the record holds it."""
    lines = {BATCH_LINE: batch_lines, WATCH_LINE: watch_lines}
    checked = set()
    for query in every_query(regions_plan):
        if query.database != "application_insights":
            continue
        for record in lines[line_kind(query)]:
            message = record.getMessage()
            for column, kind, pattern in extracts(query):
                assert hasattr(record, column), (
                    f"{query.name} extracts {column!r}, a field the app's line no longer has:\n  {message}\n"
                    f"  the query:\n    {query.text}")
                logged = getattr(record, column)
                match = re2.search(pattern, message)
                if kind == "string":
                    assert match is not None and match.group(1) == str(logged), (query.name, column, message)
                elif logged is None:
                    # Logged as None: the number pattern finds nothing, and to<type>("") is null.
                    assert match is None, (query.name, column, message)
                else:
                    assert match is not None and float(match.group(1)) == float(logged), (query.name, column, message)
                checked.add((line_kind(query), column))
    assert {column for kind, column in checked if kind == BATCH_LINE} == {
        "container", "outcome", "documents", "messages_sent", "skipped_own_cluster", "poison", "lag_seconds"}
    assert {column for kind, column in checked if kind == WATCH_LINE} == {
        "watcher", "region", "container", "status", "pending_changes", "oldest_pending_seconds"}


def test_every_value_a_query_compares_a_field_with_is_one_the_app_writes(regions_plan, batch_lines, watch_lines):
    written = {"outcome": {r.outcome for r in batch_lines}, "status": {r.status for r in watch_lines}}
    compared = set()
    for query in every_query(regions_plan):
        for field, values in re.findall(r'\b(outcome|status) (?:==|!=) ("[^"]*")', query.text) + \
                re.findall(r'\b(outcome|status) in \(([^)]*)\)', query.text):
            for value in re.findall(r'"([^"]*)"', values):
                assert value in written[field], f"{query.name} compares {field} with {value!r}, which no line carries"
                compared.add((field, value))
    assert compared == {("outcome", "failed"), ("outcome", "delivered"), ("status", "stale"), ("status", "missing"),
                        ("status", "behind"), ("status", "unreadable")}
