"""Invocation request to response through Microsoft's worker runtime, for both annotations of the trigger parameter.

Run by bench/run.py with the runtime suite's Python 3.13 environment
(.cache/venv-runtime-3.13, made by scripts/test), with the app settings of the
bench (KAFKA_HOSTS, KAFKA_TOPIC, ...) in its environment. For each annotation
(`str`, as function_app.py has it, and `func.DocumentList`) it starts a worker
through devhost/worker_host.py, as the host starts one per app, and times
InvocationRequest to InvocationResponse for whisks batches of 10, 100 and
1000, the two apps taking turns. The time is the host's side of the exchange:
the worker's decoding, the function, Kafka's acknowledgements, and the
framing over pipes that stands in for the host's gRPC stream. Prints one JSON
line of figures.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH)]

from cache_invalidator.settings import Settings  # noqa: E402
from cache_invalidator.translation import ContainerKind  # noqa: E402
from tests.app_loading import APP_SETTING_PREFIXES  # noqa: E402
from devhost.worker_host import WorkerHost, compile_protos, worker_environment  # noqa: E402
import workload  # noqa: E402

ANNOTATIONS = {"str": "str", "DocumentList": "func.DocumentList"}
APP_ANNOTATION = "(changes: str)"
SIZES = (10, 100, 1000)
BATCHES = {10: 400, 100: 200, 1000: 40}
ROUNDS = 8
WARMUP = 20


def app_folder(annotation: str, into: Path) -> Path:
    """function_app.py with the trigger parameter annotated so, beside the app's package."""
    into.mkdir()
    source = (ROOT / "function_app.py").read_text(encoding="utf-8")
    if source.count(APP_ANNOTATION) != 2:
        raise RuntimeError(f"function_app.py no longer says {APP_ANNOTATION!r} twice")
    (into / "function_app.py").write_text(source.replace(APP_ANNOTATION, f"(changes: {annotation})"), encoding="utf-8")
    shutil.copytree(ROOT / "cache_invalidator", into / "cache_invalidator", ignore=shutil.ignore_patterns("__pycache__"))
    return into


def main() -> int:
    settings = {k: v for k, v in os.environ.items() if k.startswith(APP_SETTING_PREFIXES)}
    parsed = Settings.from_env(settings)
    temp = Path(tempfile.mkdtemp(prefix="bench-runtime-"))
    hosts: dict[str, WorkerHost] = {}
    try:
        protos = compile_protos(temp / "protos")
        for name, annotation in ANNOTATIONS.items():
            host = WorkerHost(app_folder(annotation, temp / name), worker_environment(settings, APP_SETTING_PREFIXES),
                              protos_dir=protos)
            hosts[name] = host
            response = host.init()
            if response.result.status != host.protos.StatusResult.Success:
                raise RuntimeError(f"the {name} app did not index: {response.result.exception.message}")
            host.load_all()
        figures: dict = {name: {} for name in hosts}
        serial = 5_000_000
        for size in SIZES:
            pool = workload.make_batches(ContainerKind.WHISKS, size, max(10, 2000 // size), serial, parsed)
            serial += size * len(pool)
            times: dict[str, list[float]] = {name: [] for name in hosts}
            for name, host in hosts.items():
                for i in range(WARMUP):
                    host.invoke("invalidate_whisks", pool[i % len(pool)].json)
            per_round = BATCHES[size] // ROUNDS
            for rnd in range(ROUNDS):
                order = list(hosts.items()) if rnd % 2 == 0 else list(hosts.items())[::-1]
                for name, host in order:
                    for i in range(per_round):
                        text = pool[(rnd * per_round + i) % len(pool)].json
                        began = time.perf_counter()
                        status, message = host.invoke("invalidate_whisks", text)
                        times[name].append(time.perf_counter() - began)
                        if status != "Success":
                            raise RuntimeError(f"the {name} app failed an invocation: {message}")
            for name, values in times.items():
                figures[name][size] = {"p50_ms": statistics.median(values) * 1000,
                                       "mean_ms": statistics.mean(values) * 1000, "invocations": len(values)}
        figures["runtime"] = f"azure-functions-runtime {version('azure-functions-runtime')}"
        figures["python"] = sys.version.split()[0]
        print(json.dumps(figures))
    finally:
        for host in hosts.values():
            host.close()
        shutil.rmtree(temp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
