"""The deployment package (scripts/package): what it holds, and that it runs on its own.

The package is built once for this module, for the Function Apps' Python, and unpacked
into an empty folder. A clean interpreter of that Python version (-I -S: no environment
variables of Python's, no site-packages) with only that folder and its
.python_packages/lib/site-packages on the path then imports function_app.py and indexes
it, as the worker does in Azure. A dependency left out of the package, a wheel for the
wrong platform or Python, or a file the app needs but the zip lacks fails here.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_SCRIPT = ROOT / "scripts" / "package"
SITE_PACKAGES = ".python_packages/lib/site-packages"
# The version scripts/package builds for by default, which infra/tests hold equal to the
# Function Apps' python_version.
PYTHON_VERSION = re.search(r'^DEFAULT_PYTHON_VERSION = "([0-9.]+)"', PACKAGE_SCRIPT.read_text(), re.M).group(1)

# Runs in the clean interpreter: index the app, report what it loaded from where.
INDEX_APP = r"""
import json, sys
app_root = sys.argv[1]
sys.path[:0] = [app_root, app_root + "/.python_packages/lib/site-packages"]
import function_app
triggers = {f.get_function_name(): f.get_trigger().get_dict_repr() for f in function_app.app.get_functions()}
outside = sorted(
    getattr(module, "__file__", None) or "" for module in list(sys.modules.values())
    if (getattr(module, "__file__", None) or "").find("site-packages") >= 0
    and not module.__file__.startswith(app_root)
)
cosmos_at_indexing = "azure.cosmos" in sys.modules
# What the lease watch imports on its first run, from the package too.
import azure.cosmos, azure.identity, cache_invalidator.lease_watch
watch_from = sorted({m.__file__.split("site-packages/")[0] for m in (azure.cosmos, azure.identity)})
print(json.dumps({"version": list(sys.version_info[:2]), "triggers": triggers,
                  "loaded_from_outside": outside, "path": sys.path, "cosmos_at_indexing": cosmos_at_indexing,
                  "watch_from": watch_from}, default=str))
"""


def _interpreter(version):
    """A real interpreter of that Python version, or None: PATH first, then pyenv's versions."""
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(os.path.join(pyenv_root, "versions", f"{version}.*", "bin", f"python{version}")))
    for candidate in filter(None, candidates):
        try:
            probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2] == (%s), sys.executable)"
                                    % version.replace(".", ", ")], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        matches, _, executable = probe.stdout.strip().partition(" ")
        if probe.returncode == 0 and matches == "True":
            return executable
    return None


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """The zip scripts/package builds for the default Python."""
    output = tmp_path_factory.mktemp("package") / "app.zip"
    result = subprocess.run([sys.executable, str(PACKAGE_SCRIPT), "--output", str(output)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == f"PACKAGE={output}"
    return output


@pytest.fixture(scope="module")
def unpacked(package, tmp_path_factory):
    """The package unzipped into an empty folder."""
    folder = tmp_path_factory.mktemp("unpacked")
    assert not any(folder.iterdir())
    with zipfile.ZipFile(package) as archive:
        archive.extractall(folder)
    return folder


def test_package_holds_only_the_app_and_its_requirements(package):
    with zipfile.ZipFile(package) as archive:
        names = archive.namelist()
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"function_app.py", "host.json", "requirements.txt", "cache_invalidator", ".python_packages"}
    assert not [name for name in names if name.startswith("cache_invalidator/cli/")]
    assert "cache_invalidator/__main__.py" not in names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    installed = {name.split("/")[3] for name in names if name.startswith(SITE_PACKAGES + "/")}
    assert {"azure", "confluent_kafka"} <= installed
    # azure-cosmos and azure-identity for the lease watch (installed as parts of the `azure` namespace).
    assert {"azure/cosmos", "azure/identity"} <= {"/".join(name.split("/")[3:5]) for name in names
                                                   if name.startswith(SITE_PACKAGES + "/azure/")}
    # Only requirements.txt: none of the test, CLI or benchmark tools.
    assert not installed & {"pytest", "hypothesis", "tqdm"}


def test_packaged_wheels_are_for_linux_x86_64_and_the_configured_python(package):
    with zipfile.ZipFile(package) as archive:
        wheel_files = [name for name in archive.namelist() if name.endswith(".dist-info/WHEEL")]
        tags = [line.split(":", 1)[1].strip() for name in wheel_files
                for line in archive.read(name).decode().splitlines() if line.startswith("Tag:")]
    native = [tag for tag in tags if not tag.endswith("-none-any")]
    assert native, tags
    cp = "cp" + PYTHON_VERSION.replace(".", "")
    for tag in native:
        interpreter, abi, platform = tag.split("-")
        if abi == "abi3":
            # The stable ABI (cryptography's wheels, under azure-identity): built for a CPython up to ours.
            assert interpreter.startswith("cp3") and int(interpreter[3:]) <= int(cp[3:]), tag
        else:
            assert (interpreter, abi) == (cp, cp), tag
        assert platform.startswith("manylinux") and platform.endswith("_x86_64"), tag


def test_unpacked_package_indexes_the_three_functions_in_a_clean_interpreter(unpacked):
    python = _interpreter(PYTHON_VERSION)
    if python is None:
        pytest.skip(f"no Python {PYTHON_VERSION} interpreter on PATH or under pyenv; the package is built for it")
    # The settings a region's Function App gets from infra/ (identity-based Cosmos DB).
    settings = {"COSMOSDB_NAME": "openwhisk", "COSMOSDB__accountEndpoint": "https://account.documents.azure.com:443/",
                "COSMOSDB__credential": "managedidentity", "COSMOSDB_CREATE_LEASE_CONTAINER": "false",
                "CLUSTER_ID": "westeurope", "KAFKA_HOSTS": "kafka.westeurope.example.net:9093"}
    result = subprocess.run([python, "-I", "-S", "-c", INDEX_APP, str(unpacked)], env=settings, cwd=unpacked,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["version"] == [int(part) for part in PYTHON_VERSION.split(".")]
    assert report["loaded_from_outside"] == []
    assert (report["cosmos_at_indexing"], report["watch_from"]) == (False, [f"{unpacked}/.python_packages/lib/"])
    assert [entry for entry in report["path"] if "site-packages" in entry] == [f"{unpacked}/{SITE_PACKAGES}"]
    triggers = report["triggers"]
    assert sorted(triggers) == ["invalidate_subjects", "invalidate_whisks", "watch_leases"]
    assert triggers["watch_leases"]["type"] == "timerTrigger"
    prefixes = {name: trigger["leaseContainerPrefix"] for name, trigger in triggers.items()
                if trigger["type"] == "cosmosDBTrigger"}
    assert prefixes == {"invalidate_whisks": "westeurope-whisks", "invalidate_subjects": "westeurope-subjects"}


def test_unpacked_package_writes_the_change_feed_mode_into_both_triggers(unpacked):
    python = _interpreter(PYTHON_VERSION)
    if python is None:
        pytest.skip(f"no Python {PYTHON_VERSION} interpreter on PATH or under pyenv; the package is built for it")
    settings = {"COSMOSDB_NAME": "openwhisk", "COSMOSDB__accountEndpoint": "https://account.documents.azure.com:443/",
                "CLUSTER_ID": "westeurope", "COSMOSDB_CHANGE_FEED_MODE": "AllVersionsAndDeletes"}
    result = subprocess.run([python, "-I", "-S", "-c", INDEX_APP, str(unpacked)], env=settings, cwd=unpacked,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    found = {name: (trigger["changeFeedMode"], trigger["leaseContainerPrefix"])
             for name, trigger in json.loads(result.stdout)["triggers"].items() if trigger["type"] == "cosmosDBTrigger"}
    assert found == {"invalidate_whisks": ("AllVersionsAndDeletes", "westeurope-whisks-avad"),
                     "invalidate_subjects": ("AllVersionsAndDeletes", "westeurope-subjects-avad")}


# Runs in the clean interpreter: what the packaged Kafka client's build can do, and the app's error for GSSAPI.
ASK_THE_KAFKA_CLIENT = r"""
import json, sys
app_root = sys.argv[1]
sys.path[:0] = [app_root, app_root + "/.python_packages/lib/site-packages"]
import confluent_kafka
from cache_invalidator.producer import InvalidationProducer, built_in_sasl_mechanisms
from cache_invalidator.settings import InvalidSetting, Settings
settings = Settings.from_env({"KAFKA_HOSTS": "kafka.example.net:9093", "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                              "KAFKA_SASL_MECHANISM": "GSSAPI", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"})
try:
    InvalidationProducer(settings.kafka)
    refused = None
except InvalidSetting as error:
    refused = error.setting
print(json.dumps({"mechanisms": built_in_sasl_mechanisms(), "gssapi_refused_as": refused,
                  "client_from": confluent_kafka.__file__}))
"""


def test_the_packaged_kafka_client_can_do_the_mechanisms_the_app_and_infra_name(unpacked):
    python = _interpreter(PYTHON_VERSION)
    if python is None:
        pytest.skip(f"no Python {PYTHON_VERSION} interpreter on PATH or under pyenv; the package is built for it")
    from cache_invalidator.producer import built_in_sasl_mechanisms

    result = subprocess.run([python, "-I", "-S", "-c", ASK_THE_KAFKA_CLIENT, str(unpacked)], cwd=unpacked,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["client_from"].startswith(f"{unpacked}/{SITE_PACKAGES}/")
    # The same wheel family as the tests' own client (README and infra/tests hold their lists to that one).
    assert tuple(report["mechanisms"]) == built_in_sasl_mechanisms() and "GSSAPI" not in report["mechanisms"]
    assert report["gssapi_refused_as"] == "KAFKA_SASL_MECHANISM"


def _packaged_requirements(archive):
    """The zip's requirements.txt as {name: version}, every line `name==version`."""
    pins = {}
    for line in archive.read("requirements.txt").decode().splitlines():
        if line and not line.startswith("#"):
            name, separator, version = line.partition("==")
            assert separator and version and ";" not in line, f"not an exact pin: {line!r}"
            pins[name.lower().replace("_", "-")] = version
    return pins


def _packaged_distributions(archive):
    """{name: version} of each dist-info in the zip's site-packages, from its METADATA."""
    found = {}
    for name in archive.namelist():
        if name.startswith(SITE_PACKAGES + "/") and name.endswith(".dist-info/METADATA"):
            headers = dict(line.split(": ", 1) for line in archive.read(name).decode().split("\n\n", 1)[0].splitlines()
                           if ": " in line)
            found[headers["Name"].lower().replace("_", "-")] = headers["Version"]
    return found


def test_packaged_requirements_pin_exactly_the_packaged_distributions(package):
    with zipfile.ZipFile(package) as archive:
        pins, distributions = _packaged_requirements(archive), _packaged_distributions(archive)
    assert pins == distributions
    assert {"azure-functions", "confluent-kafka", "orjson"} <= set(pins)


def _runtime_suite_pin():
    """The azure-functions-runtime version the local host and the runtime suite install (devhost/requirements.txt)."""
    text = (ROOT / "devhost" / "requirements.txt").read_text()
    return re.search(r"^azure-functions-runtime==([0-9][^\s;#]*)", text, re.M).group(1)


def test_requirements_pin_the_worker_runtime_for_3_13_at_the_runtime_suites_version():
    lines = [line.split("#", 1)[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    runtime = [line for line in lines if line.startswith("azure-functions-runtime")]
    assert runtime == [f'azure-functions-runtime=={_runtime_suite_pin()}; python_version == "3.13"']


def test_package_for_3_13_holds_the_worker_runtime_the_runtime_suite_tests(package):
    assert PYTHON_VERSION == "3.13"
    with zipfile.ZipFile(package) as archive:
        pins, distributions = _packaged_requirements(archive), _packaged_distributions(archive)
    assert pins["azure-functions-runtime"] == distributions["azure-functions-runtime"] == _runtime_suite_pin()


def test_package_for_3_13_holds_azure_functions_2_the_version_the_runtime_suite_tests(package):
    """azure-functions 1.26 refuses Python 3.13, so 1.x would be 1.25.0 for ever; 2.x is the library for 3.13."""
    assert PYTHON_VERSION == "3.13"
    pinned = re.search(r"^azure-functions==([0-9][^\s;#]*)", (ROOT / "devhost" / "requirements.txt").read_text(),
                       re.M).group(1)
    with zipfile.ZipFile(package) as archive:
        version = _packaged_distributions(archive)["azure-functions"]
    assert (version.split(".")[0], version) == ("2", pinned)


# Files a checkout holds besides the tracked ones, after scripts/test and scripts/run-local.
UNTRACKED_IN_A_CHECKOUT = ("local.settings.json", ".venv/bin/python", ".cache/tools/terraform", "dist/app.zip",
                           "cache_invalidator/__pycache__/handler.cpython-311.pyc", ".pytest_cache/README.md",
                           "__azurite_db_blob__.json")


def test_funcignore_leaves_a_checkout_with_exactly_the_packages_files(package, tmp_path):
    git = shutil.which("git")
    tracked = subprocess.run([git or "git", "ls-files"], cwd=ROOT, capture_output=True, text=True) if git else None
    assert tracked is not None and tracked.returncode == 0, "needs git and a checkout: .funcignore is read as gitignore"
    # A local build's packages (`pip install --target .python_packages/lib/site-packages`) are shipped.
    local_build = f"{SITE_PACKAGES}/confluent_kafka/__init__.py"
    checkout = tmp_path / "checkout"
    for name in [*tracked.stdout.splitlines(), *UNTRACKED_IN_A_CHECKOUT, local_build]:
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / name).touch()
    shutil.copy(ROOT / ".funcignore", checkout / ".funcignore")
    subprocess.run([git, "init", "-q"], cwd=checkout, check=True)
    shipped = subprocess.run([git, "ls-files", "--others", "--exclude-from=.funcignore"], cwd=checkout,
                             capture_output=True, text=True, check=True).stdout.split()
    with zipfile.ZipFile(package) as archive:
        app_files = {name for name in archive.namelist() if not name.startswith(SITE_PACKAGES + "/")}
    assert set(shipped) == app_files | {local_build}
