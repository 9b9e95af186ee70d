"""pytest plugin: OpenWhisk's own reading of a cache-invalidation message, as a test oracle.

Load it from tests/conftest.py with ``pytest_plugins = [..., "tests.openwhisk_oracle"]``.

A controller reads a Kafka value with spray-json (``CacheInvalidationMessage.parse``
on the bytes decoded as UTF-8); a value it cannot parse is logged and dropped
while this app counts it as delivered. So the tests hand every message they
send to that same parser: ``tests/openwhisk_parser/OpenWhiskParser.scala``,
upstream's two formats compiled with scala-compiler 2.12.10 against
spray-json_2.12 1.3.5 (OpenWhisk's default build).

The jars come from Maven Central through Maven (``tests/openwhisk_parser/pom.xml``)
into ``.cache/openwhisk-parser/lib-<hash of the pom>/``; the classes are compiled
into ``.cache/openwhisk-parser/classes-<hash of the source and the pom>/``, so an
edit of the Scala file recompiles it and nothing else does. A marker file is
written only after a complete step, and a file lock serialises concurrent runs.

Fixtures
--------
openwhisk_parser (session)
    An ``OpenWhiskParser``: one JVM for the whole session. ``parse_all(values)``
    returns, for each value (bytes), a ``ParsedMessage`` or a ``ParseFailure``.

``assert_openwhisk_reads_as_intended`` checks a batch of messages against the
keys its documents meant (``tests.contract.intended_keys``), naming the document
on failure. The terminal summary says how many messages the parser read and
what it cost.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import pytest

from devhost.jvm_program import JvmProgram, tail

SOURCE_DIR = Path(__file__).resolve().parent / "openwhisk_parser"
SOURCE = SOURCE_DIR / "OpenWhiskParser.scala"
POM = SOURCE_DIR / "pom.xml"
MAIN_CLASS = "openwhiskparser.OpenWhiskParser"
SCALA_VERSION = "2.12.10"
SPRAY_JSON_VERSION = "1.3.5"
COMPILER_JARS = ("scala-compiler", "scala-library", "scala-reflect", "scala-xml")
RUNTIME_JARS = ("scala-library", "spray-json")
START_TIMEOUT = 120


class OpenWhiskParserError(RuntimeError):
    """The parser could not be fetched, compiled or started, or it stopped answering."""


@dataclass(frozen=True)
class ParsedMessage:
    """What a controller reads: the cache key, the sender, and upstream's own compact print of the message."""

    main_id: str
    secondary_id: Optional[str]
    instance_id: str
    compact: str

    def __repr__(self):  # a secondaryId is an API key: never in a failure text
        shown = "None" if self.secondary_id is None else "(not shown)"
        return f"ParsedMessage(main_id={self.main_id!r}, secondary_id={shown}, instance_id={self.instance_id!r})"


@dataclass(frozen=True)
class ParseFailure:
    """The message was refused: a controller logs "failed processing message" and drops it."""

    error: str

    @property
    def summary(self) -> str:
        """The error's first line; spray-json's further lines quote the input, which may hold an API key."""
        return self.error.splitlines()[0] if self.error else ""


# -- fetching and compiling (once, cached) -----------------------------------

_PROGRAM = JvmProgram("openwhisk-parser", SOURCE, POM, OpenWhiskParserError, "OpenWhisk's parser")


def _jar(lib: Path, name: str) -> Path:
    matches = [p for p in lib.glob(f"{name}*.jar") if re.fullmatch(rf"{re.escape(name)}(_2\.12)?-[0-9.]+\.jar", p.name)]
    if len(matches) != 1:
        raise OpenWhiskParserError(f"expected one {name} jar in {lib}, found {[p.name for p in matches]}")
    return matches[0]


def _scalac(lib: Path, out: Path) -> list[str]:
    compiler_cp = os.pathsep.join(str(_jar(lib, name)) for name in COMPILER_JARS)
    runtime_cp = os.pathsep.join(str(_jar(lib, name)) for name in RUNTIME_JARS)
    return [_PROGRAM.tool("java"), "-cp", compiler_cp, "scala.tools.nsc.Main", "-deprecation", "-encoding", "UTF-8",
            "-classpath", runtime_cp, "-d", str(out), str(SOURCE)]


def build() -> str:
    """The parser's classpath: jars fetched and source compiled, each once."""
    lib, classes = _PROGRAM.build(
        fetched="scala-compiler and spray-json",
        check_jars=lambda lib: [_jar(lib, name) for name in set(COMPILER_JARS) | set(RUNTIME_JARS)],
        compiler=f"scalac {SCALA_VERSION}", compile_command=_scalac)
    return os.pathsep.join([str(classes), *(str(_jar(lib, name)) for name in RUNTIME_JARS)])


# -- the running parser -------------------------------------------------------

def _text(field: str) -> str:
    """A text as OpenWhiskParser.scala writes it: 'x' and its UTF-16 code units in hex."""
    return bytes.fromhex(field[1:]).decode("utf-16-be", "surrogatepass")


class OpenWhiskParser:
    """One JVM running OpenWhiskParser.scala; reads values on stdin, one answer line per value."""

    def __init__(self, classpath: str, stderr_path: Path):
        self._stderr_path = stderr_path
        self._stderr = open(stderr_path, "wb")
        started = time.monotonic()
        self._process = subprocess.Popen([_PROGRAM.tool("java"), "-Xss4m", "-cp", classpath, MAIN_CLASS],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                         text=True, encoding="ascii", bufsize=1 << 16)
        self._lock = threading.Lock()
        self.messages_read = 0
        self.messages_checked = 0  # those of them checked against their documents
        self.refused = 0
        self.seconds = 0.0
        first = self._process.stdout.readline()
        if first != "ready\n":
            self.close()
            raise OpenWhiskParserError(f"OpenWhisk's parser did not start (said {first!r}):\n{tail(stderr_path)}")
        self.start_seconds = time.monotonic() - started

    def parse_all(self, values: Sequence[bytes]) -> list[Union[ParsedMessage, ParseFailure]]:
        """What a controller makes of each Kafka value."""
        if not values:
            return []
        with self._lock:
            started = time.monotonic()
            lines = "".join(value.hex() + "\n" for value in values)
            # Written from a thread: answers to a long batch could fill the pipe back while we still write.
            writer = threading.Thread(target=self._write, args=(lines,), daemon=True)
            writer.start()
            answers = [self._process.stdout.readline() for _ in values]
            writer.join()
            self.seconds += time.monotonic() - started
        results = [self._result(answer) for answer in answers]
        self.messages_read += len(results)
        self.refused += sum(isinstance(r, ParseFailure) for r in results)
        return results

    def parse(self, value: bytes) -> Union[ParsedMessage, ParseFailure]:
        return self.parse_all([value])[0]

    def _write(self, lines: str) -> None:
        try:
            self._process.stdin.write(lines)
            self._process.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # the reader sees the end of output and reports it

    def _result(self, answer: str) -> Union[ParsedMessage, ParseFailure]:
        fields = answer.split()
        if fields[:1] == ["ok"] and len(fields) == 5:
            _, main_id, secondary_id, instance_id, compact = fields
            return ParsedMessage(_text(main_id), None if secondary_id == "-" else _text(secondary_id),
                                 _text(instance_id), _text(compact))
        if fields[:1] == ["error"] and len(fields) == 2:
            return ParseFailure(_text(fields[1]))
        raise OpenWhiskParserError(f"OpenWhisk's parser stopped answering (said {answer[:200]!r}):\n"
                                   f"{tail(self._stderr_path)}")

    def close(self) -> None:
        if self._process.stdin:
            try:
                self._process.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process.stdout.close()
        self._stderr.close()


# -- the check the tests make -------------------------------------------------

def assert_openwhisk_reads_as_intended(parser: OpenWhiskParser, messages: Sequence[tuple[bytes, bytes]],
                                       intended: Mapping[tuple[str, Optional[str]], str], instance_id: str,
                                       batch: str) -> None:
    """Each (Kafka key, value) parses in OpenWhisk to a key some document meant, with instance_id, in spray-json's
    compact form but for U+FFFF; and every meant key is read. ``intended`` maps (mainId, secondaryId) to the
    document that meant it, as the failure text names it."""
    __tracebackhide__ = True  # its arguments hold API keys; the failure text names the document instead
    parser.messages_checked += len(messages)
    read = set()
    for (kafka_key, value), result in zip(messages, parser.parse_all([value for _, value in messages])):
        meant_by = [doc for (main_id, _), doc in intended.items() if main_id.encode("utf-8", "surrogatepass") == kafka_key]
        who = meant_by[0] if meant_by else f"no document (Kafka key {kafka_key!r})"
        carries_api_key = any(secondary is not None for (main_id, secondary) in intended
                              if main_id.encode("utf-8", "surrogatepass") == kafka_key)
        shown = "" if carries_api_key else f"\n  message: {value!r}"
        if isinstance(result, ParseFailure):
            raise AssertionError(f"{batch}: OpenWhisk cannot parse the message for {who}: {result.summary}{shown}")
        key = (result.main_id, result.secondary_id)
        if key not in intended:
            raise AssertionError(f"{batch}: OpenWhisk reads the message for {who} as mainId {result.main_id!r}"
                                 f"{'' if result.secondary_id is None else ' with a secondaryId'}, "
                                 f"which no document meant{shown}")
        if result.instance_id != instance_id:
            raise AssertionError(f"{batch}: OpenWhisk reads the message for {intended[key]} as sent by "
                                 f"{result.instance_id!r}, not {instance_id!r}{shown}")
        if value != result.compact.replace("\uffff", "\\uffff").encode("utf-8", "surrogatepass"):
            raise AssertionError(f"{batch}: the message for {intended[key]} is not spray-json's compact form "
                                 f"(U+FFFF escaped){shown}")
        read.add(key)
    missing = [doc for key, doc in intended.items() if key not in read]
    assert not missing, f"{batch}: OpenWhisk read no message for the key meant by {missing[0]}"


# -- fixture and summary ------------------------------------------------------

_parsers: list[OpenWhiskParser] = []


@pytest.fixture(scope="session")
def openwhisk_parser(tmp_path_factory):
    try:
        parser = OpenWhiskParser(build(), tmp_path_factory.mktemp("openwhisk-parser") / "stderr.log")
    except (OpenWhiskParserError, OSError) as e:
        pytest.fail(f"could not start OpenWhisk's parser: {e}", pytrace=False)
    _parsers.append(parser)
    try:
        yield parser
    finally:
        parser.close()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _parsers:
        return
    read = sum(p.messages_read for p in _parsers)
    checked = sum(p.messages_checked for p in _parsers)
    refused = sum(p.refused for p in _parsers)
    seconds = sum(p.seconds for p in _parsers)
    cold = _PROGRAM.cost_summary()
    terminalreporter.section("OpenWhisk's parser", sep="=")
    terminalreporter.write_line(
        f"{checked} messages read by OpenWhisk's parser (spray-json {SPRAY_JSON_VERSION}, Scala {SCALA_VERSION}) "
        f"and checked against their documents; {read} read in all, {refused} refused (the parser's own tests) | "
        f"{cold} | JVM ready in {sum(p.start_seconds for p in _parsers):.2f} s | {seconds:.2f} s in parser calls")
