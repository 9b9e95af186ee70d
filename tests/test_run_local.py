"""The README's first command, run as a new user runs it: `scripts/run-local` in a fresh checkout, then a change.

Each test copies the checkout's files (what git tracks or would track: no local.settings.json, no .kafka/ or
.cosmos/) into .cache/checkout-copy/ and runs there with an environment holding only PATH and HOME: no setting
at all. The copy's .cache is a link to this checkout's, so the broker, the emulator, the processor and the
Python 3.13 environment are the warm ones (the first run's builds are timed by hand, see docs/BENCHMARKS.md);
the copy keeps one path, so cargo builds the emulator's crate for it once. Everything else is what a user sees:
subprocesses, the values run-local prints, the command it says makes a change, SIGINT, the exit status, and
no process or listening port of the run left afterwards. No fixture of the suite is used.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COPY = ROOT / ".cache" / "checkout-copy"
PYTHON313 = Path(os.environ.get("PYTHON313") or Path.home() / ".pyenv" / "versions" / "3.13.0" / "bin" / "python3.13")
# Warm, a busy machine takes a minute. On a cold one the first run also fetches the processor and makes the
# Python 3.13 environment (the main suite runs before the runtime suite, which would make them): minutes.
READY_TIMEOUT = 900.0
CHANGE_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
PACKAGE_MESSAGE = '{"instanceId":"cache-invalidator","key":{"mainId":"guest/test-package"}}'

pytestmark = [
    pytest.mark.skipif(not PYTHON313.is_file(), reason=f"no Python 3.13 at {PYTHON313}: scripts/run-local needs it"),
    pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo not found: scripts/run-local builds the emulator"),
    pytest.mark.timeout(READY_TIMEOUT + 3 * CHANGE_TIMEOUT + STOP_TIMEOUT + 60),
]


@pytest.fixture
def checkout() -> Path:
    """A fresh copy of the checkout, without local.settings.json, with the warm .cache."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            check=True, capture_output=True).stdout.decode().split("\0")
    shutil.rmtree(COPY, ignore_errors=True)
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (COPY / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, COPY / name)
    assert not (COPY / "local.settings.json").exists()
    (COPY / ".cache").symlink_to(ROOT / ".cache")
    yield COPY
    shutil.rmtree(COPY, ignore_errors=True)


def user_environment(**settings) -> dict:
    """What a new user's shell has: PATH and HOME, and only the settings given."""
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), **settings}


class RunLocal:
    """scripts/run-local as a subprocess: its output read line by line as it comes."""

    def __init__(self, checkout: Path, env: dict):
        # --local-host only where Core Tools happens to be installed: this test is about the local host.
        args = ["scripts/run-local"] + (["--local-host"] if shutil.which("func", path=env["PATH"]) else [])
        self.process = subprocess.Popen(args, cwd=checkout, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        self.lines: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float, *, already: bool = False) -> re.Match:
        """The first line from now on (or, `already`, among those read) matching `pattern`; fails with the whole
        output otherwise."""
        for line in self.lines if already else ():
            if match := re.search(pattern, line):
                return match
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = ""
            if line is None or time.monotonic() > deadline:
                pytest.fail(f"scripts/run-local printed no line matching {pattern!r} within {timeout:.0f} s "
                            f"(exit {self.process.poll()}):\n" + "\n".join(self.lines[-80:]))
            self.lines.append(line)
            match = re.search(pattern, line)
            if match:
                return match

    def interrupt(self) -> int:
        """Ctrl-C as a terminal sends it: SIGINT to the foreground process group, run-local's."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            status = self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail("scripts/run-local did not stop within 30 s of SIGINT:\n" + "\n".join(self.lines[-40:]))
        while (line := self._queue.get(timeout=5)) is not None:
            self.lines.append(line)
        return status


def ready(run: RunLocal) -> dict:
    """The ready block's values: KAFKA_HOSTS, COSMOSDB, the lease prefixes and the command that makes a change."""
    values = {"KAFKA_HOSTS": run.wait_for(r"^  KAFKA_HOSTS=(\S+)", READY_TIMEOUT)[1],
              "COSMOSDB": run.wait_for(r"^  COSMOSDB=(\S+)", 10)[1],
              "prefixes": []}
    while not (match := run.wait_for(r"lease prefix (\S+), \d+ leases held|^  make a change", 10))[0].startswith(
            "  make"):
        values["prefixes"].append(match[1])
    values["command"] = run.wait_for(r"^    (scripts/cosmos put .*)$", 10)[1]
    return values


def make_change(checkout: Path, command: str, *extra: str) -> None:
    done = subprocess.run(shlex.split(command) + list(extra), cwd=checkout, env=user_environment(),
                          capture_output=True, text=True, timeout=CHANGE_TIMEOUT)
    assert done.returncode == 0, f"{command} failed: {done.stderr}"


def processes_in(folder: Path) -> list[str]:
    """Processes whose working directory or command line is in `folder` (every process a run starts is)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone, or a zombie waiting for its parent
        if cwd.startswith(str(folder)) or str(folder) in cmdline:
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def listening(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        return True
    except OSError:
        return False


def assert_stopped_leaving_nothing(run: RunLocal, status: int, checkout: Path, values: dict) -> None:
    """Exit status 0 after SIGINT, and no process of the run nor a port it opened left."""
    assert status == 0, "\n".join(run.lines[-20:])
    assert any(line.startswith("run-local: stopped in") for line in run.lines)
    assert processes_in(checkout) == []
    endpoint = re.search(r"AccountEndpoint=http://([^/;]+)", values["COSMOSDB"])[1]
    assert [address for address in (values["KAFKA_HOSTS"], endpoint) if listening(address)] == []


def test_on_a_fresh_checkout_the_put_command_prints_the_package_invalidation_read_back_from_kafka(checkout):
    run = RunLocal(checkout, user_environment())
    try:
        values = ready(run)
        make_change(checkout, values["command"])
        printed = run.wait_for(r"^\S+ Kafka cacheInvalidation partition=\d+ offset=\d+ key=(\S+) message=(.*)$",
                               CHANGE_TIMEOUT)
    finally:
        status = run.interrupt()
    assert values["prefixes"] == ["whisks", "subjects"]
    assert values["command"] == "scripts/cosmos put whisks guest/test-package"
    assert printed.groups() == ("guest/test-package", PACKAGE_MESSAGE)
    assert_stopped_leaving_nothing(run, status, checkout, values)


def test_with_a_cluster_id_its_own_change_is_skipped_and_another_regions_printed(checkout):
    run = RunLocal(checkout, user_environment(CLUSTER_ID="westeurope"))
    try:
        values = ready(run)
        make_change(checkout, values["command"].replace("guest/test-package", "guest/own-change"),
                    "--cluster-id", "westeurope")
        make_change(checkout, values["command"].replace("guest/test-package", "guest/other-change"),
                    "--cluster-id", "eastus")
        printed = run.wait_for(r"^\S+ Kafka cacheInvalidation .* key=(\S+) message=(.*)$", CHANGE_TIMEOUT)
        # Its own change is read and skipped: a batch line counts it.
        run.wait_for(r"Change batch container=whisks outcome=delivered .* skipped_own_cluster=1 ", CHANGE_TIMEOUT,
                     already=True)
    finally:
        status = run.interrupt()
    assert values["prefixes"] == ["westeurope-whisks", "westeurope-subjects"]
    assert printed.groups() == ("guest/other-change",
                           '{"instanceId":"cache-invalidator","key":{"mainId":"guest/other-change"}}')
    assert [line for line in run.lines if " Kafka " in line and "own-change" in line] == []
    assert_stopped_leaving_nothing(run, status, checkout, values)
