"""`check`'s Cosmos DB findings, judged from plain facts as the azure-cosmos adapter reads them."""

import io

from cache_invalidator.cli.check import assess_all_versions_feed, assess_change_feed, assess_cosmos, run_check
from cache_invalidator.cli.cosmos_facts import (ChangeFacts, ChangeFeedSample, ContainerFacts, CosmosFacts, FeedProbe,
                                                FeedSampleBounds)
from cache_invalidator.cli.errors import CosmosUnavailable
from cache_invalidator.cli.report import Section
from cache_invalidator.lease_watch import WatchRun
from cache_invalidator.settings import TriggerSettings
from tests.app_loading import BASE_SETTINGS

ENDPOINT = "https://acct.documents.azure.com:443/"
HOST = "acct.documents.azure.com"
DB_RID = "Yj1xAA=="
RIDS = {"whisks": "Yj1xAKzJkA8=", "subjects": "Yj1xAJ6Hf+M="}
NOW = 1_800_000_000


def trigger(**extra):
    return TriggerSettings.from_env({**BASE_SETTINGS, **extra})


def lease(prefix, container, token="0", owner="host-1", ts=NOW - 10, host=HOST):
    return {"id": f"{prefix}{host}_{DB_RID}_{RIDS[container]}..{token}", "Owner": owner, "_ts": ts}


def store_documents(prefix, container, host=HOST):
    base = f"{prefix}{host}_{DB_RID}_{RIDS[container]}"
    return [{"id": base + ".info", "_ts": NOW - 1000}, {"id": base + ".lock", "_ts": NOW - 1000}]


def facts(leases=(), lease_pk=("/id",), lease_exists=True, missing=(), default_ttl=-1):
    containers = {name: ContainerFacts(name, name not in missing, RIDS[name], ("/id",), default_ttl) for name in RIDS}
    containers["cache-invalidator-lease"] = ContainerFacts("cache-invalidator-lease", lease_exists, "L", lease_pk)
    return CosmosFacts(ENDPOINT, True, DB_RID, containers, list(leases) if lease_exists else None)


def assess(f, **settings):
    section = Section("Cosmos DB")
    t = trigger(**settings)
    assess_cosmos(section, f, t, t.cluster_id, now=NOW)
    return section


def texts(section, status):
    return [f.text for f in section.findings if f.status == status]


def test_everything_in_place():
    leases = [lease("eu-whisks", "whisks"), lease("eu-whisks", "whisks", "1", "host-2"),
              lease("eu-subjects", "subjects"), *store_documents("eu-whisks", "whisks")]
    section = assess(facts(leases), CLUSTER_ID="eu")
    assert texts(section, "PROBLEM") == [] and texts(section, "WARNING") == []
    oks = texts(section, "ok")
    assert "lease container 'cache-invalidator-lease' exists with partition key /id" in oks
    assert any(t.startswith("2 lease(s) for 'whisks' (lease prefix 'eu-whisks'), 2 owner(s): host-1, host-2")
               for t in oks), oks
    assert any(t.startswith("1 lease(s) for 'subjects' (lease prefix 'eu-subjects'), 1 owner(s)") for t in oks)


def test_missing_database_is_a_problem():
    section = assess(CosmosFacts(ENDPOINT, database_exists=False))
    assert texts(section, "PROBLEM") == ["database 'openwhisk' (COSMOSDB_NAME) does not exist"]


def test_a_database_the_sign_in_may_not_read_is_said_and_its_missing_containers_are_problems():
    containers = {name: ContainerFacts(name, False) for name in ("whisks", "subjects", "cache-invalidator-lease")}
    section = assess(CosmosFacts(ENDPOINT, None, None, containers, None))
    assert texts(section, "") == ["database 'openwhisk' (COSMOSDB_NAME) could not be read: the account refused (403)"]
    assert "container 'whisks' (COSMOSDB_WHISKS_CONTAINER) does not exist in database 'openwhisk'" in texts(
        section, "PROBLEM")
    assert not any("database 'openwhisk' exists" in text for text in texts(section, "ok"))


def test_missing_container_is_a_problem_naming_its_setting():
    section = assess(facts(missing=("subjects",)))
    assert "container 'subjects' (COSMOSDB_SUBJECTS_CONTAINER) does not exist in database 'openwhisk'" in texts(
        section, "PROBLEM")


def test_lease_container_must_be_keyed_by_id():
    section = assess(facts(lease_pk=("/partitionKey",)))
    assert any("has partition key /partitionKey" in t for t in texts(section, "PROBLEM"))


def test_missing_lease_container_is_a_problem_with_an_identity():
    identity = {"COSMOSDB": "", "COSMOSDB__accountEndpoint": ENDPOINT}
    section = assess(facts(lease_exists=False), **identity)
    assert any("cannot" in t and "partition key /id" in t for t in texts(section, "PROBLEM"))


def test_missing_lease_container_is_a_warning_when_the_host_creates_it():
    section = assess(facts(lease_exists=False))
    assert texts(section, "PROBLEM") == []
    assert any("the Functions host creates it" in t for t in texts(section, "WARNING"))


def test_no_leases_yet_is_a_warning():
    section = assess(facts([lease("us-whisks", "whisks")]), CLUSTER_ID="eu")
    assert any(t.startswith("no leases for 'whisks' (lease prefix 'eu-whisks')") for t in texts(section, "WARNING"))


def test_stale_leases_are_a_warning():
    section = assess(facts([lease("eu-whisks", "whisks", ts=NOW - 3600), lease("eu-subjects", "subjects")]),
                     CLUSTER_ID="eu")
    assert any("not renewed for 60 min" in t for t in texts(section, "WARNING"))


def test_unowned_leases_are_counted():
    section = assess(facts([lease("eu-whisks", "whisks", owner=None), lease("eu-subjects", "subjects")]),
                     CLUSTER_ID="eu")
    assert any("0 owner(s); 1 without owner" in t for t in texts(section, "ok"))


def test_other_regions_are_listed():
    leases = [lease("eu-whisks", "whisks"), lease("us-whisks", "whisks"), lease("asia-whisks", "whisks")]
    section = assess(facts(leases), CLUSTER_ID="eu")
    assert "other deployments read 'whisks' too, with lease prefixes 'asia-whisks' (1 leases), " \
           "'us-whisks' (1 leases)" in texts(section, "")
    assert not any("whisks" in t for t in texts(section, "WARNING"))


def test_empty_cluster_id_with_other_prefixes_is_a_warning():
    section = assess(facts([lease("whisks", "whisks"), lease("us-whisks", "whisks")]))
    assert any(t.startswith("CLUSTER_ID is empty while other deployments read 'whisks'")
               for t in texts(section, "WARNING"))


def test_a_prefix_differing_only_in_case_suggests_a_shared_cluster_id():
    section = assess(facts([lease("eu-whisks", "whisks"), lease("EU-whisks", "whisks")]), CLUSTER_ID="eu")
    assert any("two regions probably share the CLUSTER_ID 'eu'" in t for t in texts(section, "WARNING"))


def test_the_same_prefix_through_another_endpoint_suggests_a_shared_cluster_id():
    leases = [lease("eu-whisks", "whisks"), lease("eu-whisks", "whisks", host="acct-eastus.documents.azure.com")]
    section = assess(facts(leases), CLUSTER_ID="eu")
    assert any("two regions share the CLUSTER_ID 'eu'" in t for t in texts(section, "WARNING"))


def test_a_region_without_cluster_id_is_a_warning():
    section = assess(facts([lease("eu-whisks", "whisks"), lease("whisks", "whisks")]), CLUSTER_ID="eu")
    assert any(t.startswith("a deployment without CLUSTER_ID (lease prefix 'whisks')")
               for t in texts(section, "WARNING"))


def test_leases_of_other_containers_are_ignored():
    unrelated = {"id": f"eu-whisks{HOST}_{DB_RID}_OTHER=..0", "Owner": "x", "_ts": NOW}
    section = assess(facts([unrelated, lease("eu-whisks", "whisks"), lease("eu-subjects", "subjects")]),
                     CLUSTER_ID="eu")
    assert texts(section, "WARNING") == []
    assert any(t.startswith("1 lease(s) for 'whisks'") for t in texts(section, "ok"))


def test_the_adapters_error_is_a_problem_and_the_report_hides_the_key():
    key = "c2VjcmV0LWtleS12YWx1ZQ=="

    def gather(env, trigger, *, timeout):
        raise CosmosUnavailable(f"setting COSMOSDB: rejected AccountKey {key} (401)")

    out = io.StringIO()
    env = {**BASE_SETTINGS, "COSMOSDB": f"AccountEndpoint={ENDPOINT};AccountKey={key};"}
    assert run_check(env, out, source="test", kafka=False, gather=gather) == 1
    assert "PROBLEM setting COSMOSDB: rejected AccountKey *** (401)" in out.getvalue()
    assert key not in out.getvalue()


def test_facts_reach_the_report():
    out = io.StringIO()
    code = run_check({**BASE_SETTINGS, "CLUSTER_ID": "eu", "KAFKA_HOSTS": "127.0.0.1:9092"}, out, source="test", kafka=False,
                     gather=lambda env, trigger, *, timeout: facts([lease("eu-whisks", "whisks")]),
                     watch_look=lambda: WatchRun("eu", []))
    assert code == 0, out.getvalue()
    assert "WARNING no leases for 'subjects'" in out.getvalue()


# -- what OpenWhisk writes: default TTL, soft deletes, _clusterId, the Scala service's leases --------


def test_a_container_without_default_ttl_is_a_warning_naming_what_to_turn_on():
    section = assess(facts([lease("eu-whisks", "whisks"), lease("eu-subjects", "subjects")], default_ttl=None),
                     CLUSTER_ID="eu")
    warnings = [t for t in texts(section, "WARNING") if "no default time to live" in t]
    assert [t.split("'")[1] for t in warnings] == ["whisks", "subjects"]
    assert all("whisk.cosmosdb.soft-delete-ttl" in t and "defaultTtl -1" in t for t in warnings)


def test_a_positive_default_ttl_is_a_warning_that_documents_expire():
    section = assess(facts([lease("eu-whisks", "whisks"), lease("eu-subjects", "subjects")], default_ttl=3600),
                     CLUSTER_ID="eu")
    assert any("'whisks' has a default time to live of 60 min" in t for t in texts(section, "WARNING"))


BOUNDS = FeedSampleBounds(window_seconds=3600, max_documents=1000, max_request_units=100)
DAY = 86400


def change(cluster="eu", deleted=False, ttl=None, ts=NOW - 60):
    return ChangeFacts(ts=ts, deleted=deleted, ttl=ttl, cluster_id=cluster)


def judged(changes, cluster_id="eu", store="WhiskEntity", min_ttl=DAY, stopped_by=None):
    section = Section("Cosmos DB")
    sample = ChangeFeedSample("whisks", NOW - 3600, tuple(changes), len(changes), 12.5, stopped_by)
    assess_change_feed(section, sample, store, cluster_id, BOUNDS, min_ttl)
    return section


RIGHT = [change("eu"), change("us"), change("us", deleted=True, ttl=7 * DAY), change("eu", deleted=True, ttl=2 * DAY)]


def test_a_right_deployments_sample_gives_no_warning():
    section = judged(RIGHT)
    assert texts(section, "WARNING") == [] and texts(section, "PROBLEM") == []


def test_the_sample_names_its_cost_and_the_cluster_ids_it_saw_with_counts():
    infos = texts(judged(RIGHT + [change(None)]), "")
    assert "change feed of 'whisks': 5 change(s) in the last 60 min, 5 document(s) read, 12.5 RU charged" in infos
    assert "_clusterId of the changes of 'whisks': 'eu' 2, 'us' 2; without _clusterId 1" in infos


def test_a_sample_without_a_soft_delete_warns_of_nothing_and_says_what_it_cannot_tell_with_both_remedies():
    section = judged([change("eu"), change("us")])
    (note,) = [t for t in texts(section, "") if t.startswith("no soft delete among the 2 change(s) of 'whisks'")]
    assert texts(section, "WARNING") == []
    assert "cannot tell whether nothing was deleted in the window or the controllers hard-delete" in note
    assert "whisk.cosmosdb.soft-delete-ttl (environment CONFIG_whisk_cosmosdb_softDeleteTtl)" in note
    assert "whisk.cosmosdb.collections.WhiskEntity.soft-delete-ttl" in note
    assert "COSMOSDB_CHANGE_FEED_MODE=AllVersionsAndDeletes" in note


def test_twenty_subject_changes_none_deleted_on_a_right_deployment_give_no_warning():
    """Subjects are rarely deleted: such a window is every healthy deployment's, and no evidence of hard deletes."""
    section = judged([change("eu", ts=NOW - 60 - i) for i in range(20)], store="WhiskAuth")
    assert texts(section, "WARNING") == [] and texts(section, "PROBLEM") == []
    assert any("CONFIG_whisk_cosmosdb_collections_WhiskAuth_softDeleteTtl" in t for t in texts(section, ""))


def test_with_all_versions_and_deletes_neither_missing_nor_short_lived_soft_deletes_are_a_warning():
    section = Section("Cosmos DB")
    changes = (change("eu"), change("us", deleted=True, ttl=600))
    assess_change_feed(section, ChangeFeedSample("whisks", NOW - 3600, changes, 2, 1.0), "WhiskEntity", "eu", BOUNDS,
                       DAY, "AllVersionsAndDeletes")
    assert texts(section, "WARNING") == []
    assert ("deletes of 'whisks' reach the other regions through the all-versions-and-deletes feed, hard or soft "
            "(1 soft delete(s) in this sample)") in texts(section, "")


def test_soft_deletes_with_a_short_ttl_are_a_warning_naming_the_shortest():
    warnings = texts(judged(RIGHT + [change("eu", deleted=True, ttl=600)]), "WARNING")
    assert len(warnings) == 1 and "1 soft delete(s) of 'whisks' carry a ttl below 24 h" in warnings[0]
    assert "the shortest 10 min" in warnings[0] and "whisk.cosmosdb.soft-delete-ttl" in warnings[0]


def test_the_ttl_threshold_is_the_option():
    assert texts(judged(RIGHT, min_ttl=3 * DAY), "WARNING")[0].startswith(
        "1 soft delete(s) of 'whisks' carry a ttl below 72 h")


def test_changes_without_cluster_id_are_a_warning_naming_the_controllers_setting():
    warnings = texts(judged(RIGHT + [change(None), change(None)]), "WARNING")
    assert len(warnings) == 1 and warnings[0].startswith("2 of the 6 change(s) of 'whisks' carry no _clusterId")
    assert "whisk.cosmosdb.cluster-id (environment CONFIG_whisk_cosmosdb_clusterId)" in warnings[0]


def test_a_cluster_id_on_no_change_is_a_warning_that_changes_come_back():
    warnings = texts(judged(RIGHT, cluster_id="westeurope"), "WARNING")
    assert len(warnings) == 1 and "CLUSTER_ID 'westeurope' is on none of the 4 change(s)" in warnings[0]
    assert "skipped_own_cluster=0 on every batch line" in warnings[0]
    assert "CONFIG_whisk_cosmosdb_clusterId" in warnings[0]


def test_without_cluster_id_only_the_stamps_are_judged():
    assert texts(judged(RIGHT, cluster_id=None), "WARNING") == []


def test_an_empty_window_judges_nothing():
    section = judged([])
    assert texts(section, "WARNING") == []
    assert any(t.startswith("no change of 'whisks' in the last 60 min") for t in texts(section, ""))


def test_a_sample_stopped_by_its_bound_says_so():
    infos = texts(judged(RIGHT, stopped_by="request units"), "")
    assert any(t.endswith("stopped at the 100-RU bound") for t in infos)


OLD_HOST = HOST


def old_lease(prefix, container, tail, ts=NOW - 7200, database="openwhisk"):
    return {"id": f"{prefix}{OLD_HOST}_{database}_{container}{tail}", "Owner": "cache-invalidator", "_ts": ts}


def test_the_scala_services_leases_are_reported_apart_from_the_apps():
    leases = [lease("eu-whisks", "whisks"), lease("eu-subjects", "subjects"),
              old_lease("eu-whisks", "whisks", ".info"), old_lease("eu-whisks", "whisks", "..0"),
              old_lease("eu-whisks", "whisks", "..1")]
    section = assess(facts(leases), CLUSTER_ID="eu")
    assert texts(section, "WARNING") == []
    assert any(t.startswith("1 lease(s) for 'whisks' (lease prefix 'eu-whisks')") for t in texts(section, "ok"))
    assert any(t.startswith(f"3 lease document(s) 'eu-whisks{HOST}_openwhisk_whisks'... of the Scala "
                            f"cache-invalidator (lease prefix 'eu-whisks') for 'whisks', last written 2 h ago: "
                            f"the app neither reads nor takes them over") for t in texts(section, ""))


def test_the_scala_services_v1_leases_are_recognised_too():
    leases = [lease("eu-whisks", "whisks"), old_lease("eu-whisks", "whisks", ".info"),
              old_lease("eu-whisks", "whisks", ".info.0")]
    section = assess(facts(leases), CLUSTER_ID="eu")
    assert any(t.startswith(f"2 lease document(s) 'eu-whisks{HOST}_openwhisk_whisks'...") for t in texts(section, ""))


def test_the_scala_service_still_renewing_this_regions_prefix_is_a_warning():
    leases = [lease("eu-whisks", "whisks"), old_lease("eu-whisks", "whisks", "..0", ts=NOW - 5)]
    section = assess(facts(leases), CLUSTER_ID="eu")
    assert any("the Scala service still runs with this region's prefix" in t for t in texts(section, "WARNING"))


def test_a_fresh_store_marker_alone_is_no_sign_of_the_scala_service_running():
    # Microsoft's Java processor (azure-cosmos 4.x) writes such a marker beside its own leases.
    leases = [lease("eu-whisks", "whisks"), lease("eu-subjects", "subjects"),
              old_lease("eu-whisks", "whisks", ".info", ts=NOW - 5)]
    section = assess(facts(leases), CLUSTER_ID="eu")
    assert texts(section, "WARNING") == []
    assert any(t.startswith(f"1 lease document(s) 'eu-whisks{HOST}_openwhisk_whisks'... of the Scala "
                            f"cache-invalidator (lease prefix 'eu-whisks') for 'whisks': the app neither reads")
               for t in texts(section, ""))


def test_a_sample_window_that_is_no_duration_is_a_usage_error():
    from cache_invalidator.cli.main import main

    err = io.StringIO()
    assert main(["check", "--sample-window", "soon"], environ={}, stdout=io.StringIO(), stderr=err) == 2
    assert "not a duration such as 3600, 90m, 24h or 7d" in err.getvalue()


# -- the lease watch's table (the timer function's findings, through the same code) ------------


def watch_table(run):
    from cache_invalidator.cli.check import add_watch_table

    section = Section("Lease watch")
    add_watch_table(section, run)
    return section


def test_the_watch_table_has_a_row_per_region_and_container():
    from cache_invalidator.lease_watch import RegionFinding

    run = WatchRun("eu", [RegionFinding("eu", "whisks", "healthy", "eu-whisks", leases=4, owners=("host-1",),
                                        renewed_seconds_ago=3.0, oldest_checkpoint=12, pending_changes=0,
                                        oldest_pending_seconds=0.0, mode="LatestVersion"),
                          RegionFinding("us", "whisks", "stale", "us-whisks-avad", leases=4, owners=("host-2",),
                                        renewed_seconds_ago=600.0, reason="leases last renewed 600 s ago",
                                        mode="AllVersionsAndDeletes")],
                   request_charge=12.0, requests=12, duration_ms=30)
    section = watch_table(run)
    assert [(f.status, f.text) for f in section.findings] == [
        ("", "region  container  mode                   status   leases  owners  renewed     checkpoint  pending  "
             "oldest pending"),
        ("ok", "eu      whisks     LatestVersion          healthy  4       host-1  3 s ago     lsn 12      0        0 s"),
        ("WARNING", "us      whisks     AllVersionsAndDeletes  stale    4       host-2  10 min ago  -           -        "
                    "-\n"
                    "leases last renewed 600 s ago"),
        ("", "12 request(s), 12 RU, 30 ms")]


def test_leases_the_watch_cannot_read_are_a_problem():
    from cache_invalidator.lease_watch import RegionFinding

    section = watch_table(WatchRun("eu", [RegionFinding("*", "*", "unreadable", reason="lease container gone")]))
    assert texts(section, "PROBLEM") == ["the leases could not be read: lease container gone"]


# -- the all-versions-and-deletes feed: served or refused, and leases of either mode -------------------


def test_an_account_serving_the_all_versions_and_deletes_feed_is_ok():
    section = Section("Cosmos DB")
    assess_all_versions_feed(section, FeedProbe("whisks", True, request_charge=4.0))
    assert texts(section, "ok") == ["the account serves the all-versions-and-deletes change feed of 'whisks' "
                                    "(read from now, 4 RU)"]


def test_an_account_refusing_the_all_versions_and_deletes_feed_is_a_problem_naming_backup_and_the_feature():
    section = Section("Cosmos DB")
    assess_all_versions_feed(section, FeedProbe("subjects", False, 400, "Full fidelity change feed is not enabled"))
    (problem,) = texts(section, "PROBLEM")
    assert problem.startswith("the account refuses the all-versions-and-deletes change feed of 'subjects' "
                              "(400: Full fidelity change feed is not enabled)")
    assert "continuous backup" in problem and "all-versions-and-deletes feature" in problem


def mode_lease(prefix, container, mode, token="0", ts=NOW - 10):
    return {**lease(prefix, container, token, ts=ts), "Mode": mode}


def test_leases_under_this_regions_prefix_recording_the_other_mode_are_a_problem():
    leases = [mode_lease("eu-whisks-avad", "whisks", "Incremental Feed"),
              mode_lease("eu-subjects-avad", "subjects", "Full-Fidelity Feed")]
    section = assess(facts(leases), CLUSTER_ID="eu", COSMOSDB_CHANGE_FEED_MODE="AllVersionsAndDeletes")
    (problem,) = texts(section, "PROBLEM")
    assert problem.startswith("1 of the 1 lease(s) for 'whisks' (lease prefix 'eu-whisks-avad') record another change "
                              "feed mode than COSMOSDB_CHANGE_FEED_MODE=AllVersionsAndDeletes")
    assert "Switching ChangeFeedMode" in problem


def test_this_regions_leases_of_the_other_mode_still_renewed_are_a_warning():
    leases = [mode_lease("eu-whisks", "whisks", "Incremental Feed"), mode_lease("eu-whisks-avad", "whisks",
                                                                               "Full-Fidelity Feed"),
              mode_lease("eu-subjects-avad", "subjects", "Full-Fidelity Feed")]
    section = assess(facts(leases), CLUSTER_ID="eu", COSMOSDB_CHANGE_FEED_MODE="AllVersionsAndDeletes")
    (warning,) = texts(section, "WARNING")
    assert warning.startswith("1 lease(s) of the LatestVersion feed of 'whisks' under this region's prefix 'eu-whisks', "
                              "last renewed 10 s ago, while COSMOSDB_CHANGE_FEED_MODE=AllVersionsAndDeletes: an app of "
                              "this region still reads that feed")


def test_this_regions_leases_of_the_other_mode_left_unrenewed_are_information():
    leases = [mode_lease("eu-whisks", "whisks", "Full-Fidelity Feed"), lease("eu-whisks", "whisks", "1"),
              lease("eu-subjects", "subjects"), lease("eu-whisks-avad", "whisks", ts=NOW - 3600)]
    section = assess(facts(leases), CLUSTER_ID="eu")
    assert texts(section, "WARNING") == [] and texts(section, "PROBLEM") == [
        "1 of the 2 lease(s) for 'whisks' (lease prefix 'eu-whisks') record another change feed mode than "
        "COSMOSDB_CHANGE_FEED_MODE=LatestVersion: the change feed processor refuses to start on them (\"Switching "
        "ChangeFeedMode ... is not allowed\"). Delete them, or set the mode they record (docs/DEPLOY.md, moving a "
        "region between modes)"]
    assert ("1 lease(s) of the AllVersionsAndDeletes feed of 'whisks' under this region's prefix 'eu-whisks-avad', "
            "last renewed 60 min ago, while COSMOSDB_CHANGE_FEED_MODE=LatestVersion: left from the other mode, and "
            "read as a stale region by the lease watch; delete them once the move is done (docs/DEPLOY.md)"
            ) in texts(section, "")
