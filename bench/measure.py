"""The measured paths, and the figures made of their timings."""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence

import confluent_kafka
from azure.functions.cosmosdb import CosmosDBTriggerConverter
from azure.functions.meta import Datum
from json.encoder import encode_basestring as _json_string

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
    """The batch as the worker hands it to a `func.DocumentList` parameter: the host's JSON through the library's converter."""
    return CosmosDBTriggerConverter.decode(Datum(json_text, "json"), trigger_metadata=None)


class AppPath:
    """The app's path: the host's JSON text, handed as it is to the `changes: str` function, acknowledged by Kafka."""

    def __init__(self, module):
        self.module = module
        self._functions = {kind: module.bench_functions[name] for kind, name in FUNCTION_OF.items()}

    def run(self, batch: Batch) -> None:
        self._functions[batch.kind](batch.json)


class DocumentListPath(AppPath):
    """The same app had its parameter been `func.DocumentList`: the library's converter, then the function's body."""

    def run(self, batch: Batch) -> None:
        handler = self.module.handler
        container = self.module.trigger.whisks_container if batch.kind is ContainerKind.WHISKS \
            else self.module.trigger.subjects_container
        handler.handle(host_batch(batch.json), batch.kind, container)


class LimitPath:
    """The limit: the work no implementation can skip, with the app's own producer config.

    The host's JSON text parsed with json, each document's id unescaped into a
    message and its key, every message produced, flush(). No filter, no poison
    check, no deduplication, no error attribution, no log line.
    """

    def __init__(self, config: Mapping[str, object], topic: str, instance_id: str):
        self.producer = confluent_kafka.Producer(dict(config))
        self.topic = topic
        self.start = b'{"instanceId":' + json.dumps(instance_id).encode() + b',"key":{"mainId":'

    def run(self, batch: Batch) -> None:
        produce, topic, start = self.producer.produce, self.topic, self.start
        for doc in json.loads(batch.json):
            main_id = doc["id"].replace("|", "/")
            produce(topic, start + _json_string(main_id).encode() + b"}}", main_id)
        if self.producer.flush(30):
            raise RuntimeError("the limit's batch was not acknowledged within 30 s")

    def close(self) -> None:
        self.producer.flush(30)
        self.producer.close()


class _Failures:
    """Failed deliveries: the app's producer config reports only those (delivery.report.only.error)."""

    __slots__ = ("errors",)

    def __init__(self):
        self.errors = []

    def __call__(self, error, _message):
        self.errors.append(error)


class RawClient:
    """confluent-kafka alone, on the prebuilt messages, with the app's producer config."""

    def __init__(self, config: Mapping[str, object], topic: str):
        self.config = dict(config)
        self.topic = topic
        self.timeout = int(config["message.timeout.ms"]) / 1000
        self.producer = confluent_kafka.Producer(self.config)

    def _flush(self, failures: _Failures, expected: int, what: str) -> None:
        left = self.producer.flush(self.timeout)
        if left or failures.errors:
            raise RuntimeError(f"{what}: {left} of {expected} not acknowledged, {len(failures.errors)} failed "
                               f"({failures.errors[-1] if failures.errors else None})")

    def acked_flush(self, batch: Batch) -> None:
        """Produce the batch's prebuilt messages, flush(): returns once every message is acknowledged."""
        failures = _Failures()
        produce, topic = self.producer.produce, self.topic
        for message in batch.messages:
            produce(topic, message.value, message.key, on_delivery=failures)
        self._flush(failures, len(batch.messages), "raw batch")

    def naive(self, batch: Batch) -> None:
        """Naive: flush after every message."""
        failures = _Failures()
        for message in batch.messages:
            self.producer.produce(self.topic, message.value, message.key, on_delivery=failures)
            self._flush(failures, 1, "naive batch")

    def fire_and_forget(self, batches: Sequence[Batch]) -> tuple[float, int]:
        """Fire-and-forget: produce every batch, serving reports with poll(0) between batches, one flush at the end.

        Returns (seconds, messages)."""
        failures = _Failures()
        produce, poll, topic = self.producer.produce, self.producer.poll, self.topic
        expected = 0
        started = time.perf_counter()
        for batch in batches:
            for message in batch.messages:
                while True:
                    try:
                        produce(topic, message.value, message.key, on_delivery=failures)
                        break
                    except BufferError:
                        poll(0.001)
            expected += len(batch.messages)
            poll(0)
        self._flush(failures, expected, "fire-and-forget")
        return time.perf_counter() - started, expected

    def close(self) -> None:
        if self.producer is not None:
            self.producer.flush(self.timeout)
            self.producer.close()
            self.producer = None


class StageTimes:
    """Per-batch wall time of the app path's stages: parse, translate, deliver, the rest of the function.

    A context manager: wraps handler.change_documents, handler.translate and
    InvalidationProducer.deliver with timers (a few µs a batch; bench only)."""

    STAGES = ("parse", "translate", "deliver")

    def __init__(self, app: AppPath):
        self.app = app
        self.reset()

    def reset(self) -> None:
        self.stages: dict[str, list[float]] = {name: [] for name in (*self.STAGES, "rest", "total")}

    def medians_ms(self) -> dict[str, float]:
        import statistics

        return {name: statistics.median(values) * 1000 for name, values in self.stages.items() if values}

    def _timed(self, name: str, function: Callable) -> Callable:
        clock, current = time.perf_counter, self._current

        def timed(*args, **kwargs):
            began = clock()
            try:
                return function(*args, **kwargs)
            finally:
                current[name] = clock() - began
        return timed

    def __enter__(self):
        from cache_invalidator import handler, producer

        self._current = {}
        self._originals = (handler.change_documents, handler.translate, producer.InvalidationProducer.deliver)
        handler.change_documents = self._timed("parse", handler.change_documents)
        handler.translate = self._timed("translate", handler.translate)
        producer.InvalidationProducer.deliver = self._timed("deliver", producer.InvalidationProducer.deliver)
        return self

    def __exit__(self, *exc):
        from cache_invalidator import handler, producer

        handler.change_documents, handler.translate, producer.InvalidationProducer.deliver = self._originals

    def run(self, batch: Batch) -> None:
        clock = time.perf_counter
        began = clock()
        self.app.run(batch)
        total = clock() - began
        c = self._current
        for name in self.STAGES:
            self.stages[name].append(c[name])
        self.stages["rest"].append(total - sum(c[name] for name in self.STAGES))
        self.stages["total"].append(total)


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
