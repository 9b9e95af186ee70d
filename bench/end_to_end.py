"""From a document's write to its invalidation read back from Kafka, through Microsoft's change feed processor and the runtime.

Run it with the runtime suite's Python 3.13 environment (made by scripts/test):

    .cache/venv-runtime-3.13/bin/python bench/end_to_end.py              # 2000 writes per poll delay
    .cache/venv-runtime-3.13/bin/python bench/end_to_end.py --writes 300 # a quick look

It starts a Kafka broker (scripts/kafka, unless KAFKA_HOSTS is set) and a Cosmos DB emulator (scripts/cosmos), both
in a temporary directory, and one app instance as the runtime suite does: a worker (devhost/worker_host.py)
and Microsoft's Java change feed processor (devhost/trigger_listener.py) on both containers. A writer upserts whisks
documents at a steady rate; a consumer reads the topic. A document's time is from the moment its upsert returned
to the moment the consumer received its message, so it holds the feed's poll delay, the processor's read, the
hand-over to the worker, the function, Kafka's acknowledgement, and the read back.

The floor beside it: a write waits for the lease's next read, on average half the poll delay, at most all of it,
and then its message goes to Kafka and back. Measured here as the poll delay times a uniform draw plus the
produce-to-read-back time of a single message with the app's producer config (acks=all, idempotent), sampled as
often as there are writes. Prints its figures and writes them to bench/results-end-to-end.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT)]

from confluent_kafka import Consumer, Producer  # noqa: E402

from cache_invalidator.settings import Settings  # noqa: E402
from tests.app_loading import APP_SETTING_PREFIXES, BASE_SETTINGS  # noqa: E402
from tests.lease_documents import LEASES  # noqa: E402
from devhost.worker_host import WorkerHost, compile_protos, worker_environment  # noqa: E402
from devhost.trigger_listener import AZURE_COSMOS_VERSION, TriggerListener, build, cosmos_triggers, wait_for  # noqa: E402

RESULTS = BENCH / "results-end-to-end.json"


def script(name: str, *args: str, timeout: float = 900) -> str:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/{name} {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr}")
    return proc.stdout.strip().splitlines()[-1]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class TopicReader(threading.Thread):
    """Receives the topic's messages and notes when each key first arrived (time.time())."""

    def __init__(self, hosts: str, topic: str):
        super().__init__(daemon=True)
        self.consumer = Consumer({"bootstrap.servers": hosts, "group.id": f"bench-{uuid.uuid4().hex}",
                                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                                  "fetch.wait.max.ms": 5, "fetch.min.bytes": 1})
        self.consumer.subscribe([topic])
        self.arrived: dict[str, float] = {}
        self.received = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            message = self.consumer.poll(0.05)
            if message is None or message.error():
                continue
            now = time.time()
            self.received += 1
            self.arrived.setdefault(message.key().decode(), now)
        self.consumer.close()


def create_topic(hosts: str, topic: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": hosts})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=-1)])[topic].result(timeout=60)
    wait_for(lambda: all(p.leader >= 0 for p in admin.list_topics(topic, timeout=10).topics[topic].partitions.values()),
             60, f"topic {topic} has a leader")


def kafka_round_trips(hosts: str, topic: str, producer_config: dict, count: int) -> list[float]:
    """Produce-to-read-back seconds of single messages, each produced and flushed alone."""
    reader = TopicReader(hosts, topic)
    reader.start()
    producer = Producer(producer_config)
    producer.produce(topic, key=b"warm-up", value=b"{}")
    producer.flush(30)
    wait_for(lambda: "warm-up" in reader.arrived, 60, "the reader sees the topic")
    sent = {}
    for i in range(count):
        key = f"floor-{i}"
        sent[key] = time.time()
        producer.produce(topic, key=key.encode(), value=b"{}")
        producer.flush(30)
        wait_for(lambda: key in reader.arrived, 30, f"{key} read back", poll=0.0005)
    reader.stopping.set()
    reader.join()
    return [reader.arrived[key] - at for key, at in sent.items()]


def run_one(poll_delay_ms: int, writes: int, rate: float, hosts: str, endpoint_line: str, producer_config: dict,
            classpath: str, temp: Path) -> dict:
    from azure.cosmos import CosmosClient, PartitionKey

    connection = endpoint_line.split("=", 1)[1]
    pairs = dict(part.split("=", 1) for part in connection.strip().split(";") if "=" in part)
    client = CosmosClient(pairs["AccountEndpoint"], credential=pairs["AccountKey"], connection_verify=False)
    database = client.create_database(f"bench-{uuid.uuid4().hex[:8]}")
    for name in ("whisks", "subjects"):
        database.create_container(name, partition_key=PartitionKey(path="/id"))
    topic = f"bench-end-to-end-{uuid.uuid4().hex[:8]}"
    create_topic(hosts, topic)
    settings = {**BASE_SETTINGS, "COSMOSDB": connection, "COSMOSDB_NAME": database.id, "KAFKA_HOSTS": hosts,
                "KAFKA_TOPIC": topic, "COSMOSDB_FEED_POLL_DELAY_MS": str(poll_delay_ms)}
    host = WorkerHost(ROOT, worker_environment(settings, APP_SETTING_PREFIXES), protos_dir=temp / "protos")
    listener = None
    try:
        response = host.init()
        if response.result.status != host.protos.StatusResult.Success:
            raise RuntimeError(f"the app did not index: {response.result.exception.message}")
        host.load_all()
        listener = TriggerListener(classpath, cosmos_triggers(host.functions), settings, host.invoke,
                                   host_name="bench-1", stderr_path=temp / f"listener-{poll_delay_ms}.stderr")
        leases = database.get_container_client(LEASES)
        wait_for(lambda: sum(1 for d in leases.read_all_items() if d.get("Owner") == "bench-1") == 8, 120,
                 "the instance owns its eight leases")
        reader = TopicReader(hosts, topic)
        reader.start()
        whisks = database.get_container_client("whisks")
        # A first write, to see the path work end to end before timing.
        whisks.upsert_item({"id": "guest|warm-up"})
        wait_for(lambda: "guest/warm-up" in reader.arrived, 120, "the first invalidation")
        written: dict[str, float] = {}
        started = time.monotonic()
        for i in range(writes):
            pause = started + i / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            whisks.upsert_item({"id": f"guest|e2e-{i}", "exec": {"kind": "nodejs:20"}})
            written[f"guest/e2e-{i}"] = time.time()
        wait_for(lambda: all(key in reader.arrived for key in written), 300, "every write's invalidation")
        reader.stopping.set()
        reader.join()
        latencies = [reader.arrived[key] - at for key, at in written.items()]
        round_trips = kafka_round_trips(hosts, topic, producer_config, min(writes, 500))
        floor = [poll_delay_ms / 1000 * random.random() + random.choice(round_trips) for _ in latencies]
        batches = [b for b in listener.batches if b.function == "invalidate_whisks" and b.outcome == "ok"]
        return {"poll_delay_ms": poll_delay_ms, "writes": writes, "rate_per_s": rate,
                "p50_ms": 1000 * percentile(latencies, 50), "p99_ms": 1000 * percentile(latencies, 99),
                "max_ms": 1000 * max(latencies),
                "floor_p50_ms": 1000 * percentile(floor, 50), "floor_p99_ms": 1000 * percentile(floor, 99),
                "kafka_p50_ms": 1000 * percentile(round_trips, 50), "kafka_p99_ms": 1000 * percentile(round_trips, 99),
                "batches": len(batches), "documents_per_batch": sum(len(b.documents) for b in batches) / len(batches),
                "messages_received": reader.received, "processor_start_s": listener.start_seconds}
    finally:
        if listener is not None:
            listener.close()
        host.close()
        client.delete_database(database.id)
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=2000, help="documents written per poll delay (default 2000)")
    parser.add_argument("--rate", type=float, default=40.0, help="writes per second (default 40)")
    parser.add_argument("--poll-delays", default="1000,100",
                        help="COSMOSDB_FEED_POLL_DELAY_MS values, comma-separated (default 1000 (the app's), 100)")
    args = parser.parse_args()
    temp = Path(tempfile.mkdtemp(prefix="bench-end-to-end-"))
    kafka_hosts = os.environ.get("KAFKA_HOSTS", "").strip()
    try:
        classpath = build()
        compile_protos(temp / "protos")
        hosts = kafka_hosts or script("kafka", "up", "--dir", str(temp / "kafka")).split("=", 1)[1]
        endpoint_line = script("cosmos", "up", "--dir", str(temp / "cosmos"))
        producer_config = Settings.from_env({**BASE_SETTINGS, "KAFKA_HOSTS": hosts}).kafka.producer_config()
        runs = []
        for poll_delay in (int(p) for p in args.poll_delays.split(",")):
            figures = run_one(poll_delay, args.writes, args.rate, hosts, endpoint_line, producer_config, classpath,
                              temp)
            runs.append(figures)
            print(f"poll delay {poll_delay} ms, {figures['writes']} writes at {args.rate:g}/s: "
                  f"p50 {figures['p50_ms']:.0f} ms, p99 {figures['p99_ms']:.0f} ms (max {figures['max_ms']:.0f}); "
                  f"floor p50 {figures['floor_p50_ms']:.0f} ms, p99 {figures['floor_p99_ms']:.0f} ms "
                  f"(Kafka produce to read back p50 {figures['kafka_p50_ms']:.1f} ms, p99 {figures['kafka_p99_ms']:.1f}"
                  f" ms); {figures['batches']} batches, {figures['documents_per_batch']:.2f} documents each",
                  flush=True)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
        RESULTS.write_text(json.dumps({"commit": commit, "azure_cosmos_java": AZURE_COSMOS_VERSION,
                                       "python": platform.python_version(), "machine": platform.machine(),
                                       "cores": os.cpu_count(), "runs": runs}, indent=2) + "\n")
        print(f"wrote {RESULTS.relative_to(ROOT)}")
    finally:
        subprocess.run([sys.executable, str(ROOT / "scripts" / "cosmos"), "down", "--dir", str(temp / "cosmos")],
                       capture_output=True, stdin=subprocess.DEVNULL)
        if not kafka_hosts:
            subprocess.run([sys.executable, str(ROOT / "scripts" / "kafka"), "down", "--dir", str(temp / "kafka")],
                           capture_output=True, stdin=subprocess.DEVNULL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
