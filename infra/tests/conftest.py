"""Fixtures that plan infra/ with the real Terraform 1.5.7 and the azurerm and azapi providers.

scripts/check-infra builds all three, writes the CLI configuration that takes the
providers from their builds (TF_CLI_CONFIG_FILE) and runs these tests with TERRAFORM
set. The plans run offline: see token_endpoint.py.
"""

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA = REPO_ROOT / "infra"
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from token_endpoint import ManagedIdentityEndpoint  # noqa: E402

SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"
GROUP = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/openwhisk"
COSMOSDB_ACCOUNT_ID = f"{GROUP}/providers/Microsoft.DocumentDB/databaseAccounts/openwhisk-cosmos"
KEY_VAULT_ID = f"{GROUP}/providers/Microsoft.KeyVault/vaults/openwhisk-kv"
ACTION_GROUP_ID = f"{GROUP}/providers/Microsoft.Insights/actionGroups/openwhisk-oncall"
WORKSPACE_ID = f"{GROUP}/providers/Microsoft.OperationalInsights/workspaces/openwhisk-logs"
SUBNET_ID = f"{GROUP}/providers/Microsoft.Network/virtualNetworks/eastus-vnet/subnets/functions"
# Each region's Function App: an azapi_resource whose body is the request Azure gets.
SITE = 'module.region["{}"].azapi_resource.function_app'

# The shared inputs every test starts from; tests add regions and change what they test.
SHARED = {
    "subscription_id": SUBSCRIPTION,
    "resource_group_name": "openwhisk",
    "name_prefix": "owcache",
    "cosmosdb_account_id": COSMOSDB_ACCOUNT_ID,
    "cosmosdb_database_name": "openwhisk",
    "key_vault_id": KEY_VAULT_ID,
    "action_group_id": ACTION_GROUP_ID,
    # OpenWhisk's commented example, 10 h: the pending-change alert then fires at 9 h.
    "soft_delete_ttl_seconds": 36000,
}


def sasl_region(name, **changes):
    """Region `name` (its cluster_id unless changed), with Kafka over SASL_SSL and SCRAM, its password in Key Vault."""
    return {"cluster_id": name, "kafka_hosts": f"kafka-0.{name}.example.net:9093,kafka-1.{name}.example.net:9093",
            "kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "SCRAM-SHA-512",
            "kafka_sasl_username": "cache-invalidator", "kafka_sasl_password_secret_name": f"kafka-password-{name}",
            **changes}


class Terraform:
    """The built terraform binary with the environment scripts/check-infra prepared."""

    def __init__(self, binary, workspace, token_endpoint):
        self.binary = binary
        self.workspace = workspace
        self.env = dict(os.environ, CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1", TF_INPUT="0",
                        **token_endpoint.environment())
        self._initialised = {}

    def run(self, directory, *args, check=True):
        env = dict(self.env, TF_DATA_DIR=str(self._data_dir(directory)))
        result = subprocess.run([self.binary, *args, "-no-color"], cwd=directory, env=env, capture_output=True,
                                text=True, stdin=subprocess.DEVNULL, timeout=600)
        if check and result.returncode != 0:
            raise AssertionError(f"terraform {' '.join(args)} in {directory} failed:\n{result.stdout}{result.stderr}")
        return result

    def _data_dir(self, directory):
        if directory not in self._initialised:
            data_dir = self.workspace / f"data-{len(self._initialised)}"
            self._initialised[directory] = data_dir
            env = dict(self.env, TF_DATA_DIR=str(data_dir))
            # `get`, not `init`: init asks the registry even for an overridden provider.
            result = subprocess.run([self.binary, "get", "-no-color"],
                                    cwd=directory, env=env, capture_output=True, text=True, timeout=600)
            assert result.returncode == 0, result.stdout + result.stderr
        return self._initialised[directory]

    def plan(self, variables, directory=INFRA, state=None):
        """`terraform plan` of directory with these variables: (exit code, its diagnostics, the plan or None).

        -json gives each diagnostic whole, where the human output wraps it at 78 columns. With `state`, a
        state the plan starts from (never refreshed: nothing is asked of Azure), a state document (version 4) or a
        file holding one; without, an empty one. `Plan.file` and `Plan.directory` are for `terraform graph
        -plan=<Plan.file>`.
        """
        name = uuid.uuid4().hex[:8]
        var_file = self.workspace / f"{name}.tfvars.json"
        var_file.write_text(json.dumps(variables, indent=2))
        plan_file = self.workspace / f"{name}.plan"
        # No state file is ever written into the repository: a plan from nothing keeps its (empty) state in the
        # workspace; a plan from a state runs in a copy of the directory that holds it as its local state, where
        # `terraform graph -plan=` finds the state the plan was made from.
        state_file = self.workspace / f"{name}.tfstate"
        if state is not None:
            directory = shutil.copytree(directory, self.workspace / f"{name}-deployed",
                                        ignore=shutil.ignore_patterns("tests", "examples", ".terraform*"))
            state_file = directory / "terraform.tfstate"
            state_file.write_text(json.dumps(state, indent=2) if isinstance(state, dict) else Path(state).read_text())
        result = self.run(directory, "plan", "-json", "-refresh=false", "-lock=false", f"-var-file={var_file}",
                          f"-state={state_file}", f"-out={plan_file}", check=False)
        diagnostics = []
        for line in result.stdout.splitlines():
            message = json.loads(line) if line.startswith("{") else {}
            if message.get("type") == "diagnostic":
                diagnostic = message["diagnostic"]
                diagnostics.append(f"{diagnostic['severity']}: {diagnostic['summary']}: {diagnostic.get('detail', '')}")
        text = "\n".join(diagnostics) + result.stderr
        if result.returncode != 0:
            return result.returncode, text, None
        shown = self.run(directory, "show", "-json", str(plan_file))
        plan = Plan(json.loads(shown.stdout))
        plan.file, plan.directory = plan_file, directory
        return 0, text, plan


class Plan:
    """A plan as `terraform show -json` gives it, with the lookups the tests need."""

    def __init__(self, document):
        self.document = document
        self.changes = {change["address"]: change for change in document["resource_changes"]}

    def after(self, address):
        """The planned arguments of a resource; values known only after apply are absent."""
        return self.changes[address]["change"]["after"]

    def unknown(self, address):
        """The arguments of a resource known only after apply (true where unknown)."""
        return self.changes[address]["change"]["after_unknown"]

    def request(self, address):
        """The body an azapi_resource sends, as planned: None where the value is known only after apply."""
        change = self.changes[address]["change"]
        return _with_unknowns(change["after"]["body"], (change["after_unknown"] or {}).get("body"))

    def site_settings(self, region):
        """The app settings a region's Function App request carries, by name (None: known after apply)."""
        pairs = self.request(SITE.format(region))["properties"]["siteConfig"]["appSettings"]
        return {pair["name"]: pair["value"] for pair in pairs}

    def addresses(self, resource_type):
        return sorted(address for address, change in self.changes.items() if change["type"] == resource_type)

    def config(self, module_path, address):
        """The configuration of a resource (expressions and their references), e.g. ("region", "azurerm_...this")."""
        module = self.document["configuration"]["root_module"]
        for name in module_path:
            module = module["module_calls"][name]["module"]
        return next(resource for resource in module["resources"] if resource["address"] == address)

    def app_settings(self, region):
        """A region's app settings: known values, and None for those known only after apply.

        Read from the root's app_settings output, which is the region module's
        local.app_settings: the provider plans the Function App's app_settings as wholly
        unknown once one value is (test_regions.py checks both come from that local).
        """
        change = self.document["output_changes"]["app_settings"]
        known = change["after"].get(region, {})
        unknown = (change["after_unknown"] or {}).get(region) or {}
        return {**known, **{name: None for name, is_unknown in unknown.items() if is_unknown}}


def _with_unknowns(known, unknown):
    """A planned value with None at each place after_unknown marks, keeping its shape."""
    if unknown is True:
        return None
    if isinstance(unknown, dict):
        known = dict(known or {})
        for key, inner in unknown.items():
            known[key] = _with_unknowns(known.get(key), inner)
        return known
    if isinstance(unknown, list) and isinstance(known, list):
        return [_with_unknowns(item, inner) for item, inner in zip(known, unknown)] + known[len(unknown):]
    return known


@pytest.fixture(scope="session")
def token_endpoint():
    endpoint = ManagedIdentityEndpoint()
    yield endpoint
    endpoint.close()


@pytest.fixture(scope="session")
def terraform(tmp_path_factory, token_endpoint):
    binary = os.environ.get("TERRAFORM")
    if not binary or not shutil.which(binary):
        pytest.fail("TERRAFORM is not set to the terraform binary; run these tests through scripts/check-infra, "
                    "which builds Terraform 1.5.7 and the azurerm and azapi providers and configures them")
    tools = os.environ.get("INFRA_TOOLS_DIR")
    if not tools or os.environ.get("TF_CLI_CONFIG_FILE") != os.path.join(tools, "terraformrc"):
        pytest.fail("TF_CLI_CONFIG_FILE does not point at scripts/check-infra's CLI configuration, which takes "
                    "the azurerm and azapi providers from their builds")
    return Terraform(binary, tmp_path_factory.mktemp("terraform"), token_endpoint)


# Two regions with Kafka over SASL_SSL (one with producer properties, plain and secret)
# and a third whose Kafka is private, reached through its subnet.
REGIONS = {
    "westeurope": sasl_region("westeurope", cosmosdb_preferred_locations=["West Europe", "North Europe"],
                              cosmosdb_start_from_time="2026-05-01T09:55:00Z",
                              kafka_producer_properties={"linger.ms": "5"},
                              kafka_producer_secret_names={"ssl.key.password": "kafka-key-password-westeurope"}),
    "eastus": sasl_region("eastus"),
    "westus2": {"cluster_id": "westus2", "kafka_hosts": "10.1.0.4:9092", "subnet_id": SUBNET_ID,
                "cosmosdb_change_feed_mode": "AllVersionsAndDeletes"},
}


@pytest.fixture(scope="session")
def regions_plan(terraform):
    """The plan of two SASL regions and a third whose Kafka is private and that reads the all-versions-and-deletes
    feed, from the shared inputs."""
    code, output, plan = terraform.plan({**SHARED, "regions": REGIONS})
    assert code == 0, output
    return plan


@pytest.fixture(scope="session")
def two_regions_plan(terraform):
    """The plan of infra/examples/two-regions as it is, the example docs/DEPLOY.md deploys from."""
    code, output, plan = terraform.plan(
        {"subscription_id": SUBSCRIPTION, "resource_group_name": "openwhisk", "cosmosdb_account_id": COSMOSDB_ACCOUNT_ID,
         "key_vault_id": KEY_VAULT_ID, "action_group_id": ACTION_GROUP_ID},
        directory=INFRA / "examples" / "two-regions")
    assert code == 0, output
    return plan
