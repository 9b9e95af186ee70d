"""Microsoft's Java change feed processor as the Functions host's Cosmos DB trigger listener, for one app instance.

In Azure the Cosmos DB extension (.NET) runs the .NET SDK's change feed processor for each trigger and hands every
batch to the worker; neither runs here. Microsoft's Java SDK, com.azure:azure-cosmos 4.81.0, has a processor of the
same design, and it runs against the project's emulator (scripts/cosmos) with no proxy between:
``devhost/trigger_listener/TriggerListener.java`` starts one ``ChangeFeedProcessor`` per function, with the trigger's
container, lease container, lease prefix, maxItemsPerInvocation, startFromBeginning, startFromTime and
feedPollDelay, and the lease renew, acquire and expiration intervals the test chooses. Each batch crosses to this process as a JSON array
(a line on the JVM's stdout); ``TriggerListener`` here invokes the function with it through
``devhost.worker_host.WorkerHost`` (the worker runtime, as the host sends an InvocationRequest) and answers
``ok`` or ``failed``. The Java handler returns only after ``ok``, so the processor checkpoints; after ``failed`` it
throws, and the processor keeps the lease's continuation and hands the changes again.

Each trigger's handler comes from its binding (``handler_for``): ``"changeFeedMode": "AllVersionsAndDeletes"`` (the
Cosmos DB extension's ``CosmosDBTriggerAttribute.ChangeFeedMode``, azure-functions' ``change_feed_mode``) runs
``handleAllVersionsAndDeletesChanges``, whose changes cross in the shape the host hands the worker in that mode, the
.NET SDK's ``ChangeFeedItem`` as Newtonsoft writes it (``{"current", "metadata", "previous"?}``, see
``TriggerListener.asDotNetChangeFeedItem``); otherwise ``handleLatestVersionChanges`` and plain documents.

Why ``handleLatestVersionChanges``: its leases are the EPK-range leases, the shape of the .NET processor's
feed-range leases (tests/lease_documents.py). In sdk/cosmos/azure-cosmos/src/main/java/com/azure/cosmos/
implementation/changefeed/: epkversion/ServiceItemLeaseV1.java (``LeaseVersion.EPK_RANGE_BASED_LEASE``, version
1; fields id, LeaseToken ``<min>-<max>``, ContinuationToken (base64 of a ChangeFeedStateV1 JSON), timestamp,
Owner, version, feedRange), one per feed range, ids ``<store prefix>..<LeaseToken>`` where
``ChangeFeedProcessorImplBase.getLeasePrefix`` (epkversion/) makes the store prefix ``<lease prefix><account
host>_<database _rid>_<container _rid>``. ``handleChanges`` writes the older partition-key-range leases
(pkversion/ServiceItemLease.java, LeaseToken the range's id, ContinuationToken the service's token as it is),
whose store prefix, ``getPkRangeIdVersionLeasePrefix`` of the same file, holds the database's and container's
names instead of their _rids; the EPK processor writes a ``.info`` under that prefix too, where its bootstrapper
looks for such leases to take over.

The jars come from Maven Central through Maven (``devhost/trigger_listener/pom.xml``) into
``.cache/trigger-listener/``, and the class is compiled with javac, once each (devhost/jvm_program.py, as for
OpenWhisk's parser).

Nothing here depends on pytest: scripts/run-local, the tests and bench/ use it alike.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Mapping, Optional

from devhost.jvm_program import JvmProgram, tail

SOURCE_DIR = Path(__file__).resolve().parent / "trigger_listener"
SOURCE = SOURCE_DIR / "TriggerListener.java"
POM = SOURCE_DIR / "pom.xml"
MAIN_CLASS = "triggerlistener.TriggerListener"
AZURE_COSMOS_VERSION = "4.81.0"
START_TIMEOUT = 120.0

# The SDK's own defaults (ChangeFeedProcessorOptions): renew 17 s, acquire 13 s, expire 60 s.
@dataclasses.dataclass(frozen=True)
class LeaseIntervals:
    """How often an instance renews its leases and looks for others, and when an unrenewed lease expires (s)."""

    renew: float = 17.0
    acquire: float = 13.0
    expiration: float = 60.0


class TriggerListenerError(RuntimeError):
    """The processor could not be fetched, compiled or started, or it stopped."""


LATEST_VERSION = "handleLatestVersionChanges"
ALL_VERSIONS_AND_DELETES = "handleAllVersionsAndDeletesChanges"
HANDLERS = {"latestversion": LATEST_VERSION, "allversionsanddeletes": ALL_VERSIONS_AND_DELETES}


def handler_for(binding: Mapping) -> str:
    """The Java processor's handler for a Cosmos DB trigger binding, from its changeFeedMode (LatestVersion when absent;
    the extension's CosmosDBChangeFeedMode values, read without regard to case)."""
    mode = binding.get("changeFeedMode") or "LatestVersion"
    try:
        return HANDLERS[str(mode).lower()]
    except KeyError:
        raise TriggerListenerError(f"changeFeedMode {mode!r} of the binding {binding.get('name')!r} is neither "
                                   f"LatestVersion nor AllVersionsAndDeletes") from None


def change_of(element: Mapping, all_versions_and_deletes: bool) -> tuple:
    """(id, _etag) of one element of a batch: a document, or in all versions and deletes mode a change whose
    `current` is the document (a delete has none: its id is metadata.id and its _etag None)."""
    if not all_versions_and_deletes:
        return element.get("id"), element.get("_etag")
    current = element.get("current") or {}
    return current.get("id", element.get("metadata", {}).get("id")), current.get("_etag")


@dataclasses.dataclass
class HandedBatch:
    """One batch the processor handed over, and what became of it."""

    instance: str
    function: str
    number: int
    documents: list  # the JSON array as handed over: documents, or changes in all versions and deletes mode
    outcome: str = "running"  # "ok", "failed", "held" (never answered) or "running"
    error: str = ""
    answered_at: Optional[float] = None
    all_versions_and_deletes: bool = False

    @property
    def changes(self) -> list[tuple]:
        return [change_of(element, self.all_versions_and_deletes) for element in self.documents]

    @property
    def operations(self) -> list[tuple]:
        """(operationType, id) of each change; a plain document counts as "create" (no operation is known)."""
        return [(element["metadata"]["operationType"] if self.all_versions_and_deletes else "create", doc_id)
                for element, (doc_id, _) in zip(self.documents, self.changes)]


# -- fetching and compiling (once, cached) -----------------------------------

PROGRAM = JvmProgram("trigger-listener", SOURCE, POM, TriggerListenerError,
                     "Microsoft's change feed processor (devhost/trigger_listener)")


def _check_jars(lib: Path) -> None:
    if not (lib / f"azure-cosmos-{AZURE_COSMOS_VERSION}.jar").is_file():
        raise TriggerListenerError(f"Maven fetched no azure-cosmos-{AZURE_COSMOS_VERSION}.jar into {lib}")


def _javac(lib: Path, out: Path) -> list[str]:
    return [PROGRAM.tool("javac"), "-encoding", "UTF-8", "-Xlint:deprecation", "-cp", str(lib / "*"), "-d", str(out),
            str(SOURCE)]


def build() -> str:
    """The processor's classpath: jars fetched and the listener compiled, each once."""
    lib, classes = PROGRAM.build(fetched=f"azure-cosmos {AZURE_COSMOS_VERSION}", check_jars=_check_jars,
                                 compiler="javac", compile_command=_javac)
    return os.pathsep.join([str(classes), str(lib / "*")])


# -- one app instance ---------------------------------------------------------

def connection_parts(connection_string: str) -> tuple[str, str]:
    """(endpoint, key) of an `AccountEndpoint=...;AccountKey=...;` connection string."""
    pairs = dict(part.split("=", 1) for part in connection_string.strip().split(";") if "=" in part)
    return pairs["AccountEndpoint"], pairs["AccountKey"]


def cosmos_triggers(functions: Mapping) -> dict[str, dict]:
    """Each function's Cosmos DB trigger binding as the worker reported it to the host (RpcFunctionMetadata)."""
    triggers = {}
    for name, function in functions.items():
        for raw in function.raw_bindings:
            binding = json.loads(raw)
            if binding["type"] == "cosmosDBTrigger":
                triggers[name] = binding
    return triggers


class TriggerListener:
    """One app instance's trigger listener: the Java processor for every Cosmos DB trigger of the worker's
    functions, handing each batch to ``invoke(function_name, json_text, retry_count)``, which returns
    ("Success" | "Failure", message) as ``WorkerHost.invoke`` does. Each trigger's handler comes from its binding
    (``handler_for``) unless ``handler`` names one for all (``handleChanges``, for its leases).

    ``hold_answers()`` makes it invoke further batches but never answer them (the instance is about to die
    mid-batch); ``kill()`` ends the JVM with SIGKILL; ``close()`` stops the processors as a host shuts down.
    """

    def __init__(self, classpath: str, triggers: Mapping[str, dict], settings: Mapping[str, str],
                 invoke: Callable[[str, str, int], tuple[str, str]], *, host_name: str,
                 intervals: LeaseIntervals = LeaseIntervals(), handler: Optional[str] = None,
                 stderr_path: Path):
        self.host_name = host_name
        self.invoke = invoke
        self.batches: list[HandedBatch] = []
        self._lock = threading.Lock()
        self._failures: dict[tuple, int] = {}
        self._holding = threading.Event()
        self._killed = False
        first = next(iter(triggers.values()))
        endpoint, key = connection_parts(settings[first["connection"]])
        args = [f"endpoint={endpoint}", f"database={first['databaseName']}",
                f"lease-container={first['leaseContainerName']}",
                f"create-lease-container={str(bool(first.get('createLeaseContainerIfNotExists'))).lower()}",
                f"host-name={host_name}", f"max-items={first.get('maxItemsPerInvocation') or 100}",
                f"start-from-beginning={str(bool(first.get('startFromBeginning'))).lower()}",
                f"lease-renew-ms={int(intervals.renew * 1000)}", f"lease-acquire-ms={int(intervals.acquire * 1000)}",
                f"lease-expiration-ms={int(intervals.expiration * 1000)}"]
        if first.get("startFromTime"):  # the emulator ignores it (tests/test_cosmos_emulator.py)
            args.append(f"start-time={first['startFromTime']}")
        if first.get("feedPollDelay"):
            args.append(f"poll-delay-ms={int(first['feedPollDelay'])}")
        self.handlers = {name: handler or handler_for(trigger) for name, trigger in triggers.items()}
        for name, trigger in triggers.items():
            args.append(f"function={name}:{trigger['containerName']}:{self.handlers[name]}:"
                        f"{trigger.get('leaseContainerPrefix') or ''}")
        self._stderr_path = stderr_path
        self._stderr = open(stderr_path, "wb")
        started = time.monotonic()
        # Plain HTTP is refused unless this property allows it (the emulator speaks no TLS). A session of its own:
        # Ctrl-C in the terminal reaches the host, which stops the processors through stdin (close()), so that
        # they release their leases; the JVM never sees the signal itself.
        self._process = subprocess.Popen(
            [PROGRAM.tool("java"), "-Xmx256m", "-DCOSMOS.HTTP_CONNECTION_WITHOUT_TLS_ALLOWED=true",
             "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", classpath, MAIN_CLASS, *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env={**os.environ, "COSMOS_KEY": key},
            text=True, encoding="utf-8", bufsize=1, start_new_session=True)
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix=f"invoke-{host_name}")
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, name=f"listener-{host_name}", daemon=True)
        self._reader.start()
        if not self._ready.wait(START_TIMEOUT) or self._process.poll() is not None:
            self.kill()
            raise TriggerListenerError(f"the change feed processor ({host_name}) did not start within "
                                       f"{START_TIMEOUT:.0f} s:\n{tail(stderr_path)}")
        self.start_seconds = time.monotonic() - started

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    def _read(self) -> None:
        for line in self._process.stdout:
            if line == "ready\n":
                self._ready.set()
            elif line.startswith("batch "):
                _, number, function, text = line.rstrip("\n").split(" ", 3)
                batch = HandedBatch(self.host_name, function, int(number), json.loads(text),
                                    all_versions_and_deletes=self.handlers.get(function) == ALL_VERSIONS_AND_DELETES)
                with self._lock:
                    self.batches.append(batch)
                self._pool.submit(self._hand_over, batch, text)
        self._ready.set()  # ended: whoever waits for it sees the process gone

    def _hand_over(self, batch: HandedBatch, text: str) -> None:
        key = (batch.function, tuple(batch.changes))
        retry_count = self._failures.get(key, 0)
        try:
            status, message = self.invoke(batch.function, text, retry_count)
        except Exception as e:  # the worker died or did not answer: a failed invocation, as for the host
            status, message = "Failure", f"{type(e).__name__}: {e}"
        if self._holding.is_set():
            batch.outcome = "held"
            return
        with self._lock:
            if status == "Success":
                batch.outcome = "ok"
            else:
                batch.outcome, batch.error = "failed", message
                self._failures[key] = retry_count + 1
            batch.answered_at = time.monotonic()
        answer = "ok" if status == "Success" else "failed " + " ".join(message.split())[:500]
        try:
            self._process.stdin.write(f"{batch.number} {answer}\n")
            self._process.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass  # the processor is gone; it never checkpointed this batch

    # -- what it did ------------------------------------------------------------------------------

    def delivered(self, function: Optional[str] = None) -> list[tuple]:
        """(id, _etag) of every change of a batch answered ok, in order of hand-over."""
        with self._lock:
            return [change for b in self.batches if b.outcome == "ok" and function in (None, b.function)
                    for change in b.changes]

    def failed(self) -> list[HandedBatch]:
        with self._lock:
            return [b for b in self.batches if b.outcome == "failed"]

    def held(self) -> list[HandedBatch]:
        with self._lock:
            return [b for b in self.batches if b.outcome == "held"]

    def hold_answers(self) -> None:
        """From now on, invoke each batch but never answer: the handler never returns."""
        self._holding.set()

    @property
    def stderr(self) -> str:
        return tail(self._stderr_path, 60)

    # -- ending -----------------------------------------------------------------------------------

    def kill(self) -> None:
        """SIGKILL: no lease is released, no checkpoint written."""
        if self._process.poll() is None:
            os.kill(self._process.pid, signal.SIGKILL)
            self._killed = True
        self._process.wait()
        self._finish()

    def close(self, timeout: float = 60.0) -> None:
        """Ends stdin: the processors stop (a batch still running fails), then the JVM exits."""
        if self._process.poll() is None:
            try:
                self._process.stdin.close()
            except OSError:
                pass
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._finish()

    def _finish(self) -> None:
        self._reader.join(10)
        self._pool.shutdown(wait=False, cancel_futures=True)
        try:
            self._process.stdin.close()
        except OSError:
            pass
        self._stderr.close()


def wait_for(condition: Callable[[], bool], timeout: float, what: str, poll: float = 0.1) -> float:
    """Waits until condition() holds; returns the seconds it took, or raises TimeoutError naming `what`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(poll)
    return time.monotonic() - started
