#!/usr/bin/env python3
"""Benchmark the path from change batch to acknowledged invalidation, against its limit.

    .venv/bin/python -m pip install -r bench/requirements.txt   # once
    .venv/bin/python bench/run.py            # the full run, about 5 minutes on 2 cores
    .venv/bin/python bench/run.py --quick    # a smoke run with a tenth of the batches; writes nothing
    .venv/bin/python bench/run.py --profile  # the app path by stage, and cProfile at 100 documents: bench/profile.txt

It starts its own single-node Kafka broker with scripts/kafka (state in a
temporary directory, removed at the end), unless KAFKA_HOSTS is set: then that
broker is used, with the other KAFKA_* settings of the environment, and the
bench's topic is created there if missing.

Every figure comes from ONE run, the paths interleaved in rounds, so that the
ratios hold on a noisy machine. For whisks batches of 1, 10, 100 and 1000:
  app        the host's JSON text handed to the `changes: str` function (what the
             worker hands a str parameter), returning once Kafka acknowledged all;
  limit      the same text, then only what no implementation can skip: json.loads,
             each id unescaped into a message, produce, flush() (measure.LimitPath);
  app_doclist  the app had its parameter been func.DocumentList: the library's
             converter, then the function's body;
  raw        confluent-kafka producing the batch's prebuilt messages, flush();
  naive      flush() after every message;
  fire       everything produced, one flush() at the end.
The headline is app / limit. Also: parallel leases (1, 2 and 8 threads), parsing and translation alone, cold start (import time, first
invocation, RSS) in fresh interpreters, and, when the runtime suite's Python
3.13 environment exists, invocation request to response through Microsoft's
worker runtime for both annotations (bench/runtime_invocations.py). --profile
times the app path by stage beside the limit, and profiles it.

Writes bench/results.json, the generated part of docs/BENCHMARKS.md and
docs/benchmark-throughput.png (not with --quick). No test asserts a time.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime
import gc
import io
import json
import logging
import os
import platform
import pstats
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(1, str(ROOT))

import confluent_kafka  # noqa: E402
import orjson  # noqa: E402

from cache_invalidator.producer import close_shared_producers  # noqa: E402
from cache_invalidator.settings import Settings  # noqa: E402
from cache_invalidator.translation import ContainerKind, translate  # noqa: E402
import measure  # noqa: E402
import report  # noqa: E402
import workload  # noqa: E402

SIZES = (1, 10, 100, 1000)
ROUNDS = 10
# Batches per batch size, for each acknowledged path.
ACKED_BATCHES = {1: 3000, 10: 2000, 100: 1000, 1000: 200}
# The naive path sends one request per message: its large batches take long.
NAIVE_BATCHES = {1: 1000, 10: 300, 100: 60, 1000: 10}
# Fire-and-forget: documents produced per batch size.
FIRE_DOCUMENTS = 200_000
WARMUP_BATCHES = 30
PARALLEL_THREADS = (1, 2, 8)
PARALLEL_BATCHES = 800  # of 100 documents, split among the threads
PARALLEL_SIZE = 100
PARALLEL_ROUNDS = 4
TRANSLATION_REPEATS = 80
COLD_STARTS = 7
# Seconds between indexing and the first invocation in the second cold-start child.
FIRST_BATCH_PAUSE = 1.0
TOPIC = "bench-cache-invalidation"
RUNTIME_PYTHON = ROOT / ".cache" / "venv-runtime-3.13" / "bin" / "python"

log = logging.getLogger("bench")


class _Discard(logging.Handler):
    """Formats every record, as the Functions worker's handler does before shipping it, and drops it."""

    def emit(self, record):
        self.format(record)


def configure_logging() -> None:
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(_Discard())
    shout = logging.StreamHandler(sys.stderr)
    shout.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.addHandler(shout)
    log.propagate = False
    # The app's librdkafka lines (e.g. "Coordinator load in progress" at start) stay out of the output.
    client_log = logging.getLogger("cache_invalidator.kafka")
    client_log.propagate = False
    client_log.addHandler(_Discard())


# --------------------------------------------------------------------------
# The broker
# --------------------------------------------------------------------------

def _kafka(command: str, state_dir: Path, *args: str, timeout: float) -> str:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "kafka"), command, "--dir", str(state_dir), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/kafka {command} failed (exit {proc.returncode}):\n{proc.stderr}{proc.stdout}")
    return proc.stdout


def _kafka_script_version() -> str:
    match = re.search(r'^KAFKA_VERSION = "([^"]+)"', (ROOT / "scripts" / "kafka").read_text(), re.M)
    return match.group(1) if match else "unknown"


@contextlib.contextmanager
def kafka_broker(topic: str, partitions: int, user_kafka: dict[str, str]):
    external = user_kafka.get("KAFKA_HOSTS", "").strip()
    if external:
        log.info("using the broker at KAFKA_HOSTS=%s", external)
        _create_topic_external(external, topic, partitions, user_kafka)
        yield {"hosts": external, "managed": False, "version": f"external broker at KAFKA_HOSTS={external}"}
        return
    temp = Path(tempfile.mkdtemp(prefix="bench-kafka-"))
    state = temp / "kafka"
    try:
        log.info("starting a Kafka broker with scripts/kafka up --dir %s (the first run downloads it)", state)
        out = _kafka("up", state, timeout=900)
        hosts = out.strip().splitlines()[-1].split("=", 1)[1]
        _kafka("topic", state, topic, "--partitions", str(partitions), timeout=120)
        log.info("broker ready at %s, topic %s with %d partition(s)", hosts, topic, partitions)
        yield {"hosts": hosts, "managed": True,
               "version": f"{_kafka_script_version()}, single node on 127.0.0.1 started by scripts/kafka"}
    finally:
        with contextlib.suppress(Exception):
            _kafka("down", state, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def _create_topic_external(hosts: str, topic: str, partitions: int, user_kafka: dict[str, str]) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    config = Settings.from_env({**user_kafka, "KAFKA_HOSTS": hosts}).kafka.producer_config()
    admin_keys = ("bootstrap.servers", "security.protocol", "sasl.", "ssl.")
    admin = AdminClient({k: v for k, v in config.items() if k.startswith(admin_keys)})
    future = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=-1)])[topic]
    try:
        future.result(timeout=60)
    except confluent_kafka.KafkaException as exc:
        if exc.args[0].code() != confluent_kafka.KafkaError.TOPIC_ALREADY_EXISTS:
            raise


# --------------------------------------------------------------------------
# The machine
# --------------------------------------------------------------------------

def _first_match(path: str, pattern: str) -> str | None:
    try:
        match = re.search(pattern, Path(path).read_text(), re.M)
    except OSError:
        return None
    return match.group(1).strip() if match else None


def describe_machine(kafka_version: str) -> dict:
    from importlib.metadata import version

    try:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30).stderr.splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        java = "unknown"
    mem_kib = _first_match("/proc/meminfo", r"^MemTotal:\s+(\d+)")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                            "cache_invalidator", "function_app.py"],
                           cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": _first_match("/proc/cpuinfo", r"^model name\s*:\s*(.+)$") or platform.processor() or "unknown",
        "memory_gib": round(int(mem_kib) / 1024 / 1024, 1) if mem_kib else None,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "confluent_kafka": confluent_kafka.__version__,
        "librdkafka": confluent_kafka.libversion()[0],
        "azure_functions": version("azure-functions"),
        "orjson": orjson.__version__,
        "kafka": kafka_version,
        "java": java,
        "git_commit": commit + (" (cache_invalidator/ or function_app.py modified)" if dirty else ""),
        "load_average_before": os.getloadavg(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


# --------------------------------------------------------------------------
# Cold start, in fresh interpreters
# --------------------------------------------------------------------------

_IMPORT_CHILD = """
import sys, time
began = time.perf_counter()
import {module}
print(time.perf_counter() - began)
"""

# Reads the batches' JSON texts from stdin; prints RSS and timings as JSON.
_FIRST_INVOCATION_CHILD = """
import json, sys, time

def rss_mib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

texts = json.load(sys.stdin)
pause = float(sys.argv[1])
figures = {"rss_interpreter_mib": rss_mib()}
began = time.perf_counter()
import function_app
figures["import_s"] = time.perf_counter() - began
figures["rss_after_import_mib"] = rss_mib()
function = {f.get_function_name(): f.get_user_function() for f in function_app.app.get_functions()}["invalidate_whisks"]
figures["indexed_s"] = time.perf_counter() - began
time.sleep(pause)
began = time.perf_counter()
function(texts[0])
figures["first_invocation_s"] = time.perf_counter() - began
began = time.perf_counter()
function(texts[1])
figures["second_invocation_s"] = time.perf_counter() - began
figures["rss_after_first_invocation_mib"] = rss_mib()
for text in texts[2:]:
    function(text)
figures["later_batches"] = len(texts) - 2
figures["rss_after_later_batches_mib"] = rss_mib()
from cache_invalidator.producer import close_shared_producers
close_shared_producers()
print(json.dumps(figures))
"""


def _child_env(app_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(measure.APP_SETTING_PREFIXES)}
    env.update(app_env)
    return env


def _import_times(module: str, env: dict[str, str]) -> list[float]:
    times = []
    for attempt in range(COLD_STARTS + 1):  # the first one warms the file cache and is dropped
        proc = subprocess.run([sys.executable, "-c", _IMPORT_CHILD.format(module=module)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"import {module} failed in a fresh interpreter:\n{proc.stderr}")
        if attempt:
            times.append(float(proc.stdout.strip().splitlines()[-1]))
    return times


def cold_start(app_env: dict[str, str], first: workload.Batch, later: list[workload.Batch]) -> dict:
    env = _child_env(app_env)
    # The library's own import, measured apart, is the floor under the app's.
    app = _import_times("function_app", env)
    library = _import_times("azure.functions", env)
    texts = [first.json] + [b.json for b in later]
    children = {}
    # Right after indexing, and after the pause in which the host starts the
    # Cosmos DB listener, takes its leases and reads the feed before it invokes.
    for pause in (0.0, FIRST_BATCH_PAUSE):
        proc = subprocess.run([sys.executable, "-c", _FIRST_INVOCATION_CHILD, str(pause)], cwd=ROOT, env=env,
                              input=json.dumps(texts), capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"the first-invocation child failed:\n{proc.stderr}")
        children[pause] = json.loads(proc.stdout.strip().splitlines()[-1])
    child = children[FIRST_BATCH_PAUSE]
    return {
        "first_invocation_at_once_s": children[0.0]["first_invocation_s"],
        "first_batch_pause_s": FIRST_BATCH_PAUSE,
        "import_s_median": statistics.median(app),
        "import_s_min": min(app),
        "import_s_max": max(app),
        "library_import_s_median": statistics.median(library),
        "own_import_s_median": statistics.median(app) - statistics.median(library),
        "import_runs": len(app),
        "later_batch_size": later[0].documents if later else 0,
        **child,
    }


# --------------------------------------------------------------------------
# Microsoft's worker runtime (Python 3.13, the runtime suite's environment)
# --------------------------------------------------------------------------

def runtime_invocations(app_env: dict[str, str]) -> dict | None:
    """Invocation request to response through azure-functions-runtime, for both annotations; None without 3.13."""
    if not RUNTIME_PYTHON.exists():
        log.info("no %s (scripts/test makes it): the worker runtime is not timed", RUNTIME_PYTHON)
        return None
    proc = subprocess.run([str(RUNTIME_PYTHON), str(BENCH / "runtime_invocations.py")], cwd=ROOT,
                          env=_child_env(app_env), capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"bench/runtime_invocations.py failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------

def first_message_times(config: dict, topic: str, batch: workload.Batch, repeats: int = 3) -> dict:
    """Time to the first acknowledgement of a brand-new raw producer, with and without idempotence:
    what a first invocation would wait for had the producer not started while the app loaded."""
    figures = {}
    for idempotence in (True, False):
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            raw = measure.RawClient({**config, "enable.idempotence": idempotence}, topic)
            raw.acked_flush(batch)
            times.append((time.perf_counter() - began) * 1000)
            raw.close()
        figures["idempotent" if idempotence else "not_idempotent"] = statistics.median(times)
    return figures


def app_environment(hosts: str, topic: str, user_kafka: dict[str, str]) -> dict[str, str]:
    env = dict(measure.BASE_SETTINGS)
    env.update({k: v for k, v in user_kafka.items() if k not in ("KAFKA_HOSTS", "KAFKA_TOPIC")})
    env.update({"KAFKA_HOSTS": hosts, "KAFKA_TOPIC": topic})
    return env


def parsing_and_translation(pools: dict[ContainerKind, list[workload.Batch]], settings: Settings) -> dict:
    """µs per document of json, orjson, the library's converter and translate(), the kinds alternating."""
    options = settings.translation_options()
    names = ("json", "orjson", "converter", "translate")
    samples = {kind: {name: [] for name in names} for kind in pools}
    clock = time.perf_counter
    for repeat in range(TRANSLATION_REPEATS):
        for kind, pool in pools.items():
            text = pool[repeat % len(pool)].json
            into = samples[kind]
            for name, parse in (("json", json.loads), ("orjson", orjson.loads), ("converter", measure.host_batch)):
                began = clock()
                parse(text)
                into[name].append(clock() - began)
            documents = orjson.loads(text)
            began = clock()
            translate(documents, kind, **options)
            into["translate"].append(clock() - began)
    figures = {}
    for kind, pool in pools.items():
        figures[kind.value] = {
            "batch_size": pool[0].documents,
            "messages_per_document": len(pool[0].messages) / pool[0].documents,
            **{f"{name}_us_per_doc": statistics.median(values) / pool[0].documents * 1e6
               for name, values in samples[kind].items()},
        }
    return figures


def parallel(app: measure.AppPath, whisks: list, subjects: list, batches: int) -> dict:
    """Parallel leases, each thread count in turn, in rounds."""
    runs: dict = {threads: [] for threads in PARALLEL_THREADS}
    for rnd in range(PARALLEL_ROUNDS):
        shift = rnd % len(PARALLEL_THREADS)
        for threads in PARALLEL_THREADS[shift:] + PARALLEL_THREADS[:shift]:
            per_thread = max(1, batches // PARALLEL_ROUNDS // threads)
            runs[threads].append(measure.parallel_leases(app, threads, per_thread, whisks, subjects))
    results: dict = {}
    for threads, parts in runs.items():
        latencies = [x for part in parts for x in part.pop("latencies")]
        figures = measure.summarize(latencies, sum(p["documents"] for p in parts), sum(p["messages"] for p in parts),
                                    seconds=sum(p["seconds"] for p in parts))
        figures["threads"] = threads
        results[threads] = figures
    return results


def run(args, user_kafka: dict[str, str]) -> dict:
    scale = 0.1 if args.quick else 1.0

    def scaled(n: int) -> int:
        return max(ROUNDS, int(n * scale) // ROUNDS * ROUNDS)

    results: dict = {"command": args.command, "quick": args.quick, "partitions": args.partitions, "rounds": ROUNDS}
    with kafka_broker(args.topic, args.partitions, user_kafka) as broker:
        results["machine"] = describe_machine(broker["version"])
        env = app_environment(broker["hosts"], args.topic, user_kafka)
        settings = Settings.from_env(env)
        config = settings.kafka.producer_config()
        results["producer_config"] = {k: v for k, v in config.items() if "sasl.password" not in k}

        log.info("building the change batches")
        whisks = {}
        serial = 0
        for size in SIZES:
            count = min(max(scaled(ACKED_BATCHES[size]), scaled(NAIVE_BATCHES[size])), max(8, 20_000 // size))
            whisks[size] = workload.make_batches(ContainerKind.WHISKS, size, count, serial, settings)
            serial += size * count
        subjects_100 = workload.make_batches(ContainerKind.SUBJECTS, PARALLEL_SIZE, 100, 0, settings)
        subjects_1000 = workload.make_batches(ContainerKind.SUBJECTS, 1000, 5, 10_000, settings)

        module = measure.load_function_app(env)
        app = measure.AppPath(module)
        began = time.perf_counter()
        app.run(whisks[1][0])
        results["first_invocation_in_bench_ms"] = (time.perf_counter() - began) * 1000
        if module.handler.settings != settings:
            raise RuntimeError("the app's settings are not the bench's: invoke it before changing os.environ")
        limit = measure.LimitPath(config, args.topic, settings.instance_id)
        raw = measure.RawClient(config, args.topic)
        acked = {
            "app": app.run,
            "limit": limit.run,
            "app_doclist": measure.DocumentListPath(module).run,
            "raw": raw.acked_flush,
            "naive": raw.naive,
        }
        counts = {name: ACKED_BATCHES for name in acked}
        counts["naive"] = NAIVE_BATCHES
        log.info("warming up the broker and every path")
        warm_broker(raw, whisks[100])
        for run_batch in acked.values():
            measure.timed_batches(run_batch, whisks[10], 0, WARMUP_BATCHES)
        raw.fire_and_forget(whisks[10][:WARMUP_BATCHES])
        # The bench's own objects (batches, modules) out of the collector's way, as a worker would not hold them.
        gc.collect()
        gc.freeze()

        paths = {name: {} for name in [*acked, "fire"]}
        for size in SIZES:
            pool = whisks[size]
            latencies = {name: [] for name in acked}
            fire_seconds, fire_messages, fire_docs = 0.0, 0, 0
            fire_batches = max(1, int(FIRE_DOCUMENTS * scale) // size // ROUNDS)
            order = [*acked, "fire"]
            started = time.perf_counter()
            for rnd in range(ROUNDS):
                shift = rnd % len(order)
                for name in order[shift:] + order[:shift]:
                    if name == "fire":
                        chunk = [pool[(rnd * fire_batches + i) % len(pool)] for i in range(fire_batches)]
                        seconds, messages = raw.fire_and_forget(chunk)
                        fire_seconds += seconds
                        fire_messages += messages
                        fire_docs += size * len(chunk)
                        continue
                    per_round = scaled(counts[name][size]) // ROUNDS
                    latencies[name] += measure.timed_batches(acked[name], pool, rnd * per_round, per_round)
            for name, values in latencies.items():
                messages = sum(len(pool[i % len(pool)].messages) for i in range(len(values)))
                paths[name][size] = measure.summarize(values, size * len(values), messages)
            paths["fire"][size] = measure.summarize([], fire_docs, fire_messages, seconds=fire_seconds)
            log.info("batch size %4d: app %9.0f docs/s, limit %9.0f docs/s, app/limit %.2f (%.0f s)", size,
                     paths["app"][size]["docs_per_s"], paths["limit"][size]["docs_per_s"],
                     report.ratio({"paths": paths}, "app", "limit", size), time.perf_counter() - started)
        results["paths"] = paths

        log.info("parallel leases")
        results["parallel"] = parallel(app, whisks[PARALLEL_SIZE], subjects_100, scaled(PARALLEL_BATCHES))
        for threads, figures in results["parallel"].items():
            log.info("%d thread(s): %.0f docs/s, p50 %.2f ms, p99 %.2f ms", threads,
                     figures["docs_per_s"], figures["p50_ms"], figures["p99_ms"])

        log.info("parsing and translation alone")
        results["translation"] = parsing_and_translation(
            {ContainerKind.WHISKS: whisks[1000], ContainerKind.SUBJECTS: subjects_1000}, settings)

        close_shared_producers()
        limit.close()
        raw.close()

        log.info("cold start: import function_app and azure.functions in %d fresh interpreters each, "
                 "then a first invocation", COLD_STARTS)
        results["cold_start"] = cold_start(env, whisks[1][1], whisks[1][2:3] + whisks[100][:100])
        results["cold_start"]["first_message_of_a_new_producer_ms"] = first_message_times(config, args.topic,
                                                                                          whisks[1][2])
        log.info("invocations through Microsoft's worker runtime")
        results["runtime"] = runtime_invocations(env)
        results["machine"]["load_average_after"] = os.getloadavg()
    return results


def warm_broker(raw: measure.RawClient, pool: list, seconds: float = 10.0) -> None:
    """Traffic until the broker's JVM has compiled its hot paths: acks are slow in a new broker's first seconds."""
    ends = time.monotonic() + seconds
    index = 0
    while time.monotonic() < ends:
        raw.fire_and_forget(pool[index % len(pool):index % len(pool) + 10])
        measure.timed_batches(raw.acked_flush, pool, index, 10)
        index += 10


def without(app: measure.AppPath, limit: measure.LimitPath, pools: dict, out) -> None:
    """The app path as shipped beside itself without the batch log line, without the drain, and without both
    (diagnostics of what stands between the app and the limit; not shippable), all interleaved with the limit."""
    from cache_invalidator import handler, producer

    shipped = (handler._report_batch, producer.InvalidationProducer.deliver)

    def plain_deliver(self, invalidations):
        produce, topic = self._producer.produce, self.settings.topic
        for key, value in invalidations:
            produce(topic, value, key)
        self._producer.flush(self.settings.delivery_timeout_seconds)

    variants = {
        "as shipped": shipped,
        "no log line": (lambda *args: None, shipped[1]),
        "produce+flush()": (shipped[0], plain_deliver),
        "neither": (lambda *args: None, plain_deliver),
    }
    print("== what stands between the app and the limit: median ms per batch, the variants interleaved\n", file=out)
    print(f"{'docs':>5}" + "".join(f"{name:>17}" for name in [*variants, "limit"]), file=out)
    try:
        for n, pool in pools.items():
            times: dict[str, list[float]] = {name: [] for name in [*variants, "limit"]}
            per_round = max(2, 5_000 // n // ROUNDS)
            for rnd in range(ROUNDS):
                for name, (report_batch, deliver) in variants.items():
                    handler._report_batch, producer.InvalidationProducer.deliver = report_batch, deliver
                    times[name] += measure.timed_batches(app.run, pool, rnd * per_round, per_round)
                times["limit"] += measure.timed_batches(limit.run, pool, rnd * per_round, per_round)
            print(f"{n:>5}" + "".join(f"{statistics.median(v) * 1000:>17.3f}" for v in times.values()), file=out)
    finally:
        handler._report_batch, producer.InvalidationProducer.deliver = shipped
    print("\n(no log line: handler._report_batch does nothing; produce+flush(): deliver() without the drain's "
          "bookkeeping and without failure reports)\n\n", file=out)


def profile(args, user_kafka: dict[str, str]) -> str:
    """The app path by stage beside the limit at 10, 100 and 1000 documents, then cProfile at 100; the text."""
    size, batches = 100, 300
    out = io.StringIO()
    with kafka_broker(args.topic, args.partitions, user_kafka) as broker:
        env = app_environment(broker["hosts"], args.topic, user_kafka)
        settings = Settings.from_env(env)
        pools = {n: workload.make_batches(ContainerKind.WHISKS, n, max(10, 5000 // n), 0, settings)
                 for n in (10, 100, 1000)}
        app = measure.AppPath(measure.load_function_app(env))
        limit = measure.LimitPath(settings.kafka.producer_config(), args.topic, settings.instance_id)
        raw = measure.RawClient(settings.kafka.producer_config(), args.topic)
        warm_broker(raw, pools[100])
        staged = measure.StageTimes(app)
        print("== the app path by stage: median ms per batch (without the profiler), beside the limit\n", file=out)
        print(f"{'docs':>5}{'parse':>9}{'translate':>10}{'deliver':>9}{'rest':>7}{'total':>8}{'limit':>8}", file=out)
        for n, pool in pools.items():
            limits: list[float] = []
            per_round = max(2, 10_000 // n // ROUNDS)
            for rnd in range(ROUNDS):
                with staged:
                    measure.timed_batches(staged.run, pool, rnd * per_round, per_round)
                limits += measure.timed_batches(limit.run, pool, rnd * per_round, per_round)
            m = staged.medians_ms()
            staged.reset()
            print(f"{n:>5}{m['parse']:>9.3f}{m['translate']:>10.3f}{m['deliver']:>9.3f}{m['rest']:>7.3f}"
                  f"{m['total']:>8.3f}{statistics.median(limits) * 1000:>8.3f}", file=out)
        print("\n(rest: settings, the log line and the function's own frames; total is the median of the sums)\n\n",
              file=out)
        without(app, limit, {1: workload.make_batches(ContainerKind.WHISKS, 1, 500, 10**6, settings), **pools}, out)
        pool = pools[size]
        plain = measure.timed_batches(app.run, pool, 0, batches)
        profiler = cProfile.Profile()
        profiler.enable()
        profiled = measure.timed_batches(app.run, pool, 0, batches)
        profiler.disable()
        print(f"== the app path, {batches} batches of {size} whisks documents", file=out)
        print(f"   per batch: mean {statistics.mean(plain) * 1000:.2f} ms without the profiler, "
              f"{statistics.mean(profiled) * 1000:.2f} ms under it\n", file=out)
        for key, top in (("tottime", 15), ("cumulative", 25)):
            text = io.StringIO()
            stats = pstats.Stats(profiler, stream=text)
            stats.strip_dirs().sort_stats(key).print_stats(top)
            body = text.getvalue()
            body = body[body.index("   ncalls"):] if "   ncalls" in body else body
            print(f"-- sorted by {key}, top {top}\n{body}", file=out)
        close_shared_producers()
        limit.close()
        raw.close()
    return out.getvalue()


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the batches; writes nothing")
    parser.add_argument("--profile", action="store_true", help="the app path by stage, and cProfile -> bench/profile.txt")
    parser.add_argument("--partitions", type=int, default=1, help="partitions of the bench topic (default 1)")
    parser.add_argument("--topic", default=TOPIC, help=f"the bench topic (default {TOPIC})")
    parser.add_argument("--no-write", action="store_true", help="print the figures only")
    parser.add_argument("--dump", metavar="PATH", help="also write the results as JSON to PATH (with --quick too)")
    parser.add_argument("--render", action="store_true",
                        help="measure nothing: rewrite docs/BENCHMARKS.md and the chart from bench/results.json")
    args = parser.parse_args()
    args.command = " ".join([".venv/bin/python", "bench/run.py", *sys.argv[1:]])
    configure_logging()
    # The user's KAFKA_* settings, read before the bench sets its own.
    user_kafka = {k: v for k, v in os.environ.items() if k.startswith("KAFKA_")}
    # An orderly stop (and broker teardown) on SIGTERM too.
    signal.signal(signal.SIGTERM, _interrupt)

    if args.render:
        results = json.loads((BENCH / "results.json").read_text())
        report.update_benchmarks_md(ROOT / "docs" / "BENCHMARKS.md", results)
        report.chart(results, ROOT / "docs" / "benchmark-throughput.png")
        log.info("rewrote docs/BENCHMARKS.md and docs/benchmark-throughput.png from bench/results.json")
        return 0

    if args.profile:
        text = profile(args, user_kafka)
        print(text)
        if not args.no_write:
            (BENCH / "profile.txt").write_text(text)
            log.info("wrote bench/profile.txt")
        return 0

    began = time.perf_counter()
    results = run(args, user_kafka)
    results["run_seconds"] = round(time.perf_counter() - began, 1)
    results = json.loads(json.dumps(results, default=str))  # the figures as results.json holds them
    print(report.summary_text(results))
    if args.dump:
        Path(args.dump).write_text(json.dumps(results, indent=1) + "\n")
    if args.quick or args.no_write:
        log.info("figures not written (%s)", "--quick" if args.quick else "--no-write")
        return 0
    (BENCH / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    report.update_benchmarks_md(ROOT / "docs" / "BENCHMARKS.md", results)
    report.chart(results, ROOT / "docs" / "benchmark-throughput.png")
    log.info("wrote bench/results.json, docs/BENCHMARKS.md and docs/benchmark-throughput.png in %.0f s",
             results["run_seconds"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
