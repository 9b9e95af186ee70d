"""scripts/cosmos: its verbs, last line and exit codes, as scripts/kafka's."""

import socket
import subprocess
import sys

import pytest

from tests.cosmos_emulator import SCRIPT


@pytest.fixture
def script_dir(cosmos_emulator, tmp_path):
    """A state dir for an emulator of this test's own, taken down afterwards."""
    if not cosmos_emulator.managed:
        pytest.skip("COSMOSDB_TEST_CONNECTION is set: scripts/cosmos is not used in this run")
    yield tmp_path / "cosmos"
    cosmos(["down", "--dir", str(tmp_path / "cosmos")])


def cosmos(args, **options):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, **options)


def test_up_prints_the_connection_string_last_and_again_while_it_runs(script_dir):
    first = cosmos(["up", "--dir", str(script_dir)])
    assert first.returncode == 0, first.stderr
    line = first.stdout.strip().splitlines()[-1]
    assert line.startswith("COSMOSDB=AccountEndpoint=http://127.0.0.1:") and ";AccountKey=" in line
    again = cosmos(["up", "--dir", str(script_dir)])
    assert again.returncode == 0 and again.stdout.strip().splitlines()[-1] == line


def test_status_is_0_while_running_and_3_after_down(script_dir):
    assert cosmos(["up", "--dir", str(script_dir)]).returncode == 0
    running = cosmos(["status", "--dir", str(script_dir)])
    assert running.returncode == 0 and running.stdout.startswith("running")
    assert cosmos(["down", "--dir", str(script_dir)]).returncode == 0
    stopped = cosmos(["status", "--dir", str(script_dir)])
    assert stopped.returncode == 3 and stopped.stdout.startswith("stopped")


def test_a_taken_port_exits_6_naming_it(script_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cosmos(["up", "--dir", str(script_dir), "--port", str(port)])
    assert result.returncode == 6
    assert f"port 127.0.0.1:{port} is already in use" in result.stderr


def test_without_cargo_up_exits_4_saying_so(script_dir, tmp_path):
    empty = tmp_path / "empty-path"
    empty.mkdir()
    result = cosmos(["up", "--dir", str(script_dir)], env={"PATH": str(empty)})
    assert result.returncode == 4
    assert "cargo not found on PATH" in result.stderr


def test_up_without_all_versions_and_deletes_over_a_running_emulator_with_it_fails_saying_so(script_dir):
    assert cosmos(["up", "--dir", str(script_dir)]).returncode == 0
    result = cosmos(["up", "--dir", str(script_dir), "--without-all-versions-and-deletes"])
    assert result.returncode == 1
    assert "already running" in result.stderr and "with the all versions and deletes change feed" in result.stderr
