"""The documents hold to the code where the code can say it: each test reads a fact from the code and finds
it in README.md, docs/DEPLOY.md or docs/OPERATIONS.md, so that a change to the code cannot leave them behind."""

import io
import re
import subprocess
import sys
from pathlib import Path

from cache_invalidator.cli.appsettings import PRECEDENCE
from cache_invalidator.cli.check import run_check
from cache_invalidator.lease_watch import _LEVELS, _WATCH_LINE, Lease, PendingWork, WatchRun, judge_region, line_values
from cache_invalidator.producer import built_in_sasl_mechanisms
from cache_invalidator.settings import WatchSettings
from tests.app_loading import load_function_app
from tests.test_cli_check_cosmos import facts, lease

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
DEPLOY = (ROOT / "docs" / "DEPLOY.md").read_text()
OPERATIONS = (ROOT / "docs" / "OPERATIONS.md").read_text()
NUMBERS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}


def section(text, heading):
    """The text under a markdown heading, up to the next heading of the same or a higher level."""
    level = heading.split(" ")[0]
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    ends = [m.start() for m in re.finditer(r"^#{1,%d} " % len(level), text[start:], re.M)]
    return text[start:start + ends[0]] if ends else text[start:]


def words(text):
    return " ".join(text.replace("\n>", "\n").split())


# -- the functions ------------------------------------------------------------------------------


def test_deploys_function_list_is_the_apps(monkeypatch, app_settings):
    app = load_function_app(monkeypatch, app_settings)
    sentence = words(DEPLOY).split('--query "[].name"` lists ', 1)[1].split(".", 1)[0]
    assert set(re.findall(r"`([a-z_]+)`", sentence)) == set(app.indexed_functions), sentence


# -- check's sections ---------------------------------------------------------------------------


def report_sections(text):
    """The section titles of a check report: every block between the title's and the summary's."""
    blocks = [block for block in text.strip("\n").split("\n\n") if block.strip()]
    return [block.splitlines()[0] for block in blocks[1:-1]]


def check_sections(app_settings):
    """Every section `check` prints, from a run with all of them: the real broker, Cosmos DB facts as read."""
    out = io.StringIO()
    run_check({**app_settings, "CLUSTER_ID": "eu"}, out, source="test",
              gather=lambda env, trigger, *, timeout: facts([lease("eu-whisks", "whisks")]),
              watch_look=lambda: WatchRun("eu", []))
    return report_sections(out.getvalue())


def test_operations_lists_checks_sections_as_check_prints_them(app_settings):
    printed = check_sections(app_settings)
    account = section(OPERATIONS, "## `check`").split("\n### ", 1)[0]
    listed = re.findall(r"^- \*\*(.+?)\*\*", account, re.M)
    assert listed == printed
    assert f"in {NUMBERS[len(printed)]} sections" in words(account)


def test_operations_example_report_has_checks_sections(app_settings):
    example = section(OPERATIONS, "### Example").split("```")[1]
    # The example begins with the command line, which the report does not print.
    assert report_sections(example.split("\n", 2)[2]) == check_sections(app_settings)


def test_check_help_names_every_section(app_settings):
    help_text = subprocess.run([sys.executable, "-m", "cache_invalidator", "check", "--help"], cwd=ROOT,
                               capture_output=True, text=True, timeout=60).stdout
    printed = check_sections(app_settings)
    assert f"in {NUMBERS[len(printed)]} sections" in words(help_text)
    for title in printed:
        assert f"{title.split(' (')[0]}:" in help_text, title


def test_operations_says_which_of_file_and_environment_wins_as_the_cli_does():
    assert PRECEDENCE in words(section(OPERATIONS, "## Settings"))


# -- the lease watch's words --------------------------------------------------------------------


def example_watch_line():
    """The line README and OPERATIONS.md show: a region whose four leases no instance renewed for ten minutes."""
    now = 1_800_000_000.0
    renewed = (612.4, 610.0, 605.2, 601.7)
    leases = [Lease(f"l{i}", str(i), "eastus-host-1", now - ago, f'"{lsn}"', None, "dotnet")
              for i, (ago, lsn) in enumerate(zip(renewed, (118, 120, 131, 140)))]
    pending = {"l0": PendingWork(4, now - 598.0), "l1": PendingWork(2, now - 590.0), "l2": PendingWork(1, now - 12.0),
               "l3": PendingWork(0)}
    finding = judge_region("eastus", "whisks", "eastus-whisks", leases, pending, WatchSettings(), now)
    return _WATCH_LINE % line_values(WatchRun("westeurope", [finding], request_charge=20.0, duration_ms=41.3), finding)


def test_readmes_watch_line_is_the_one_the_code_writes():
    [shown] = [line for line in README.splitlines() if line.startswith("Lease watch watcher=")]
    assert shown == example_watch_line()


def test_operations_watch_line_is_the_one_the_code_writes():
    [shown] = [line for line in OPERATIONS.splitlines() if line.startswith("Lease watch watcher=")]
    assert shown == example_watch_line()


def test_operations_has_a_row_for_each_status_at_its_level():
    rows = re.findall(r"^\| `([a-z]+)` \| ([A-Z]+) \|", section(OPERATIONS, "## The lease watch"), re.M)
    assert {status: level for status, level in rows} == {
        status: {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR"}[level] for status, level in _LEVELS.items()}


# -- Kafka security -----------------------------------------------------------------------------


def test_readmes_sasl_mechanisms_are_those_the_kafka_client_is_built_with():
    [row] = [line for line in README.splitlines() if line.startswith("| `KAFKA_SASL_MECHANISM` |")]
    listed = row.split(" | ")[2].split(", as the brokers expect")[0]
    assert tuple(re.findall(r"`([A-Z0-9-]+)`", listed)) == built_in_sasl_mechanisms()


# -- layout -------------------------------------------------------------------------------------


def test_readmes_layout_names_every_script_and_top_level_folder():
    layout = section(README, "## Layout")
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    scripts = {path.split("/")[1] for path in tracked if path.startswith("scripts/") and path.count("/") == 1}
    folders = {path.split("/")[0] for path in tracked if "/" in path}
    missing = ([f"scripts/{name}" for name in sorted(scripts) if f"`scripts/{name}`" not in layout]
               + [folder for folder in sorted(folders) if f"`{folder}/" not in layout])
    assert missing == []
