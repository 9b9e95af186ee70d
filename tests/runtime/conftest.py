"""The runtime suite: the app run by Microsoft's Python worker runtime (azure-functions-runtime, Python 3.13).

scripts/test runs it in its own environment (tests/runtime/requirements.txt)
after the main suite; the main suite does not collect this folder (pytest.ini).
The broker, topic and settings fixtures are tests/conftest.py's. Each test
starts its own worker process (devhost/worker_host.py), as the host
starts one per app, and closes it afterwards.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.app_loading import APP_SETTING_PREFIXES, ROOT
from devhost.worker_host import WorkerHost, compile_protos, worker_environment

# The annotation function_app.py gives the trigger parameter; app copies replace it.
APP_ANNOTATION = "(changes: str)"


@pytest.fixture(scope="session")
def protos_dir(tmp_path_factory):
    """FunctionRpc.proto compiled once per run."""
    return compile_protos(tmp_path_factory.mktemp("function-rpc"))


@pytest.fixture
def start_worker(protos_dir):
    """Starts a worker for an app folder with exactly these app settings, initialised; closed after the test."""
    started = []

    def start(settings, app_dir=ROOT, *, init=True):
        # DEBUG as with PYTHON_ENABLE_DEBUG_LOGGING: every record the runtime and the app
        # write crosses to this process, where tests/secret_scan.py reads it.
        env = worker_environment({**settings, "PYTHON_ENABLE_DEBUG_LOGGING": "1"}, APP_SETTING_PREFIXES)
        host = WorkerHost(app_dir, env, protos_dir=protos_dir)
        started.append(host)
        if init:
            response = host.init()
            assert response.result.status == host.protos.StatusResult.Success, response.result.exception.message
            host.load_all()
        return host

    yield start
    for host in started:
        host.close()


@pytest.fixture
def app_with_annotation(tmp_path):
    """A folder holding function_app.py with the trigger parameter annotated otherwise, and the app's package."""

    def make(annotation: str) -> Path:
        app_dir = tmp_path / f"app-{len(list(tmp_path.iterdir()))}"
        app_dir.mkdir()
        source = (ROOT / "function_app.py").read_text(encoding="utf-8")
        assert source.count(APP_ANNOTATION) == 2, f"function_app.py no longer says {APP_ANNOTATION!r} twice"
        (app_dir / "function_app.py").write_text(source.replace(APP_ANNOTATION, f"(changes: {annotation})"),
                                                 encoding="utf-8")
        shutil.copytree(ROOT / "cache_invalidator", app_dir / "cache_invalidator",
                        ignore=shutil.ignore_patterns("__pycache__"))
        return app_dir

    return make


_listener_build: dict = {}


def pytest_collection_modifyitems(session, config, items):
    """Fetches and compiles the change feed processor before any test runs, outside every test's timeout,
    when a collected test runs it."""
    if not any("trigger_listener_classpath" in getattr(item, "fixturenames", ()) for item in items):
        return
    from devhost.trigger_listener import TriggerListenerError, build

    try:
        _listener_build["classpath"] = build()
    except (TriggerListenerError, OSError, subprocess.TimeoutExpired) as e:
        _listener_build["error"] = str(e)


@pytest.fixture(scope="session")
def trigger_listener_classpath():
    """Microsoft's Java change feed processor, fetched and compiled once (devhost/trigger_listener.py)."""
    if "error" in _listener_build:
        pytest.fail(f"could not build the change feed processor: {_listener_build['error']}", pytrace=False)
    return _listener_build.get("classpath") or pytest.fail("the change feed processor was not built", pytrace=False)


@pytest.fixture
def start_instance(start_worker, trigger_listener_classpath, tmp_path):
    """Starts one instance of a region's app: a worker for these settings and Microsoft's change feed processor
    for each of its triggers (devhost/trigger_listener.py), named `host_name`. Stopped after the test."""
    from devhost.trigger_listener import LeaseIntervals, TriggerListener, cosmos_triggers

    started = []

    def start(settings, host_name, intervals=LeaseIntervals(renew=1.0, acquire=1.0, expiration=5.0),
              handler=None):
        host = start_worker(settings)
        listener = TriggerListener(trigger_listener_classpath, cosmos_triggers(host.functions), settings,
                                   host.invoke, host_name=host_name, intervals=intervals, handler=handler,
                                   stderr_path=tmp_path / f"{host_name}.stderr")
        listener.worker = host
        started.append(listener)
        return listener

    yield start
    for listener in started:
        listener.close()


def pytest_terminal_summary(terminalreporter):
    if "classpath" in _listener_build:
        from devhost.trigger_listener import AZURE_COSMOS_VERSION, PROGRAM

        terminalreporter.write_sep("-", "Microsoft's change feed processor")
        terminalreporter.write_line(f"azure-cosmos {AZURE_COSMOS_VERSION} (Java): {PROGRAM.cost_summary()}")
