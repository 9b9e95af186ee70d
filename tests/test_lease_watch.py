"""The lease watch's reading of lease documents, its estimator arithmetic, its judgement and its line, on plain data.

The same code against the emulator, and through the worker runtime: tests/test_lease_watch_cosmos.py,
tests/runtime/test_runtime_lease_watch.py.
"""

import base64
import json
import logging

import pytest

from cache_invalidator.lease_watch import (
    BEHIND, HEALTHY, MISSING, STALE, Lease, PendingWork, RegionFinding, WatchRun, database_rid_of, estimate, etag_lsn,
    judge, lease_prefix_of, read_lease, region_of, report, session_lsn,
)
from cache_invalidator.settings import WatchSettings, local_lease_prefix

NOW = 1_800_000_000.0
HOST = "acct.documents.azure.com"
MARKER = "_Yj1xAA==_Yj1xAKzJkA8=.."
SETTINGS = WatchSettings(stale_seconds=120, pending_seconds=300)


def dotnet_lease(prefix="eu-whisks", token="0", owner="host-1", continuation='"12"',
                 timestamp="2027-01-15T08:00:00.1234567Z"):
    """As DocumentServiceLeaseCore serialises a lease (see tests/lease_documents.py)."""
    return {"id": f"{prefix}{HOST}{MARKER}{token}", "version": 0, "LeaseToken": token,
            "FeedRange": {"Range": {"min": "", "max": "FF", "isMinInclusive": True, "isMaxInclusive": False}},
            "Owner": owner, "ContinuationToken": continuation, "properties": {}, "timestamp": timestamp,
            "Mode": "Incremental Feed", "_ts": 1}


def java_lease(etag='"40"'):
    """As ServiceItemLeaseV1 serialises an EPK-based lease (see tests/lease_documents.py for the source)."""
    scope = {"min": "", "max": "FF", "isMinInclusive": True, "isMaxInclusive": False}
    state = {"V": 1, "Rid": "Yj1xAKzJkA8=", "Mode": "INCREMENTAL", "StartFrom": {"Type": "NOW"},
             "Continuation": {"V": 1, "Rid": "Yj1xAKzJkA8=", "Continuation": [{"token": etag, "range": scope}],
                              "Range": scope}}
    return {"id": f"us-whisks{HOST}{MARKER}-FF", "_etag": '"0300"', "LeaseToken": "-FF",
            "ContinuationToken": base64.b64encode(json.dumps(state).encode()).decode(),
            "timestamp": "2027-01-15T08:00:00.123456789Z", "Owner": "java-host", "version": 1,
            "feedRange": {"Range": scope}}


def lease(lease_id="l0", owner="host-1", renewed_ago=10.0, continuation='"5"'):
    return Lease(lease_id, "0", owner, NOW - renewed_ago, continuation, ("", "FF"), "dotnet")


def test_the_database_rid_is_the_first_half_of_a_containers_rid():
    assert database_rid_of("Yj1xAKzJkA8=") == "Yj1xAA=="
    # Resource ids write base64's '/' as '-', both ways.
    assert database_rid_of("+-+-AYAAAAI=") == "+-+-AQ=="


def test_what_is_not_a_containers_rid_is_refused():
    for rid in ("Yj1xAA==", "not base64!", ""):
        try:
            database_rid_of(rid)
        except ValueError as error:
            assert repr(rid) in str(error)
        else:
            raise AssertionError(f"{rid!r} was taken for a container's _rid")


def test_a_dotnet_lease_gives_its_owner_renewal_continuation_and_range():
    found = read_lease(dotnet_lease())
    assert (found.token, found.owner, found.continuation, found.feed_range, found.shape) == (
        "0", "host-1", '"12"', ("", "FF"), "dotnet")


def test_a_dotnet_lease_timestamp_is_read_to_the_microsecond():
    assert read_lease(dotnet_lease(timestamp="2027-01-15T08:00:00.1234567Z")).renewed_at == 1_800_000_000.123456


def test_a_java_lease_gives_the_etag_inside_its_change_feed_state():
    found = read_lease(java_lease('"40"'))
    assert (found.token, found.owner, found.continuation, found.feed_range, found.shape, found.renewed_at) == (
        "-FF", "java-host", '"40"', ("", "FF"), "java", 1_800_000_000.123456)


def test_a_lease_without_continuation_has_no_checkpoint():
    assert read_lease(dotnet_lease(continuation=None)).continuation is None


def test_the_emulators_cursor_names_its_lsn():
    assert (etag_lsn('"12"'), etag_lsn('{"kind":"change_feed_cursor_v1","lsn":7,"epk":"0A","id":"x"}'),
            etag_lsn("not an etag")) == (12, 7, None)


def test_the_session_token_lsn_is_the_global_lsn_as_the_estimator_extracts_it():
    assert (session_lsn("0:-1#12"), session_lsn("1:0#2#0=2"), session_lsn("3"), session_lsn(None)) == (12, 2, 3, 0)


def test_no_change_after_the_continuation_is_nothing_pending():
    assert estimate("0:-1#12", None, '"12"') == PendingWork(0)


def test_pending_is_the_session_lsn_less_the_lsn_before_the_first_pending_change():
    assert estimate("0:-1#20", {"_lsn": 15, "_ts": 1234}, '"14"') == PendingWork(6, 1234.0)


def test_without_an_lsn_on_the_change_the_continuations_lsn_stands_in():
    assert estimate("2:0#9#0=9", {"_ts": 1234}, '{"kind":"change_feed_cursor_v1","lsn":3}') == PendingWork(6, 1234.0)


def test_without_any_lsn_one_change_is_pending_as_the_estimator_says():
    assert estimate("0:-1#9", {"_ts": 1234}, "opaque") == PendingWork(1, 1234.0)


def test_a_lease_prefix_is_what_precedes_the_account_host():
    assert lease_prefix_of(f"westeurope-whisks{HOST}{MARKER}0", MARKER, HOST, "whisks") == "westeurope-whisks"


def test_through_another_endpoint_the_prefix_ends_at_the_container_name():
    lease_id = f"eastus-whisksacct-eastus.documents.azure.com{MARKER}0"
    assert lease_prefix_of(lease_id, MARKER, HOST, "whisks") == "eastus-whisks"


def test_a_lease_of_another_container_has_no_prefix_here():
    assert lease_prefix_of(f"eu-whisks{HOST}_Yj1xAA==_OTHER=..0", MARKER, HOST, "whisks") is None


def test_regions_are_the_cluster_ids_of_the_prefixes():
    assert (region_of("westeurope-whisks", "whisks"), region_of("whisks", "whisks"), region_of("other", "whisks")) == (
        "westeurope", "(none)", None)


def test_a_local_runs_leases_are_no_region_whatever_the_endpoint():
    prefix = local_lease_prefix("alice@laptop", "whisks")
    through = [lease_prefix_of(f"{prefix}{host}{MARKER}0", MARKER, HOST, "whisks")
               for host in (HOST, "acct-eastus.documents.azure.com")]
    assert [region_of(p, "whisks") if p else None for p in through] == [None, None]


def test_renewed_leases_with_nothing_old_pending_are_healthy():
    found = judge({"whisks": {"eu-whisks": [lease("a"), lease("b", owner="host-2")]}},
                  {"a": PendingWork(0), "b": PendingWork(3, NOW - 20)}, ["whisks"], SETTINGS, NOW)
    assert [(f.region, f.status, f.leases, f.owners, f.pending_changes, f.oldest_pending_seconds, f.oldest_checkpoint)
            for f in found] == [("eu", HEALTHY, 2, ("host-1", "host-2"), 3, 20.0, 5)]


def test_a_lease_not_renewed_within_the_threshold_makes_its_region_stale():
    found = judge({"whisks": {"eu-whisks": [lease("a"), lease("b", renewed_ago=121)]}}, {}, ["whisks"], SETTINGS, NOW)
    assert [(f.status, f.renewed_seconds_ago) for f in found] == [(STALE, 121.0)]
    assert "LEASE_WATCH_STALE_SECONDS" in found[0].reason


def test_a_stale_region_whose_leases_all_expired_says_no_instance_holds_them():
    leases = [lease("a", renewed_ago=700), lease("b", renewed_ago=650)]
    [found] = judge({"whisks": {"eu-whisks": leases}}, {}, ["whisks"], SETTINGS, NOW)
    assert found.reason.startswith("none of its 2 lease(s) renewed in the last 120 s (LEASE_WATCH_STALE_SECONDS), "
                                   "the latest 650 s ago: no instance of the region's app holds them"), found.reason
    # The owner an expired lease still names is the last that held it, not an instance alive.
    assert found.owners == ("host-1",) and "the 1 owner(s) they name held them last" in found.reason


def test_a_stale_region_with_some_leases_renewed_says_its_app_runs_but_nobody_took_the_others_over():
    leases = [lease("a"), lease("b", renewed_ago=300), lease("c", renewed_ago=200)]
    [found] = judge({"whisks": {"eu-whisks": leases}}, {}, ["whisks"], SETTINGS, NOW)
    assert (found.status, found.renewed_seconds_ago) == (STALE, 300.0)
    assert found.reason.startswith("2 of its 3 lease(s) not renewed in the last 120 s (LEASE_WATCH_STALE_SECONDS), "
                                   "the oldest 300 s ago: the region's app runs"), found.reason
    assert "no instance of the region's app holds them" not in found.reason


def test_a_pending_change_older_than_the_threshold_makes_its_region_behind():
    found = judge({"whisks": {"eu-whisks": [lease("a")]}}, {"a": PendingWork(1, NOW - 301)}, ["whisks"], SETTINGS, NOW)
    assert [(f.status, f.oldest_pending_seconds) for f in found] == [(BEHIND, 301.0)]


def test_an_expected_region_without_leases_is_missing():
    settings = WatchSettings(expected_regions=("eu", "asia"))
    found = judge({"whisks": {"eu-whisks": [lease("a")]}}, {}, ["whisks", "subjects"], settings, NOW)
    assert [(f.region, f.container, f.status) for f in found] == [
        ("asia", "whisks", MISSING), ("eu", "whisks", HEALTHY), ("asia", "subjects", MISSING),
        ("eu", "subjects", MISSING)]


def test_the_watch_line_has_the_fields_in_text_and_record_at_the_findings_level(caplog):
    run = WatchRun("eu", [RegionFinding("us", "whisks", STALE, "us-whisks", leases=2, owners=("h",),
                                        renewed_seconds_ago=130.0, reason="leases last renewed 130 s ago",
                                        mode="LatestVersion"),
                          RegionFinding("eu", "whisks", HEALTHY, "eu-whisks-avad", leases=1, owners=("h",),
                                        mode="AllVersionsAndDeletes")],
                   request_charge=12.0, duration_ms=21.25)
    with caplog.at_level(logging.INFO, logger="cache_invalidator"):
        report(run)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "Lease watch watcher=eu region=us container=whisks mode=LatestVersion status=stale leases=2 owners=1 unowned=0 "
                    "renewed_seconds_ago=130.0 oldest_checkpoint=None unchecked_leases=0 pending_changes=None "
                    "oldest_pending_seconds=None request_charge=12.0 duration_ms=21.2 "
                    "reason=leases last renewed 130 s ago"),
        ("INFO", "Lease watch watcher=eu region=eu container=whisks mode=AllVersionsAndDeletes status=healthy leases=1 owners=1 unowned=0 "
                 "renewed_seconds_ago=None oldest_checkpoint=None unchecked_leases=0 pending_changes=None "
                 "oldest_pending_seconds=None request_charge=12.0 duration_ms=21.2 reason=-")]
    assert (caplog.records[0].region, caplog.records[0].status, caplog.records[0].renewed_seconds_ago) == (
        "us", "stale", 130.0)


def test_a_bad_watch_setting_is_a_finding_naming_it_not_an_exception(caplog):
    from cache_invalidator.lease_watch import LeaseWatch
    from cache_invalidator.settings import TriggerSettings
    from tests.app_loading import BASE_SETTINGS

    env = {**BASE_SETTINGS, "CLUSTER_ID": "eu", "LEASE_WATCH_STALE_SECONDS": "soon"}
    with caplog.at_level(logging.INFO, logger="cache_invalidator"):
        run = LeaseWatch(env, TriggerSettings.from_env(env)).run()
    assert [(f.region, f.status, f.reason) for f in run.findings] == [
        ("*", "unreadable", "setting LEASE_WATCH_STALE_SECONDS: expected a whole number, got 'soon'")]
    assert [r.levelname for r in caplog.records if r.msg.startswith("Lease watch ")] == ["ERROR"]


def test_leases_left_unestimated_are_named_in_the_reason():
    found = judge({"whisks": {"eu-whisks": [lease("a"), lease("b")]}}, {"a": PendingWork(2, NOW - 5)}, ["whisks"],
                  SETTINGS, NOW)
    assert [(f.status, f.pending_changes, f.reason) for f in found] == [
        (HEALTHY, 2, "1 of 2 lease(s) not estimated (LEASE_WATCH_TIMEOUT_SECONDS, or a continuation the account "
                     "refused)")]


# -- the all-versions-and-deletes feed's leases ---------------------------------------------------


def test_a_prefix_of_the_all_versions_and_deletes_feed_names_its_region_and_mode():
    from cache_invalidator.lease_watch import NO_CLUSTER, prefix_mode

    assert [(region_of(p, "whisks"), prefix_mode(p)) for p in ("eu-whisks-avad", "whisks-avad", "eu-whisks")] == [
        ("eu", "AllVersionsAndDeletes"), (NO_CLUSTER, "AllVersionsAndDeletes"), ("eu", "LatestVersion")]


@pytest.mark.parametrize("document, mode", [
    ({"id": "x", "LeaseToken": "0"}, "LatestVersion"),
    ({"id": "x", "LeaseToken": "0", "Mode": "Incremental Feed"}, "LatestVersion"),
    ({"id": "x", "LeaseToken": "0", "Mode": "Full-Fidelity Feed"}, "AllVersionsAndDeletes"),
    ({"id": "x", "version": 1, "feedRange": {}, "ContinuationToken": None}, None),
    ({"id": "x", "version": 1, "feedRange": {},
      "ContinuationToken": base64.b64encode(b'{"V":1,"Mode":"FULL_FIDELITY"}').decode()}, "AllVersionsAndDeletes"),
    ({"id": "x", "version": 1, "feedRange": {},
      "ContinuationToken": base64.b64encode(b'{"V":1,"Mode":"INCREMENTAL"}').decode()}, "LatestVersion"),
], ids=[".NET without Mode", ".NET incremental", ".NET full fidelity", "Java before its first continuation",
        "Java full fidelity", "Java incremental"])
def test_a_lease_records_its_mode_as_its_processor_writes_it(document, mode):
    from cache_invalidator.lease_watch import lease_mode

    assert lease_mode(document) == mode


def test_a_regions_leases_of_each_mode_are_judged_apart():
    found = judge({"whisks": {"eu-whisks": [lease("a", renewed_ago=600)], "eu-whisks-avad": [lease("b")]}}, {},
                  ["whisks"], SETTINGS, NOW)
    assert [(f.region, f.mode, f.status, f.lease_prefix) for f in found] == [
        ("eu", "AllVersionsAndDeletes", HEALTHY, "eu-whisks-avad"), ("eu", "LatestVersion", STALE, "eu-whisks")]


def test_an_expected_region_with_leases_of_either_mode_is_not_missing():
    settings = WatchSettings(expected_regions=("eu", "us"))
    found = judge({"whisks": {"eu-whisks-avad": [lease("b")]}}, {}, ["whisks"], settings, NOW)
    assert [(f.region, f.mode, f.status) for f in found] == [("eu", "AllVersionsAndDeletes", HEALTHY),
                                                             ("us", None, MISSING)]


def test_an_all_versions_and_deletes_change_is_estimated_from_its_metadata():
    change = {"current": None, "metadata": {"lsn": 15, "crts": 1234.5, "operationType": "delete", "id": "a"}}
    assert estimate("0:-1#20", change, '"14"') == PendingWork(6, 1234.5)


def test_a_lease_whose_feed_was_refused_says_why_it_is_not_estimated():
    found = judge({"whisks": {"eu-whisks-avad": [lease("a"), lease("b")]}}, {"a": PendingWork(0)}, ["whisks"],
                  SETTINGS, NOW, refused={"b": "the account refused to read the all-versions-and-deletes feed (400)"})
    assert found[0].reason == ("1 of 2 lease(s) not estimated (the account refused to read the "
                               "all-versions-and-deletes feed (400))")
