"""`check`'s Cosmos DB findings, judged from plain facts as the azure-cosmos adapter reads them."""

import io

from cache_invalidator.cli.check import assess_cosmos, run_check
from cache_invalidator.cli.cosmos_facts import ContainerFacts, CosmosFacts
from cache_invalidator.cli.errors import CosmosUnavailable
from cache_invalidator.cli.report import Section
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


def facts(leases=(), lease_pk=("/id",), lease_exists=True, missing=()):
    containers = {name: ContainerFacts(name, name not in missing, RIDS[name], ("/id",)) for name in RIDS}
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
                     gather=lambda env, trigger, *, timeout: facts([lease("eu-whisks", "whisks")]))
    assert code == 0, out.getvalue()
    assert "WARNING no leases for 'subjects'" in out.getvalue()


def test_leases_named_by_database_and_container_names_are_counted():
    # Microsoft's Java change feed processor with handleChanges (partition-key-range leases) writes names, not rids.
    base = f"eu-whisks{HOST}_{BASE_SETTINGS['COSMOSDB_NAME']}_whisks"
    leases = [{"id": f"{base}..0", "Owner": "host-1", "_ts": NOW - 10},
              {"id": f"{base}..1", "Owner": "host-2", "_ts": NOW - 10},
              {"id": f"{base}.info", "_ts": NOW - 1000}, lease("eu-subjects", "subjects")]
    section = assess(facts(leases), CLUSTER_ID="eu")
    assert any(t.startswith("2 lease(s) for 'whisks' (lease prefix 'eu-whisks'), 2 owner(s): host-1, host-2")
               for t in texts(section, "ok")), texts(section, "ok")
    assert texts(section, "WARNING") == []
