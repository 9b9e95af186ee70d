"""A check's report: sections of findings, problems named, secrets never shown."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import TextIO

from ..settings import PRODUCER_PREFIX, SECRET_PROPERTY_WORDS
from .appsettings import is_key_vault_reference

OK = "ok"
INFO = ""
WARNING = "WARNING"
PROBLEM = "PROBLEM"
SKIPPED = "skipped"

# Parts of a Cosmos DB connection string that are credentials.
CONNECTION_STRING_SECRETS = ("accountkey", "sharedaccesssignature", "key")


@dataclasses.dataclass
class Finding:
    status: str
    text: str


@dataclasses.dataclass
class Section:
    title: str
    findings: list[Finding] = dataclasses.field(default_factory=list)

    def ok(self, text: str) -> None:
        self.findings.append(Finding(OK, text))

    def info(self, text: str) -> None:
        self.findings.append(Finding(INFO, text))

    def warning(self, text: str) -> None:
        self.findings.append(Finding(WARNING, text))

    def problem(self, text: str) -> None:
        self.findings.append(Finding(PROBLEM, text))

    def skipped(self, text: str) -> None:
        self.findings.append(Finding(SKIPPED, text))


class Report:
    """Findings by section; rendered with every known secret replaced by ***."""

    def __init__(self, title: str, secrets: Iterable[str] = ()):
        self.title = title
        self.sections: list[Section] = []
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def section(self, title: str) -> Section:
        section = Section(title)
        self.sections.append(section)
        return section

    def _all(self, status: str) -> list[tuple[str, str]]:
        return [(s.title, f.text) for s in self.sections for f in s.findings if f.status == status]

    @property
    def problems(self) -> list[tuple[str, str]]:
        return self._all(PROBLEM)

    @property
    def warnings(self) -> list[tuple[str, str]]:
        return self._all(WARNING)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def render(self, out: TextIO) -> None:
        lines = [self.title, ""]
        for section in self.sections:
            lines.append(section.title)
            for finding in section.findings:
                status = f"{finding.status:<8}" if finding.status else " " * 8
                text_lines = finding.text.splitlines() or [""]
                lines.append(f"  {status}{text_lines[0]}")
                lines.extend(f"  {' ' * 8}{more}" for more in text_lines[1:])
            lines.append("")
        problems, warnings = self.problems, self.warnings
        if problems:
            lines.append(f"{_count(len(problems), 'problem')}, {_count(len(warnings), 'warning')}:")
            lines.extend(f"  - {title}: {text}" for title, text in problems)
        else:
            lines.append(f"All checks passed, {_count(len(warnings), 'warning')}.")
        out.write(self.scrub("\n".join(lines)) + "\n")


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def parse_connection_string(value: str) -> dict[str, str]:
    """`Name=value;...` pairs, names as written; a value may hold '=' (base64 keys end with it)."""
    pairs: dict[str, str] = {}
    for part in value.split(";"):
        name, sep, content = part.strip().partition("=")
        if sep and name.strip():
            pairs[name.strip()] = content.strip()
    return pairs


def redacted_connection_string(value: str) -> str:
    """The connection string with its credentials replaced by ***."""
    parts = []
    for name, content in parse_connection_string(value).items():
        parts.append(f"{name}={'***' if name.lower() in CONNECTION_STRING_SECRETS else content}")
    return ";".join(parts) + (";" if parts else "")


def secret_values(env: Mapping[str, str]) -> list[str]:
    """Every secret among the app settings, whether or not they parse, to scrub them from any text."""
    secrets = []
    password = env.get("KAFKA_SASL_PASSWORD")
    if password:
        secrets.extend({password, password.strip()})
    for name, value in env.items():
        if name.startswith(PRODUCER_PREFIX) and value and any(w in name.lower() for w in SECRET_PROPERTY_WORDS):
            secrets.extend({value, value.strip()})
    # A Key Vault reference is no secret, but no part of one is shown either (check says what it is).
    secrets.extend(value for value in env.values() if is_key_vault_reference(value))
    connection = env.get("COSMOSDB")
    if connection:
        for name, content in parse_connection_string(connection).items():
            if name.lower() in CONNECTION_STRING_SECRETS and content:
                secrets.append(content)
    return [s for s in secrets if s]
