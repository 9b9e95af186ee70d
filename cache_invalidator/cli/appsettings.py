"""The app settings the CLI works with: the environment, optionally overlaid by a local.settings.json."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Optional


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


def effective_settings(environ: Mapping[str, str], settings_file: Optional[str]) -> dict[str, str]:
    """The environment, with the file's Values taking precedence when a file is given."""
    merged = dict(environ)
    if settings_file is not None:
        merged.update(load_values(settings_file))
    return merged
