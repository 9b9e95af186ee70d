"""Drives the app's functions the way the Functions host does, and checks what reached Kafka.

The host's Cosmos DB trigger, per lease (one per monitored container):

- hands the change batches in change-feed order, one invocation at a time;
- when an invocation raises, hands the *same* batch again after a back-off
  (`exponential_backoff`: the interval doubles from the minimum up to the
  maximum, forever with `max_retry_count = -1`), without checkpointing;
- hands the next batch only after the invocation succeeded.

`LeaseDriver` does exactly that, with short intervals, and records every
attempt. Both functions run side by side when two drivers run in two threads.
It calls the app through `invoke(function_name, documents, retry_count)`:
`tests.app_loading.library_invoker` calls the function directly, and
`devhost.worker_host.WorkerHost.invoke_documents` through Microsoft's
worker runtime, so the same scenarios (tests/fault_scenarios.py) run both ways.

`ChangePlan` builds batches whose every document is a numbered *change* of a
key, and whose first document is a per-batch *marker* (a document whose key
exists only in that batch). `analyse()` reads the topic back and, because
the single-partition log keeps one producer's messages in the order they were
produced, attributes every message to the batch whose marker precedes it
(per lease). That gives, without any version in the message value:

- missing changes: a (key, batch) pair whose batch was handed and succeeded,
  but no message of that key is attributed to that batch. This is the loss
  the contract forbids; it must be 0.
- missing keys: expected keys with no message at all (must be 0).
- duplicates: messages beyond the first per (key, batch): at-least-once allows them.
- order: for each key, the batches its messages are attributed to must not go
  down along the log. A key whose last message came from an older change
  than an earlier message would mean a cache could be left invalidated for an
  old change only; it must be 0.
"""

from __future__ import annotations

import dataclasses
import json
import random
import threading
import time
from collections import Counter, defaultdict
from typing import Callable, Optional

INSTANCE_ID = "cache-invalidator"


@dataclasses.dataclass
class Attempt:
    batch: int
    number: int  # 1 for the first hand-over of the batch
    started: float
    ended: float
    error: Optional[BaseException]


class LeaseDriver:
    """One lease of the change feed: hands `batches` to `function_name` in order, retrying each until it succeeds."""

    def __init__(self, invoke: Callable[[str, list, int], None], function_name: str, batches: list[list], *, min_backoff: float = 0.2,
                 max_backoff: float = 1.0, poll_delay: float = 0.0, time_limit: float = 120.0,
                 before_attempt: Optional[Callable[[int, int], None]] = None):
        self.invoke = invoke
        self.function_name = function_name
        self.batches = batches
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.poll_delay = poll_delay
        self.time_limit = time_limit
        self.before_attempt = before_attempt
        self.attempts: list[Attempt] = []
        self.succeeded = 0  # batches done, in order
        self.success_started: list[float] = []  # start of each batch's successful attempt
        self.crash: Optional[BaseException] = None
        self._aborted = threading.Event()
        self._progress = threading.Condition()
        self._thread: Optional[threading.Thread] = None

    def backoff(self, failures: int) -> float:
        """The interval before hand-over number `failures + 1`, as exponential_backoff computes it."""
        return min(self.max_backoff, self.min_backoff * 2 ** (failures - 1))

    def run(self) -> None:
        deadline = time.monotonic() + self.time_limit
        try:
            for index, batch in enumerate(self.batches):
                failures = 0
                while True:
                    if self._aborted.is_set():
                        raise RuntimeError(f"{self.function_name}: aborted at batch {index}")
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{self.function_name}: batch {index} still failing after "
                                           f"{self.time_limit:.0f} s; last error: {self.attempts[-1].error}")
                    if self.before_attempt is not None:
                        self.before_attempt(index, failures + 1)
                    started = time.monotonic()
                    try:
                        self.invoke(self.function_name, batch, failures)
                        error = None
                    except Exception as exc:  # the host catches everything an invocation raises
                        error = exc
                    self.attempts.append(Attempt(index, failures + 1, started, time.monotonic(), error))
                    if error is None:
                        break
                    failures += 1
                    time.sleep(self.backoff(failures))
                with self._progress:
                    self.succeeded = index + 1
                    self.success_started.append(started)
                    self._progress.notify_all()
                if self.poll_delay:
                    time.sleep(self.poll_delay)
        except BaseException as exc:
            self.crash = exc
            raise
        finally:
            with self._progress:
                self._progress.notify_all()

    def abort(self) -> None:
        """Stops handing batches (the test failed elsewhere); the driver then ends with an error."""
        self._aborted.set()

    def start(self) -> "LeaseDriver":
        self._thread = threading.Thread(target=self.run, name=f"lease-{self.function_name}", daemon=True)
        self._thread.start()
        return self

    def join(self, timeout: Optional[float] = None) -> None:
        self._thread.join(timeout if timeout is not None else self.time_limit + 30)
        if self._thread.is_alive():
            raise AssertionError(f"{self.function_name} driver still running")
        if self.crash is not None:
            raise AssertionError(f"{self.function_name} driver stopped: {self.crash!r}") from self.crash

    def wait_for(self, batches_done: int, timeout: float = 120.0) -> None:
        """Blocks until `batches_done` batches succeeded (or the driver stopped)."""
        end = time.monotonic() + timeout
        with self._progress:
            while self.succeeded < batches_done and self.crash is None and self._thread.is_alive():
                if not self._progress.wait(max(0.0, end - time.monotonic())) and time.monotonic() > end:
                    raise AssertionError(f"{self.function_name}: only {self.succeeded} batches done after {timeout:.0f} s")

    @property
    def failures(self) -> list[Attempt]:
        return [a for a in self.attempts if a.error is not None]

    @property
    def retried_batches(self) -> set[int]:
        """Batches handed more than once."""
        return {a.batch for a in self.failures}


# -- workloads ---------------------------------------------------------------------------------


@dataclasses.dataclass
class LeasePlan:
    """The batches of one lease and the keys each batch must invalidate."""

    name: str
    batches: list[list]  # documents, as the host's JSON would carry them
    markers: list[str]  # the marker key of each batch
    keys: list[set]  # keys each batch changes (markers excluded)

    @property
    def documents(self) -> int:
        return sum(len(b) for b in self.batches)


def whisks_plan(batches: int, per_batch: int, distinct_keys: int, seed: int = 1, name: str = "whisks") -> LeasePlan:
    """Whisks changes: `guest|a<k>` changed again and again (each doc carries its key's version)."""
    rng = random.Random(seed)
    versions: Counter = Counter()
    plan = LeasePlan(name, [], [], [])
    for b in range(batches):
        marker = f"marker|{name}-b{b:05d}"
        docs = [{"id": marker, "_ts": 1_700_000_000 + b}]
        keys = set()
        for _ in range(per_batch):
            k = rng.randrange(distinct_keys)
            versions[k] += 1
            docs.append({"id": f"guest|a{k}", "version": versions[k], "exec": {"kind": "nodejs:20"},
                         "_ts": 1_700_000_000 + b})
            keys.add(f"guest/a{k}")
        plan.batches.append(docs)
        plan.markers.append(marker.replace("|", "/"))
        plan.keys.append(keys)
    return plan


def subjects_plan(batches: int, per_batch: int, distinct_keys: int, seed: int = 2, name: str = "subjects") -> LeasePlan:
    """Subjects changes: `user<k>` with namespace `ns<k>`, and limits docs `lim<k>|limits`."""
    rng = random.Random(seed)
    versions: Counter = Counter()
    plan = LeasePlan(name, [], [], [])
    for b in range(batches):
        marker = f"marker-{name}-b{b:05d}"
        docs = [{"id": marker, "_ts": 1_700_000_000 + b}]
        keys = set()
        for _ in range(per_batch):
            k = rng.randrange(distinct_keys)
            versions[k] += 1
            if k % 5 == 0:
                docs.append({"id": f"lim{k}|limits", "concurrentInvocations": versions[k], "_ts": 1_700_000_000 + b})
                keys |= {f"lim{k}/limits", f"lim{k}"}
            else:
                docs.append({"id": f"user{k}", "version": versions[k], "subject": f"user{k}",
                             "namespaces": [{"name": f"ns{k}", "uuid": f"uuid-{k}", "key": f"secret-{k}"}],
                             "_ts": 1_700_000_000 + b})
                keys |= {f"user{k}", f"ns{k}"}
        plan.batches.append(docs)
        plan.markers.append(marker)
        plan.keys.append(keys)
    return plan


# -- checking what arrived ---------------------------------------------------------------------


def contract_value(main_id: str) -> str:
    return json.dumps({"instanceId": INSTANCE_ID, "key": {"mainId": main_id}}, separators=(",", ":"),
                      ensure_ascii=False)


@dataclasses.dataclass
class Report:
    scenario: str
    expected_changes: int  # (key, batch) pairs that must arrive
    expected_keys: int
    messages: int
    keys_arrived: int
    keys_missing: list
    changes_missing: list
    duplicates: int
    order_violations: list
    malformed: list
    unattributed: int  # messages before any marker of their lease (leftovers, e.g. on a re-created topic)
    failed_invocations: int
    expected_markers: int = 0  # of expected_keys, the batches' marker keys
    duplicate_batches: dict = dataclasses.field(default_factory=dict)  # lease -> batches with duplicates
    notes: str = ""

    def text(self) -> str:
        return (f"[{self.scenario}] expected keys={self.expected_keys} "
                f"({self.expected_keys - self.expected_markers} changed keys + {self.expected_markers} batch markers) "
                f"keys arrived={self.keys_arrived} "
                f"keys missing={len(self.keys_missing)} | expected changes={self.expected_changes} "
                f"changes missing={len(self.changes_missing)} | messages={self.messages} "
                f"duplicates={self.duplicates} unattributed={self.unattributed} "
                f"per-key order violations={len(self.order_violations)} malformed={len(self.malformed)} "
                f"| failed invocations (retried)={self.failed_invocations}"
                + (f" | {self.notes}" if self.notes else ""))

    def assert_duplicates_only_from(self, retried: dict) -> None:
        """Duplicates may only come from batches that were handed more than once (lease -> batch indexes)."""
        unexplained = {lease: sorted(set(batches) - set(retried.get(lease, ())))
                       for lease, batches in self.duplicate_batches.items()}
        assert not any(unexplained.values()), f"{self.scenario}: duplicates from batches handed once: {unexplained}"

    def assert_nothing_lost(self) -> None:
        assert not self.malformed, f"{self.scenario}: messages not in the contract's form: {self.malformed[:5]}"
        assert not self.keys_missing, f"{self.scenario}: keys never invalidated: {self.keys_missing[:20]}"
        assert not self.changes_missing, f"{self.scenario}: changes without an invalidation: {self.changes_missing[:20]}"
        assert not self.order_violations, f"{self.scenario}: per-key order broken: {self.order_violations[:10]}"


def analyse(scenario: str, messages: list[tuple[str, str]], plans: list[LeasePlan],
            counted: Optional[dict[str, set]] = None, failed_invocations: int = 0, notes: str = "") -> Report:
    """Checks the topic's messages (in log order) against the plans.

    `counted` maps a plan's name to the batch indexes that must have arrived
    (default: all of them); the other batches' messages are still attributed,
    only not required.
    """
    marker_of = {}
    lease_of_key = {}
    for plan in plans:
        for index, marker in enumerate(plan.markers):
            marker_of[marker] = (plan.name, index)
        for keys in plan.keys:
            for key in keys:
                owner = lease_of_key.setdefault(key, plan.name)
                assert owner == plan.name, f"key {key} is in two leases' plans; attribution needs disjoint keys"

    current: dict[str, int] = {plan.name: -1 for plan in plans}
    arrivals: dict[str, list[int]] = defaultdict(list)  # key -> attributed batch, in log order
    malformed = []
    marker_violations = []  # a batch's marker after a later batch's: the log is not in hand-over order
    unattributed = 0
    for key, value in messages:
        if value != contract_value(key):
            malformed.append((key, value))
        if key in marker_of:
            lease, index = marker_of[key]
            if index < current[lease]:
                marker_violations.append((key, f"after the marker of batch {current[lease]}"))
            current[lease] = index
            arrivals[key].append(index)
            continue
        lease = lease_of_key.get(key)
        if lease is None:
            malformed.append((key, "key not in any plan"))
            continue
        if current[lease] < 0:
            unattributed += 1
        arrivals[key].append(current[lease])

    expected_pairs = set()
    for plan in plans:
        wanted = counted[plan.name] if counted is not None else range(len(plan.batches))
        for index in wanted:
            expected_pairs.add((plan.markers[index], index))
            expected_pairs |= {(key, index) for key in plan.keys[index]}
    arrived_pairs = {(key, index) for key, indexes in arrivals.items() for index in indexes}
    expected_keys = {key for key, _ in expected_pairs}
    pair_counts = Counter((key, index) for key, indexes in arrivals.items() for index in indexes)
    duplicate_batches: dict[str, set] = defaultdict(set)
    for (key, index), n in pair_counts.items():
        if n > 1:
            duplicate_batches[marker_of[key][0] if key in marker_of else lease_of_key[key]].add(index)

    order_violations = list(marker_violations)
    for key, indexes in arrivals.items():
        for earlier, later in zip(indexes, indexes[1:]):
            if later < earlier:
                order_violations.append((key, indexes))
                break

    return Report(
        scenario=scenario,
        expected_changes=len(expected_pairs),
        expected_keys=len(expected_keys),
        messages=len(messages),
        keys_arrived=len(expected_keys & set(arrivals)),
        keys_missing=sorted(expected_keys - set(arrivals)),
        changes_missing=sorted(expected_pairs - arrived_pairs),
        duplicates=sum(n - 1 for n in pair_counts.values()),
        order_violations=order_violations,
        malformed=malformed,
        unattributed=unattributed,
        failed_invocations=failed_invocations,
        expected_markers=len(expected_keys & set(marker_of)),
        duplicate_batches=dict(duplicate_batches),
        notes=notes,
    )


# -- reporting ---------------------------------------------------------------------------------

_PLUGIN_NAME = "cache-invalidator-delivery-report"


class _SummaryPlugin:
    """Repeats the reports at the end of the run, in pytest's terminal summary."""

    def __init__(self):
        self.lines: list[str] = []

    def pytest_terminal_summary(self, terminalreporter):
        if self.lines:
            terminalreporter.section("what reached Kafka")
            for line in self.lines:
                terminalreporter.write_line(line)


def make_reporter(request, record_property):
    """A function that prints a report line (seen with -s), records it as a test property
    (junit XML) and repeats it in the terminal summary."""
    manager = request.config.pluginmanager
    plugin = manager.get_plugin(_PLUGIN_NAME)
    if plugin is None:
        plugin = _SummaryPlugin()
        manager.register(plugin, _PLUGIN_NAME)
    count = 0

    def emit(report) -> None:
        nonlocal count
        text = report.text() if isinstance(report, Report) else str(report)
        count += 1
        print(text)
        plugin.lines.append(f"{request.node.nodeid}: {text}")
        record_property(f"report{count}", text)

    return emit
