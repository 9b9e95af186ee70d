"""A small JVM program, built once: its jars fetched with Maven, its source compiled, both cached.

Two programs use it: Microsoft's change feed processor as the trigger listener (devhost/trigger_listener.py,
Java) and the tests' OpenWhisk parser (tests/openwhisk_oracle.py, Scala). The jars come from Maven Central through
Maven (the program's pom.xml) into ``.cache/<name>/lib-<hash of the pom>/``; the classes are compiled into
``.cache/<name>/classes-<hash of the source and the pom>/``, so an edit of the source recompiles it and nothing
else does. Each step writes into a temporary folder that is renamed into place, with a marker file, only once
it is complete; a file lock serialises concurrent runs.

Nothing here depends on pytest: scripts/run-local and bench/ build the trigger listener too.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
FETCH_TIMEOUT = 900


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log, without terminal colour codes; empty when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text).splitlines()[-lines:])


def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


class JvmProgram:
    """One program: `name` its cache folder, `error` the exception its failures raise, `purpose` what Java runs."""

    def __init__(self, name: str, source: Path, pom: Path, error: type[Exception], purpose: str):
        self.cache = REPO_ROOT / ".cache" / name
        self.source, self.pom, self.error, self.purpose = source, pom, error, purpose
        # What the last build did, in seconds ("fetch", "compile"): a step found cached is absent.
        self.costs: dict[str, float] = {}

    def tool(self, name: str) -> str:
        """`java` or `javac`, from JAVA_HOME or the PATH."""
        java_home = os.environ.get("JAVA_HOME")
        candidate = Path(java_home) / "bin" / name if java_home else None
        if candidate is not None and os.access(candidate, os.X_OK):
            return str(candidate)
        found = shutil.which(name)
        if not found:
            raise self.error(f"{name} not found on PATH or in JAVA_HOME; Java 17 runs {self.purpose}")
        return found

    def is_built(self) -> bool:
        """True when both the jars and the classes of the current pom and source are cached."""
        return ((self.cache / f"lib-{_digest(self.pom)}" / "COMPLETE").is_file()
                and (self.cache / f"classes-{_digest(self.source, self.pom)}" / "COMPLETE").is_file())

    def build(self, *, fetched: str, check_jars: Callable[[Path], None], compiler: str,
              compile_command: Callable[[Path, Path], Sequence[str]]) -> tuple[Path, Path]:
        """(jar folder, class folder), each made once.

        `fetched` names the jars for messages, `check_jars(folder)` raises when the fetch lacks one,
        `compile_command(jar folder, output folder)` is the compiler's command line, `compiler` its name.
        """
        self.cache.mkdir(parents=True, exist_ok=True)
        with open(self.cache / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            lib = self._fetch_jars(fetched, check_jars)
            classes = self._compile(lib, compiler, compile_command)
        return lib, classes

    def _fetch_jars(self, fetched: str, check_jars: Callable[[Path], None]) -> Path:
        lib = self.cache / f"lib-{_digest(self.pom)}"
        if (lib / "COMPLETE").is_file():
            return lib
        mvn = shutil.which("mvn")
        if not mvn:
            raise self.error(f"mvn not found on PATH; Maven fetches {fetched} once")
        m2 = self.cache / "m2"
        tmp = self.cache / f"lib.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        log = self.cache / "mvn.log"
        cmd = [mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(self.pom), f"-Dmaven.repo.local={m2}",
               "dependency:copy-dependencies", f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"]
        started = time.monotonic()
        with open(log, "w") as out:
            rc = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 timeout=FETCH_TIMEOUT)
        if rc != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise self.error(f"fetching {fetched} with Maven failed (exit {rc}); is Maven Central reachable?\n"
                             f"--- tail of {log} ---\n{tail(log)}")
        check_jars(tmp)
        shutil.rmtree(lib, ignore_errors=True)
        os.rename(tmp, lib)
        shutil.rmtree(m2, ignore_errors=True)  # the jars are all we need
        (lib / "COMPLETE").write_text("\n".join(sorted(p.name for p in lib.glob("*.jar"))) + "\n")
        self.costs["fetch"] = time.monotonic() - started
        return lib

    def _compile(self, lib: Path, compiler: str, compile_command: Callable[[Path, Path], Sequence[str]]) -> Path:
        classes = self.cache / f"classes-{_digest(self.source, self.pom)}"
        if (classes / "COMPLETE").is_file():
            return classes
        tmp = self.cache / f"classes.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        log = self.cache / f"{compiler.split()[0]}.log"
        started = time.monotonic()
        with open(log, "w") as out:
            rc = subprocess.call(list(compile_command(lib, tmp)), stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
        if rc != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise self.error(f"compiling {self.source.relative_to(REPO_ROOT)} with {compiler} failed (exit {rc}):\n"
                             f"{tail(log)}")
        shutil.rmtree(classes, ignore_errors=True)
        os.rename(tmp, classes)
        (classes / "COMPLETE").write_text(f"{self.source.name} {_digest(self.source)}\n")
        self.costs["compile"] = time.monotonic() - started
        return classes

    def cost_summary(self) -> str:
        """What the last build cost, for a terminal summary."""
        fetched = f"fetched with Maven in {self.costs['fetch']:.1f} s" if "fetch" in self.costs else "jars cached"
        compiled = f"compiled in {self.costs['compile']:.1f} s" if "compile" in self.costs else "classes cached"
        return f"{fetched}, {compiled}"
