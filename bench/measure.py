"""The measured paths, and the figures made of their timings."""

from __future__ import annotations

import importlib.util
import itertools
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence

import confluent_kafka
from azure.functions.cosmosdb import CosmosDBTriggerConverter
from azure.functions.meta import Datum

from cache_invalidator.translation import ContainerKind
from workload import ROOT, Batch

# Settings the app reads; the bench sets exactly the ones it means.
APP_SETTING_PREFIXES = ("KAFKA_", "COSMOSDB", "CLUSTER_ID", "INVALIDATE_AUTH_KEYS", "INVALIDATION_INSTANCE_ID")
BASE_SETTINGS = {
    # Read when the app is indexed; no Cosmos DB is contacted.
    "COSMOSDB_NAME": "openwhisk",
    "COSMOSDB": "AccountEndpoint=https://localhost:8081/;AccountKey=YmVuY2gtY29zbW9zLWtleQ==;",
}
FUNCTION_OF = {ContainerKind.WHISKS: "invalidate_whisks", ContainerKind.SUBJECTS: "invalidate_subjects"}
_loaded = itertools.count()


def set_app_environment(env: Mapping[str, str]) -> None:
    """os.environ holds exactly these app settings (and whatever else it had)."""
    for name in list(os.environ):
        if name.startswith(APP_SETTING_PREFIXES):
            del os.environ[name]
    os.environ.update(env)


def load_function_app(env: Mapping[str, str]):
    """A fresh import of function_app.py with these app settings, as the worker indexes it."""
    set_app_environment(env)
    spec = importlib.util.spec_from_file_location(f"function_app_bench_{next(_loaded)}", ROOT / "function_app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.bench_functions = {f.get_function_name(): f.get_user_function() for f in module.app.get_functions()}
    return module


def host_batch(json_text: str):
    """The batch as the worker hands it to the function: the host's JSON through the library's converter."""
    return CosmosDBTriggerConverter.decode(Datum(json_text, "json"), trigger_metadata=None)


class AppPath:
    """Path 1: host JSON -> azure-functions converter -> the app's function -> acknowledged by Kafka."""

    def __init__(self, module):
        self.module = module
        self._functions = {kind: module.bench_functions[name] for kind, name in FUNCTION_OF.items()}

    def run(self, batch: Batch) -> None:
        self._functions[batch.kind](host_batch(batch.json))


class FunctionOnlyPath(AppPath):
    """Path 1 without the converter: the function on a batch decoded beforehand, outside the timing."""

    def prepare(self, batch: Batch):
        return batch.kind, host_batch(batch.json)

    def run(self, prepared) -> None:
        kind, documents = prepared
        self._functions[kind](documents)


class _Receipts:
    __slots__ = ("reported", "failed", "error")

    def __init__(self):
        self.reported = 0
        self.failed = 0
        self.error = None

    def __call__(self, error, _message):
        self.reported += 1
        if error is not None:
            self.failed += 1
            self.error = error


class RawClient:
    """Paths 2, 2b, 3 and 4: confluent-kafka alone, on the prebuilt messages, with the app's producer config."""

    def __init__(self, config: Mapping[str, object], topic: str):
        self.config = dict(config)
        self.topic = topic
        self.timeout = int(config["message.timeout.ms"]) / 1000
        self.producer = confluent_kafka.Producer(self.config)

    def _check(self, receipts: _Receipts, expected: int, what: str) -> None:
        if receipts.reported != expected or receipts.failed:
            raise RuntimeError(f"{what}: {receipts.reported} of {expected} reported, "
                               f"{receipts.failed} failed ({receipts.error})")

    def acked_flush(self, batch: Batch) -> None:
        """Path 2: produce the batch, flush(): returns once every message is acknowledged."""
        receipts = _Receipts()
        produce, topic = self.producer.produce, self.topic
        for message in batch.messages:
            produce(topic, message.value, message.key, on_delivery=receipts)
        self.producer.flush(self.timeout)
        self._check(receipts, len(batch.messages), "raw batch")

    def acked_poll(self, batch: Batch) -> None:
        """Path 2b: the same, but waiting with poll() until the batch's own reports are in (no flush)."""
        receipts = _Receipts()
        produce, topic = self.producer.produce, self.topic
        for message in batch.messages:
            produce(topic, message.value, message.key, on_delivery=receipts)
        deadline = time.monotonic() + self.timeout
        expected = len(batch.messages)
        while receipts.reported < expected and time.monotonic() < deadline:
            self.producer.poll(self.timeout)
        self._check(receipts, expected, "raw batch (poll)")

    def naive(self, batch: Batch) -> None:
        """Path 3: flush after every message."""
        receipts = _Receipts()
        for message in batch.messages:
            self.producer.produce(self.topic, message.value, message.key, on_delivery=receipts)
            self.producer.flush(self.timeout)
        self._check(receipts, len(batch.messages), "naive batch")

    def fire_and_forget(self, batches: Sequence[Batch]) -> tuple[float, int]:
        """Path 4: produce every batch, serving reports with poll(0) between batches, one flush at the end.

        Returns (seconds, messages)."""
        receipts = _Receipts()
        produce, poll, topic = self.producer.produce, self.producer.poll, self.topic
        expected = 0
        started = time.perf_counter()
        for batch in batches:
            for message in batch.messages:
                while True:
                    try:
                        produce(topic, message.value, message.key, on_delivery=receipts)
                        break
                    except BufferError:
                        poll(0.001)
            expected += len(batch.messages)
            poll(0)
        self.producer.flush(self.timeout)
        seconds = time.perf_counter() - started
        self._check(receipts, expected, "fire-and-forget")
        return seconds, expected

    def close(self) -> None:
        if self.producer is not None:
            self.producer.flush(self.timeout)
            self.producer.close()
            self.producer = None


class StageTimes:
    """Per-batch wall time of path 1's stages: converter, translate, deliver, the rest of the function.

    A context manager: wraps handler.translate and InvalidationProducer.deliver with timers (bench only)."""

    def __init__(self, app: AppPath):
        self.app = app
        self.reset()

    def reset(self) -> None:
        self.stages: dict[str, list[float]] = {"converter": [], "translate": [], "deliver": [], "rest": [], "total": []}

    def medians_ms(self) -> dict[str, float]:
        import statistics

        return {name: statistics.median(values) * 1000 for name, values in self.stages.items() if values}

    def __enter__(self):
        from cache_invalidator import handler, producer

        self._handler, self._producer = handler, producer
        self._translate, self._deliver = handler.translate, producer.InvalidationProducer.deliver
        current = self._current = {}
        clock = time.perf_counter

        def translate(*args, **kwargs):
            began = clock()
            try:
                return self._translate(*args, **kwargs)
            finally:
                current["translate"] = clock() - began

        def deliver(producer_self, invalidations):
            began = clock()
            try:
                return self._deliver(producer_self, invalidations)
            finally:
                current["deliver"] = clock() - began

        handler.translate = translate
        producer.InvalidationProducer.deliver = deliver
        return self

    def __exit__(self, *exc):
        self._handler.translate = self._translate
        self._producer.InvalidationProducer.deliver = self._deliver

    def run(self, batch: Batch) -> None:
        clock = time.perf_counter
        began = clock()
        documents = host_batch(batch.json)
        decoded = clock()
        self.app._functions[batch.kind](documents)
        ended = clock()
        c = self._current
        self.stages["converter"].append(decoded - began)
        self.stages["translate"].append(c["translate"])
        self.stages["deliver"].append(c["deliver"])
        self.stages["rest"].append(ended - decoded - c["translate"] - c["deliver"])
        self.stages["total"].append(ended - began)


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted values."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(latencies: Sequence[float], documents: int, messages: int, seconds: float | None = None) -> dict:
    """Throughput and latency figures of back-to-back batches (seconds defaults to the sum of latencies)."""
    ordered = sorted(latencies)
    total = sum(ordered) if seconds is None else seconds
    return {
        "batches": len(ordered),
        "documents": documents,
        "messages": messages,
        "seconds": round(total, 6),
        "docs_per_s": documents / total if total else math.nan,
        "p50_ms": percentile(ordered, 50) * 1000,
        "p90_ms": percentile(ordered, 90) * 1000,
        "p99_ms": percentile(ordered, 99) * 1000,
        "max_ms": ordered[-1] * 1000 if ordered else math.nan,
        "mean_ms": total / len(ordered) * 1000 if ordered else math.nan,
    }


def timed_batches(run: Callable[[Batch], None], pool: Sequence[Batch], start: int, count: int,
                  prepare: Callable[[Batch], object] | None = None) -> list[float]:
    """Runs count batches back to back, cycling through the pool; their latencies in seconds.

    prepare, when given, turns each batch into run's argument outside the timing."""
    latencies = []
    clock = time.perf_counter
    for index in range(start, start + count):
        batch = pool[index % len(pool)]
        if prepare is not None:
            batch = prepare(batch)
        began = clock()
        run(batch)
        latencies.append(clock() - began)
    return latencies


def parallel_leases(app: AppPath, threads: int, batches_per_thread: int,
                    whisks: Sequence[Batch], subjects: Sequence[Batch]) -> dict:
    """threads invocations at once, as the worker's thread pool runs them, whisks and subjects alternating."""
    barrier = threading.Barrier(threads + 1)
    latencies: list[list[float]] = [[] for _ in range(threads)]
    counts = [[0, 0] for _ in range(threads)]
    errors: list[BaseException] = []

    def lease(index: int) -> None:
        try:
            barrier.wait()
            for i in range(batches_per_thread):
                pool = whisks if (index + i) % 2 == 0 else subjects
                batch = pool[(index * batches_per_thread + i) % len(pool)]
                began = time.perf_counter()
                app.run(batch)
                latencies[index].append(time.perf_counter() - began)
                counts[index][0] += batch.documents
                counts[index][1] += len(batch.messages)
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    workers = [threading.Thread(target=lease, args=(i,), name=f"lease-{i}") for i in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - began
    if errors:
        raise errors[0]
    flat = [x for per in latencies for x in per]
    figures = summarize(flat, sum(c[0] for c in counts), sum(c[1] for c in counts), seconds=wall)
    figures["threads"] = threads
    figures["latencies"] = flat
    return figures
