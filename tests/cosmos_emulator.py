"""pytest plugin: a Cosmos DB emulator for the tests.

Load it from tests/conftest.py with ``pytest_plugins = ["tests.cosmos_emulator"]``.

Fixtures
--------
cosmos_emulator (session)
    A ``CosmosEmulator``. Started once per session with
    ``scripts/cosmos up --dir <pytest tmp dir>`` and taken down (its data is
    in memory only) at the end. When ``COSMOSDB_TEST_CONNECTION`` holds a
    connection string, that account is used instead and nothing is started
    or stopped (``managed`` is False). Skips, saying so, only when cargo,
    which builds the emulator, is missing.

cosmos_database (function)
    A new database with a random name in that account, deleted after the
    test: each test starts from nothing, on the emulator as on a real account.

emulator_only (function)
    Skips a test that describes the emulator itself, rather than what any
    account does, when ``COSMOSDB_TEST_CONNECTION`` names another account.

cosmos_emulator_without_avad (session)
    A second emulator, started with ``scripts/cosmos up
    --without-all-versions-and-deletes``: an account without the all versions
    and deletes change feed (no continuous backup, or no opt-in), whose reads
    of that feed answer 400 as the service answers them. Skips with
    ``COSMOSDB_TEST_CONNECTION``, whose account cannot be told to lack it.

cosmos_database_without_avad (function)
    As ``cosmos_database``, in that account.

cosmos_requests (function)
    The requests the emulator receives from the moment the fixture starts (or
    ``mark()``), as ``tests.data_plane_access.Request`` values: the started
    emulator logs each one (COSMOS_EMULATOR_REQUEST_LOG). Skips, saying so,
    on an external account, which logs nothing here.

The emulator is built (``scripts/cosmos build``, a few minutes the first
time, about a second when up to date) right after collection when a
collected test uses it, so that the build does not count against the first
test's timeout. Build and start times are shown in the terminal summary.
"""

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "scripts" / "cosmos"

BUILD_TIMEOUT = 1800  # a cold build on a busy 2-core machine
UP_TIMEOUT = 120
EXIT_NO_CARGO = 4  # scripts/cosmos's exit code
# In the emulator's state dir: one JSON line per request (scripts/cosmos-emulator).
REQUEST_LOG = "requests.jsonl"

NO_CARGO = ("cargo not found on PATH: it builds the Cosmos DB emulator (scripts/cosmos). Install Rust, "
            "or set COSMOSDB_TEST_CONNECTION to a Cosmos DB connection string to run against that account")

_costs: dict[str, str] = {}
_build_error: list[str] = []


class CosmosEmulatorError(RuntimeError):
    """scripts/cosmos failed."""


class CosmosEmulator:
    """A Cosmos DB account for tests.

    Attributes: ``connection_string`` (``AccountEndpoint=...;AccountKey=...;``),
    ``endpoint``, ``key``, ``managed`` (False for an external account),
    ``state_dir`` (None when external). ``client()`` opens an azure-cosmos
    client for it.
    """

    def __init__(self, connection_string, state_dir=None):
        pairs = dict(part.split("=", 1) for part in connection_string.strip().split(";") if "=" in part)
        self.connection_string = connection_string.strip()
        self.endpoint = pairs["AccountEndpoint"]
        self.key = pairs["AccountKey"]
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.managed = state_dir is not None
        self.request_log = self.state_dir / REQUEST_LOG if self.managed else None

    def __repr__(self):  # never the key
        how = f"managed, dir={self.state_dir}" if self.managed else "external"
        return f"CosmosEmulator({self.endpoint!r}, {how})"

    @classmethod
    def up(cls, state_dir, timeout=UP_TIMEOUT, all_versions_and_deletes=True):
        options = () if all_versions_and_deletes else ("--without-all-versions-and-deletes",)
        log = Path(state_dir) / REQUEST_LOG
        out = _run("up", "--dir", str(state_dir), *options, timeout=timeout,
                   env={"COSMOS_EMULATOR_REQUEST_LOG": str(log)})
        lines = out.strip().splitlines()
        if not lines or not lines[-1].startswith("COSMOSDB="):
            raise CosmosEmulatorError(f"scripts/cosmos printed no COSMOSDB line:\n{out}")
        return cls(lines[-1].split("=", 1)[1], state_dir)

    def down(self, timeout=30):
        """Stop the emulator and remove its files."""
        if not self.managed:
            raise CosmosEmulatorError(f"{self.endpoint} is external (COSMOSDB_TEST_CONNECTION); it is never stopped")
        _run("down", "--dir", str(self.state_dir), timeout=timeout)

    def client(self):
        from azure.cosmos import CosmosClient

        # Only a local endpoint (the emulator, or Microsoft's with its self-signed certificate) skips TLS checks.
        verify = urlparse(self.endpoint).hostname not in ("localhost", "127.0.0.1", "::1")
        return CosmosClient(self.endpoint, credential=self.key, connection_verify=verify)


def _run(*args, timeout, env=None):
    try:
        proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired as e:
        raise CosmosEmulatorError(f"scripts/cosmos {' '.join(args)} did not finish within {timeout}s\n"
                                  f"{e.stderr or ''}") from None
    if proc.returncode == EXIT_NO_CARGO:
        raise _NoCargo()
    if proc.returncode != 0:
        raise CosmosEmulatorError(f"scripts/cosmos {' '.join(args)} failed (exit {proc.returncode}):\n"
                                  f"{proc.stderr}{proc.stdout}")
    return proc.stdout


class _NoCargo(Exception):
    pass


def _external():
    return os.environ.get("COSMOSDB_TEST_CONNECTION", "").strip()


def pytest_collection_modifyitems(session, config, items):
    """Builds the emulator before any test runs, outside every test's timeout, when a test needs it."""
    needs_it = ("cosmos_emulator", "cosmos_emulator_without_avad")
    if _external() or not any(set(needs_it) & set(getattr(item, "fixturenames", ())) for item in items):
        return
    if shutil.which("cargo") is None:
        return  # the fixture skips, saying so
    started = time.monotonic()
    try:
        _run("build", timeout=BUILD_TIMEOUT)
    except _NoCargo:
        return
    except CosmosEmulatorError as e:
        _build_error.append(str(e))
        return
    _costs["build (or check that the build is up to date)"] = f"{time.monotonic() - started:.1f} s"


@pytest.fixture(scope="session")
def cosmos_emulator(tmp_path_factory):
    external = _external()
    if external:
        account = CosmosEmulator(external)
        _register_secret(account.key)
        yield account
        return
    yield from _managed_emulator(tmp_path_factory, "cosmos-emulator", "scripts/cosmos up (ready to serve)")


@pytest.fixture(scope="session")
def cosmos_emulator_without_avad(tmp_path_factory):
    if _external():
        pytest.skip("COSMOSDB_TEST_CONNECTION names an account that cannot be told to lack the all versions and "
                    "deletes change feed")
    yield from _managed_emulator(tmp_path_factory, "cosmos-emulator-without-avad",
                                 "scripts/cosmos up --without-all-versions-and-deletes (ready to serve)",
                                 all_versions_and_deletes=False)


def _managed_emulator(tmp_path_factory, name, cost, **options):
    """Starts an emulator of scripts/cosmos for the session, or skips (no cargo) or fails saying why."""
    if shutil.which("cargo") is None:
        pytest.skip(NO_CARGO)
    if _build_error:
        pytest.fail(f"could not build the Cosmos DB emulator: {_build_error[0]}", pytrace=False)
    state_dir = tmp_path_factory.mktemp(name)
    started = time.monotonic()
    try:
        emulator = CosmosEmulator.up(state_dir, **options)
    except _NoCargo:
        pytest.skip(NO_CARGO)
    except (CosmosEmulatorError, OSError) as e:
        pytest.fail(f"could not start the Cosmos DB emulator: {e}", pytrace=False)
    _costs[cost] = f"{time.monotonic() - started:.2f} s"
    try:
        yield emulator
    finally:
        emulator.down()


@pytest.fixture
def emulator_only(cosmos_emulator):
    """Skips a test that describes the emulator itself when the tests run against another account."""
    if not cosmos_emulator.managed:
        pytest.skip("describes the emulator that scripts/cosmos starts; COSMOSDB_TEST_CONNECTION is another account")


@pytest.fixture
def cosmos_database(cosmos_emulator):
    """A new, empty database (random name), deleted after the test."""
    yield from _database(cosmos_emulator)


@pytest.fixture
def cosmos_database_without_avad(cosmos_emulator_without_avad):
    """A new, empty database in the account without the all versions and deletes change feed."""
    yield from _database(cosmos_emulator_without_avad)


def _database(account):
    client = account.client()
    name = f"test-{uuid.uuid4().hex[:10]}"
    database = client.create_database(name)
    try:
        yield database
    finally:
        client.delete_database(name)
        client.close()


class RequestLog:
    """The emulator's requests from a mark on."""

    def __init__(self, path):
        self.path = Path(path)
        self.mark()

    def mark(self):
        """From now on: requests logged before are left out."""
        self.start = self.path.stat().st_size if self.path.exists() else 0

    def requests(self):
        from tests.data_plane_access import read_log

        return read_log(self.path, self.start) if self.path.exists() else []


@pytest.fixture
def cosmos_requests(cosmos_emulator):
    if cosmos_emulator.request_log is None:
        pytest.skip("an external account (COSMOSDB_TEST_CONNECTION) logs no requests here")
    return RequestLog(cosmos_emulator.request_log)


def _register_secret(value):
    """A real account's key must never be logged; tests.secret_scan checks that, when loaded."""
    try:
        from tests.secret_scan import register_secret
    except ImportError:
        return
    register_secret(value)


def pytest_terminal_summary(terminalreporter):
    if _costs:
        terminalreporter.write_sep("-", "Cosmos DB emulator")
        for what, cost in _costs.items():
            terminalreporter.write_line(f"{what}: {cost}")
