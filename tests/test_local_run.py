"""scripts/run-local's decisions on plain data (devhost/local_run.py); the run itself is tests/test_run_local.py."""

import json

from cache_invalidator.settings import TriggerSettings
from devhost import local_run

HOST = "127.0.0.1"


def lease(prefix, token, owner="run-1", continuation='"12"'):
    return {"id": f"{prefix}{HOST}_rid_rid..{token}", "LeaseToken": token, "Owner": owner,
            "ContinuationToken": continuation}


def test_the_run_is_ready_once_it_holds_every_lease_of_each_prefix_each_read_once():
    documents = [lease("whisks", "0-8"), lease("whisks", "8-FF"), lease("subjects", "0-FF"),
                 {"id": f"whisks{HOST}_rid_rid.info"}]
    assert local_run.leases_held(documents, HOST, ["whisks", "subjects"], "run-1") == {"whisks": 2, "subjects": 1}


def test_a_lease_not_yet_read_or_held_by_another_owner_is_not_ready():
    documents = [lease("whisks", "0-8"), lease("whisks", "8-FF", continuation=None), lease("subjects", "0-FF",
                                                                                          owner="old-run")]
    assert local_run.leases_held(documents, HOST, ["whisks", "subjects"], "run-1") == {"whisks": None,
                                                                                       "subjects": None}


def test_another_prefixs_leases_do_not_count():
    documents = [lease("westeurope-whisks", "0-FF", owner="region"), lease("whisks", "0-FF")]
    assert local_run.leases_held(documents, HOST, ["whisks"], "run-1") == {"whisks": 1}


def test_an_accounts_key_is_never_printed_and_the_local_emulators_is():
    account = "AccountEndpoint=https://acct.documents.azure.com:443/;AccountKey=c2VjcmV0;"
    emulator = "AccountEndpoint=http://127.0.0.1:4000/;AccountKey=published==;"
    assert (local_run.redact(account), local_run.redact(emulator)) == (
        "AccountEndpoint=https://acct.documents.azure.com:443/;AccountKey=***;", emulator)


def test_the_environment_overrides_local_settings_and_an_empty_value_is_unset(tmp_path, monkeypatch):
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": {"CLUSTER_ID": "from-file", "KAFKA_HOSTS": "",
                                                                         "COSMOSDB_NAME": "ow"}}))
    monkeypatch.setattr(local_run, "ROOT", tmp_path)
    settings, path = local_run.read_settings({"CLUSTER_ID": "from-env", "COSMOSDB": " "})
    assert (settings, path.name) == ({"CLUSTER_ID": "from-env", "COSMOSDB_NAME": "ow"}, "local.settings.json")


def test_the_default_run_name_is_a_valid_local_run_name():
    name = local_run.default_run_name()
    trigger = TriggerSettings.from_env({"COSMOSDB": "AccountEndpoint=x;AccountKey=y;", "COSMOSDB_NAME": "ow",
                                        "LOCAL_RUN_NAME": name})
    assert trigger.lease_prefix("whisks") == f"local.{name}.whisks" and "@" in name
