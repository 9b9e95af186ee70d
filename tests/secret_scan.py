"""pytest plugin: no configured secret may appear in any log record or failure text.

Load it from tests/conftest.py with ``pytest_plugins = [..., "tests.secret_scan"]``.

For every test, the root logger and the ``cache_invalidator`` loggers are set
to DEBUG and an extra handler reads every record: its formatted message, its
exception and stack text. The reports of failed test phases (the exception
text pytest shows) are read too. Each is checked against the known secrets:

- those registered with ``register_secret(value)`` (tests call it for the
  secrets they configure; the ``secured_kafka_broker`` fixture registers its
  SASL password);
- found by the plugin itself: the AccountKey of ``COSMOSDB`` in
  ``tests.app_loading.BASE_SETTINGS``, every namespace ``"key"`` of the
  subjects in ``tests/vectors/cases.json``, and, while a test runs, the
  values of ``KAFKA_SASL_PASSWORD``, of secret-looking ``KAFKA_PRODUCER_*``
  settings and the AccountKey of ``COSMOSDB`` in the environment (which is
  how tests hand settings to the app).

At the end of the session, a secret seen anywhere fails the run (exit status
1), listing the test, the phase and the logger, never the secret itself.

The handler only adds to logging: caplog keeps working, and its
``set_level``/``at_level`` win for as long as a test uses them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "vectors" / "cases.json"
LOGGERS = ("", "cache_invalidator", "cache_invalidator.kafka")
# Values this short would match by accident; no real secret is this short.
MIN_SECRET_LENGTH = 6
# Mirrors cache_invalidator.settings.SECRET_PROPERTY_WORDS, on purpose not imported:
# the scan must not trust the code it checks.
_SECRET_WORDS = ("PASSWORD", "SECRET", "KEY", "TOKEN", "JAAS", "CREDENTIAL", "PEM")

_lock = threading.Lock()
_secrets: set[str] = set()
_current = {"test": "(session setup)", "phase": "setup"}
# Texts seen during the current test, rescanned at its end against the
# secrets known by then (a test may register a secret after using it).
_pending: list[tuple[str, str, str, str]] = []


@dataclass(frozen=True)
class Finding:
    test: str
    phase: str
    where: str  # "logger NAME" or "failure report"

    def __str__(self) -> str:
        return f"{self.test} [{self.phase}]: a secret appeared in {self.where}"


_findings: list[Finding] = []


def register_secret(value: Optional[str]) -> None:
    """A value that must never be logged nor appear in a failure report."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            _secrets.add(value)


def findings() -> list[Finding]:
    with _lock:
        return list(_findings)


def forget_findings(test: str) -> None:
    """For the plugin's own test: drop the findings of a test that leaked on purpose."""
    with _lock:
        _findings[:] = [f for f in _findings if f.test != test]
        _pending[:] = [p for p in _pending if p[0] != test]


def contains_secret(text: str) -> bool:
    """True when text holds a known secret; lets a test assert without printing it."""
    return any(secret in text for secret in _all_secrets())


def assert_no_secret(text: str, what: str = "text") -> None:
    """Fails, without quoting the text or the secret, when text holds a known secret."""
    if contains_secret(text):
        raise AssertionError(f"{what} contains a configured secret (not shown)")


# -- where secrets come from ------------------------------------------------

def _account_key(connection_string: Optional[str]) -> Optional[str]:
    match = re.search(r"AccountKey=([^;]+)", connection_string or "")
    return match.group(1) if match else None


def _static_secrets() -> set[str]:
    found = set()
    try:
        from tests.app_loading import BASE_SETTINGS

        found.add(_account_key(BASE_SETTINGS.get("COSMOSDB")))
    except ImportError:
        pass
    try:
        cases = json.loads(CASES.read_text())
    except (OSError, ValueError):
        cases = []
    for case in cases:
        if case.get("container") != "subjects":
            continue
        for document in case.get("documents") or []:
            if not isinstance(document, dict):
                continue
            for namespace in document.get("namespaces") or []:
                if isinstance(namespace, dict) and isinstance(namespace.get("key"), str):
                    found.add(namespace["key"])
    return {s for s in found if s and len(s) >= MIN_SECRET_LENGTH}


def _environment_secrets() -> set[str]:
    found = {os.environ.get("KAFKA_SASL_PASSWORD"), _account_key(os.environ.get("COSMOSDB"))}
    for name, value in os.environ.items():
        if name.startswith("KAFKA_PRODUCER_") and any(w in name[15:] for w in _SECRET_WORDS):
            found.add(value)
    return {s for s in found if s and len(s) >= MIN_SECRET_LENGTH}


def _all_secrets() -> set[str]:
    with _lock:
        known = set(_secrets)
    return known | _environment_secrets()


# -- reading logs and failures ----------------------------------------------

_STANDARD_FIELDS = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def _record_text(handler: logging.Handler, record: logging.LogRecord) -> str:
    parts = []
    try:
        parts.append(record.getMessage())
    except Exception:  # a broken format string: check its parts
        parts.append(f"{record.msg} {record.args}")
    if record.exc_info:
        parts.append(handler.formatter.formatException(record.exc_info) if handler.formatter
                     else logging.Formatter().formatException(record.exc_info))
    if record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(record.stack_info)
    # Fields passed with extra= may end up as custom dimensions in a log exporter.
    parts.extend(repr(v) for k, v in record.__dict__.items() if k not in _STANDARD_FIELDS)
    return "\n".join(parts)


def _check(text: str, where: str, secrets: set[str]) -> None:
    if any(secret in text for secret in secrets):
        finding = Finding(_current["test"], _current["phase"], where)
        with _lock:
            if finding not in _findings:
                _findings.append(finding)


class _SecretScanHandler(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.NOTSET)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = _record_text(self, record)
            where = f"logger {record.name!r} ({record.levelname})"
            _check(text, where, _all_secrets())
            with _lock:
                _pending.append((_current["test"], _current["phase"], where, text))
        except Exception:  # never break the code under test
            self.handleError(record)


_handler = _SecretScanHandler()


def _rescan_pending() -> None:
    """The current test's texts against every secret known now; then forgets them."""
    secrets = _all_secrets()
    with _lock:
        pending = list(_pending)
        _pending.clear()
    saved = dict(_current)
    for test, phase, where, text in pending:
        _current.update(test=test, phase=phase)
        _check(text, where, secrets)
    _current.update(saved)


# -- pytest hooks and the autouse fixture -----------------------------------

def pytest_configure(config):
    for secret in _static_secrets():
        register_secret(secret)
    # On the root logger for the whole session, so that session fixtures'
    # logging is read too; levels are raised per test by _debug_logging.
    logging.getLogger().addHandler(_handler)
    # A non-propagating cache_invalidator logger would bypass the root handler.
    for name in LOGGERS[1:]:
        logger = logging.getLogger(name)
        if not logger.propagate and _handler not in logger.handlers:
            logger.addHandler(_handler)


def pytest_unconfigure(config):
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _handler in logger.handlers:
            logger.removeHandler(_handler)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    _current.update(test=item.nodeid, phase=call.when)
    if report.failed:
        texts = [report.longreprtext]
        if call.excinfo is not None:
            texts += [str(call.excinfo.value), repr(call.excinfo.value)]
        _check("\n".join(texts), "failure report", _all_secrets())
    if call.when == "teardown":
        _rescan_pending()


def pytest_runtest_logstart(nodeid, location):
    _current.update(test=nodeid, phase="setup")


def pytest_runtest_call(item):
    _current.update(test=item.nodeid, phase="call")


def pytest_runtest_teardown(item):
    _current.update(test=item.nodeid, phase="teardown")


def pytest_runtest_logfinish(nodeid, location):
    _current.update(test="(between tests)", phase="-")


@pytest.fixture(autouse=True)
def _debug_logging():
    """Every test runs with the root and cache_invalidator loggers at DEBUG."""
    saved = [(logging.getLogger(name), logging.getLogger(name).level) for name in LOGGERS]
    for logger, _ in saved:
        logger.setLevel(logging.DEBUG)
    yield
    for logger, level in saved:
        logger.setLevel(level)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    _rescan_pending()
    if findings() and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    found = findings()
    if not found:
        return
    terminalreporter.section("secret scan", sep="=", red=True, bold=True)
    terminalreporter.write_line(f"{len(found)} place(s) where a configured secret appeared "
                                "(the secret is not shown):", red=True)
    for finding in found:
        terminalreporter.write_line(f"  {finding}")
