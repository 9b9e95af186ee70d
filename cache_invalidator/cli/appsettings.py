"""The app settings the CLI works with: the environment, optionally overlaid by a local.settings.json."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

# Which source wins: said here once, and printed by --help (docs/OPERATIONS.md, "Settings", repeats it).
PRECEDENCE = ("The file's values take precedence over the environment, except a Key Vault reference in the "
              "file: where the environment sets that setting, its value is used instead.")

# An app setting that App Service resolves from Key Vault for the Function App, in either form:
# @Microsoft.KeyVault(SecretUri=https://...) or @Microsoft.KeyVault(VaultName=...;SecretName=...[;SecretVersion=...]).
# A settings file downloaded from the app holds the reference, never the secret.
_KEY_VAULT_REFERENCE = re.compile(r"\s*@Microsoft\.KeyVault\((SecretUri=|VaultName=)[^)]*\)\s*", re.IGNORECASE)


class SettingsFileError(ValueError):
    """The settings file cannot be read as a local.settings.json."""


def strip_json_comments(text: str) -> str:
    """The text without // and /* */ comments outside strings, as Core Tools accepts them.

    Line breaks are kept, so that a JSON error still points at the right line.
    """
    out: list[str] = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        c = text[i]
        if in_string:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if c == '"':
                in_string = False
            i += 1
        elif c == '"':
            in_string = True
            out.append(c)
            i += 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            comment = text[i:] if end < 0 else text[i:end + 2]
            out.append("\n" * comment.count("\n"))
            i = n if end < 0 else end + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def load_values(path: "str | Path") -> dict[str, str]:
    """The "Values" of a local.settings.json, as strings; raises SettingsFileError saying what is wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SettingsFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        document = json.loads(strip_json_comments(text))
    except json.JSONDecodeError as exc:
        raise SettingsFileError(f"{path} is not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if not isinstance(document, dict):
        raise SettingsFileError(f"{path} holds no JSON object")
    if document.get("IsEncrypted") is True:
        raise SettingsFileError(f"{path} is encrypted (IsEncrypted: true): decrypt it with `func settings decrypt` first")
    values = document.get("Values")
    if values is None:
        raise SettingsFileError(f"{path} has no \"Values\" object")
    if not isinstance(values, dict):
        raise SettingsFileError(f"\"Values\" in {path} is not an object")
    result: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (int, float)):
            value = str(value)
        elif not isinstance(value, str):
            raise SettingsFileError(f"setting {name} in {path} is not a string")
        result[name] = value
    return result


def is_key_vault_reference(value: Optional[str]) -> bool:
    """True for `@Microsoft.KeyVault(SecretUri=...)` and `@Microsoft.KeyVault(VaultName=...;SecretName=...)`."""
    return value is not None and _KEY_VAULT_REFERENCE.fullmatch(value) is not None


def key_vault_references(env: Mapping[str, str]) -> list[str]:
    """The settings whose value is a Key Vault reference, sorted: no value the CLI can use."""
    return sorted(name for name, value in env.items() if is_key_vault_reference(value))


def key_vault_reference_problem(setting: str) -> str:
    """What a Key Vault reference among the settings is, and how to pass the secret itself; none of it is quoted."""
    return (f"setting {setting}: a Key Vault reference (@Microsoft.KeyVault(...)), which only App Service resolves, "
            f"for the Function App; here it is no value, and nothing is sent with it. Pass the secret itself in the "
            f"environment, whose value takes the place of a reference in the --settings file: export {setting}="
            f"\"$(az keyvault secret show --vault-name <vault> --name <secret> --query value --output tsv)\", with "
            f"the vault and secret the reference names")


@dataclasses.dataclass(frozen=True)
class EffectiveSettings:
    """The settings the CLI runs with, and those the environment gave in place of the file's Key Vault references."""

    values: dict[str, str]
    from_environment: tuple[str, ...] = ()


def effective_settings(environ: Mapping[str, str], settings_file: Optional[str]) -> EffectiveSettings:
    """The environment overlaid by the file's Values, as PRECEDENCE says."""
    merged = dict(environ)
    if settings_file is None:
        return EffectiveSettings(merged)
    replaced = []
    for name, value in load_values(settings_file).items():
        if is_key_vault_reference(value) and environ.get(name) and not is_key_vault_reference(environ[name]):
            replaced.append(name)
        else:
            merged[name] = value
    return EffectiveSettings(merged, tuple(sorted(replaced)))
