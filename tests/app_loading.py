"""Loads function_app.py the way the worker indexes it, and invokes its functions the way the host does."""

import importlib.util
import itertools
import json
import typing
from pathlib import Path

from azure.functions.cosmosdb import CosmosDBTriggerConverter
from azure.functions.meta import Datum

ROOT = Path(__file__).resolve().parent.parent
# Settings this app reads; tests start from none of them, whatever the developer's shell has.
APP_SETTING_PREFIXES = ("KAFKA_", "COSMOSDB", "CLUSTER_ID", "INVALIDATE_AUTH_KEYS", "INVALIDATION_INSTANCE_ID",
                        "LEASE_WATCH_")
BASE_SETTINGS = {
    "COSMOSDB_NAME": "openwhisk",
    "COSMOSDB": "AccountEndpoint=https://localhost:8081/;AccountKey=dGVzdC1jb3Ntb3Mta2V5;",
}
_loaded = itertools.count()


def load_function_app(monkeypatch, settings):
    """A fresh import of function_app.py with exactly these app settings in the environment."""
    import os

    for name in list(os.environ):
        if name.startswith(APP_SETTING_PREFIXES):
            monkeypatch.delenv(name)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location(f"function_app_{next(_loaded)}", ROOT / "function_app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # Indexed once, as the worker does: a second get_functions() raises.
    module.indexed_functions = {f.get_function_name(): f for f in module.app.get_functions()}
    return module


def functions_by_name(module):
    """The app's functions, by name, as the worker indexed them."""
    return module.indexed_functions


def change_feed_functions(module):
    """The app's Cosmos DB-triggered functions, by name; the lease watch's timer left out."""
    return {name: f for name, f in module.indexed_functions.items()
            if f.get_trigger().get_dict_repr()["type"] == "cosmosDBTrigger"}


def host_batch(documents):
    """A batch as the host hands it over: JSON, decoded by the library's own Cosmos DB converter."""
    datum = Datum(json.dumps(documents), "json")
    return CosmosDBTriggerConverter.decode(datum, trigger_metadata=None)


def host_argument(user_function, documents):
    """The batch as the worker hands it to this function: the JSON text for a str parameter
    (the worker's generic binding), a DocumentList from the library's converter otherwise."""
    annotation = typing.get_type_hints(user_function).get("changes")
    if annotation is str:
        return json.dumps(documents)
    return host_batch(documents)


def invoke(module, function_name, documents):
    """Calls a function of the app with the batch, as the worker would."""
    function = functions_by_name(module)[function_name].get_user_function()
    return function(host_argument(function, documents))


def library_invoker(module):
    """invoke() in the form tests.host_driver.LeaseDriver takes: (function name, documents, retry count).
    Called directly, a function has no retry context, so the count is not passed on."""
    def invoke_batch(function_name, documents, retry_count):
        invoke(module, function_name, documents)
    return invoke_batch
