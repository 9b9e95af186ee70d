"""scripts/run-local's work: the app run on this machine, against a local Kafka and Cosmos DB unless told others.

    scripts/run-local [--local-host]        (runs python -m devhost in .cache/venv-runtime-3.13)

1. Settings: the environment, over local.settings.json's Values when there is one (as Core Tools reads them).
2. Kafka: the broker of KAFKA_HOSTS, or a local one (scripts/kafka up in .kafka/) with the topic.
3. Cosmos DB: the account of COSMOSDB, or the project's emulator (scripts/cosmos up in .cosmos/) with the
   database, whisks and subjects as OpenWhisk creates them, and the lease container. Against an account the
   run reads under lease prefixes of its own (LOCAL_RUN_NAME, <user>@<host> unless set), which no region uses:
   with a region's prefix it would take a share of that region's leases and checkpoint changes its
   controllers would then never receive.
4. The app: with `func` on the PATH, `func start` (Core Tools, the Functions host); without it, or with
   --local-host, this package's local host: Microsoft's worker runtime runs function_app.py, Microsoft's Java
   change feed processor reads each Cosmos DB trigger's container, and the timer functions fire on their
   schedules.
5. Once every trigger holds its leases (a change written from then on is handed to its function) it prints
   one block: where Kafka and Cosmos DB are, the topic, the functions and lease prefixes, and the command
   that makes a change. Then the app's own log lines, and every message on the topic as the controllers
   receive it: its text, Kafka key, partition and offset.
6. SIGINT or SIGTERM stops everything it started, and it exits 0 once all of it is gone.

What it builds or fetches on a first run (the broker, the emulator, the processor) is timed and said.
Nothing here depends on pytest.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import getpass
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import Future
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = ROOT / ".run-local"  # this run's lock, logs and compiled protocol
KAFKA_DIR = ROOT / ".kafka"  # scripts/kafka's default state dir
COSMOS_DIR = ROOT / ".cosmos"  # scripts/cosmos's: `scripts/cosmos put` finds the emulator there
PARTITIONS = 3  # several, so that a message's partition follows from its key
DEFAULT_DATABASE = "openwhisk"
LEASES_TIMEOUT = 120.0
SERVICE_TIMEOUT = 30.0
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class RunFailed(Exception):
    """A step could not be done; the message says which and why."""


class Stopped(Exception):
    """SIGINT or SIGTERM arrived before the run was ready."""


def say(text: str) -> None:
    print(f"run-local: {text}", flush=True)


def clock() -> str:
    return datetime.datetime.now().strftime("%H:%M:%S")


# -- settings ---------------------------------------------------------------------------------------

def read_settings(environ) -> tuple[dict, Optional[Path]]:
    """The environment over local.settings.json's Values, blank values dropped; and the file, when read."""
    from cache_invalidator.cli.appsettings import SettingsFileError, load_values

    path = ROOT / "local.settings.json"
    values: dict = {}
    if path.is_file():
        try:
            values = load_values(path)
        except SettingsFileError as e:
            raise RunFailed(str(e)) from None
    merged = {**values, **environ}
    return {k: v for k, v in merged.items() if v.strip()}, (path if path.is_file() else None)


def default_run_name() -> str:
    """<user>@<host>, in the characters LOCAL_RUN_NAME allows."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "user"
    return re.sub(r"[^A-Za-z0-9_.@]", "_", f"{user}@{socket.gethostname().split('.')[0]}")[:64]


def redact(connection: str) -> str:
    """A connection string as printed: whole for an emulator on this machine (scripts/cosmos's key is the one
    Microsoft publishes, and the emulator checks none), an account's key hidden."""
    endpoint = re.search(r"AccountEndpoint=([^;]*)", connection)
    if endpoint and urlparse(endpoint[1]).hostname in LOCAL_HOSTS:
        return connection
    return re.sub(r"(AccountKey=)[^;]*", r"\1***", connection)


# -- steps: services started with the project's scripts ---------------------------------------------

class Scripts:
    """The project's scripts this run runs, each in a session of its own, so that a stop can end the ones still
    running (a broker being fetched, an emulator being built) with everything they started."""

    def __init__(self):
        self._running: set = set()
        self._lock = threading.Lock()

    def run(self, *args: str, timeout: float = 1800.0) -> str:
        """Runs scripts/<name> with this Python; returns its stdout. Its stderr (progress) goes to the terminal."""
        process = subprocess.Popen([sys.executable, str(ROOT / "scripts" / args[0]), *args[1:]], cwd=ROOT,
                                   text=True, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True)
        with self._lock:
            self._running.add(process)
        try:
            out, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _end_group(process, signal.SIGKILL)
            raise RunFailed(f"scripts/{' '.join(args)} did not finish within {timeout:.0f} s") from None
        finally:
            with self._lock:
                self._running.discard(process)
        if process.returncode != 0:
            raise RunFailed(f"scripts/{' '.join(args)} failed (exit {process.returncode})")
        return out

    def interrupt(self) -> None:
        """SIGINT to every script still running, as Ctrl-C in its terminal would send (they stop what they began)."""
        with self._lock:
            running = list(self._running)
        for process in running:
            _end_group(process, signal.SIGINT)


def _end_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def last_value(output: str, name: str) -> str:
    line = (output.strip().splitlines() or [""])[-1]
    if not line.startswith(f"{name}="):
        raise RunFailed(f"expected {name}=... as the last line, got {line!r}")
    return line.split("=", 1)[1]


class Service:
    """A broker or emulator in the project's state dir: started here and stopped at the end, or found running
    (someone's own) and left alone. A marker in RUN_DIR says which it started, so that what a run killed with
    SIGKILL left behind is taken down by the next."""

    def __init__(self, scripts: Scripts, script: str, state_dir: Path):
        self.scripts, self.script, self.state_dir = scripts, script, state_dir
        self.marker = RUN_DIR / f"{script}-started"
        self.started = False

    def up(self) -> str:
        if self.marker.is_file():
            say(f"taking down the {self.script} a previous run left in {self.state_dir.name}/")
            self.down()
        elif subprocess.run([sys.executable, str(ROOT / "scripts" / self.script), "status", "--dir",
                             str(self.state_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
            say(f"using the {self.script} already running in {self.state_dir.name}/ (it is left running)")
            return self.scripts.run(self.script, "up", "--dir", str(self.state_dir))
        self.marker.write_text(f"{os.getpid()}\n")
        self.started = True
        return self.scripts.run(self.script, "up", "--dir", str(self.state_dir))

    def down(self) -> None:
        self.scripts.run(self.script, "down", "--dir", str(self.state_dir), "--timeout", "10", timeout=60)
        self.marker.unlink(missing_ok=True)
        self.started = False


HEARTBEAT_SECONDS = 60.0


def timed(what: str, first_run: bool, step: Callable[[], object], note: str = "") -> object:
    """Runs a step, saying what it does first when it builds or fetches (and every minute while it does), and
    how long it took."""
    started = time.monotonic()
    done = threading.Event()
    if first_run:
        say(f"first run: {what}{note} ...")

        def heartbeat() -> None:
            while not done.wait(HEARTBEAT_SECONDS):
                say(f"still {what}: {(time.monotonic() - started) / 60:.0f} min so far")

        threading.Thread(target=heartbeat, daemon=True).start()
    try:
        result = step()
    finally:
        done.set()
    say(f"{what}: {time.monotonic() - started:.1f} s")
    return result


def start_kafka(broker: Service, topic: str) -> str:
    """KAFKA_HOSTS of a local broker with the topic, fetched with Maven on the first run."""
    fetched = (ROOT / ".cache" / "kafka-4.4.0" / "COMPLETE").is_file()  # where scripts/kafka keeps it
    out = timed("fetching Apache Kafka 4.4.0 with Maven and starting a broker" if not fetched
                else "starting a local Kafka broker", not fetched, broker.up, " (a minute or two)")
    broker.scripts.run("kafka", "topic", topic, "--partitions", str(PARTITIONS), "--if-not-exists", "--dir",
                       str(broker.state_dir))
    return last_value(out, "KAFKA_HOSTS")


def start_emulator(emulator: Service) -> str:
    """COSMOSDB of the project's emulator, built once with cargo."""
    built = (ROOT / ".cache" / "cosmos-emulator" / "target" / "release" / "cosmos-emulator").is_file()  # scripts/cosmos's
    timed("building the Cosmos DB emulator with cargo" if not built else "checking the Cosmos DB emulator's build",
          not built, lambda: emulator.scripts.run("cosmos", "build"), " (several minutes)")
    return last_value(timed("starting the Cosmos DB emulator", False, emulator.up), "COSMOSDB")


def build_listener() -> str:
    """Microsoft's change feed processor's classpath, fetched and compiled on the first run."""
    from devhost import trigger_listener

    built = trigger_listener.PROGRAM.is_built()
    return timed(f"fetching azure-cosmos {trigger_listener.AZURE_COSMOS_VERSION} (Java) with Maven and compiling "
                 f"the trigger listener" if not built else "checking the change feed processor's build", not built,
                 trigger_listener.build, " (a minute or two)")


def create_containers(connection: str, trigger) -> None:
    """The database, whisks and subjects as OpenWhisk creates them (partition key /id, time to live on without
    a default: CosmosDBSupport.newDatabaseCollection), and the lease container (/id)."""
    from azure.cosmos import CosmosClient, PartitionKey

    from devhost.trigger_listener import connection_parts

    endpoint, key = connection_parts(connection)
    client = CosmosClient(endpoint, credential=key)
    try:
        database = client.create_database_if_not_exists(trigger.database)
        for name in (trigger.whisks_container, trigger.subjects_container):
            database.create_container_if_not_exists(name, partition_key=PartitionKey(path="/id"), default_ttl=-1)
        database.create_container_if_not_exists(trigger.lease_container, partition_key=PartitionKey(path="/id"))
    finally:
        client.close()


# -- what the run prints ------------------------------------------------------------------------------

class AppLines(logging.Handler):
    """Prints the app's own log lines (logger cache_invalidator) and every WARNING or worse, one line each."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.WARNING and not record.name.startswith("cache_invalidator"):
            return
        level = "" if record.levelno == logging.INFO else f"{record.levelname} "
        print(f"{clock()} {level}{record.getMessage()}", flush=True)


class TopicReader:
    """Reads the topic from its end as a controller does, printing each message: text, key, partition, offset."""

    def __init__(self, kafka_config: dict, topic: str):
        from confluent_kafka import Consumer, TopicPartition

        self.topic = topic
        self.consumer = Consumer({**kafka_config, "group.id": f"run-local-{uuid.uuid4()}",
                                  "enable.auto.commit": False, "log_level": 3})
        metadata = self.consumer.list_topics(topic, timeout=SERVICE_TIMEOUT)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            self.consumer.close()
            raise RunFailed(f"topic {topic!r} does not exist on {kafka_config['bootstrap.servers']} (KAFKA_TOPIC): "
                            f"create it, as the controllers' Kafka has it")
        # Assigned at each partition's end before the run says it is ready: every later message is printed.
        positions = []
        for partition in sorted(found.partitions):
            _, high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=SERVICE_TIMEOUT)
            positions.append(TopicPartition(topic, partition, high))
        self.consumer.assign(positions)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="topic-reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            message = self.consumer.poll(0.2)
            if message is None:
                continue
            if message.error():
                print(f"{clock()} WARNING reading {self.topic}: {message.error()}", flush=True)
                continue
            key = (message.key() or b"").decode("utf-8", "replace")
            value = (message.value() or b"").decode("utf-8", "replace")
            print(f"{clock()} Kafka {self.topic} partition={message.partition()} offset={message.offset()} "
                  f"key={key} message={value}", flush=True)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.consumer.close()


def kafka_client_config(env: dict) -> dict:
    """The app's own connection to Kafka (bootstrap servers and security), for reading the topic back."""
    from cache_invalidator.settings import Settings

    producer = Settings.from_env(env).kafka.producer_config()
    return {k: v for k, v in producer.items() if k == "bootstrap.servers" or k.split(".")[0] in ("security", "sasl",
                                                                                                   "ssl")}


# -- the local host ----------------------------------------------------------------------------------

class TimerTrigger(threading.Thread):
    """Fires a timer function on its NCRONTAB schedule, as the host's timer extension does (run on start off)."""

    def __init__(self, name: str, schedule, invoke_timer, stop: threading.Event):
        super().__init__(name=f"timer-{name}", daemon=True)
        self.function, self.schedule, self.invoke_timer, self.stop = name, schedule, invoke_timer, stop
        self.next = schedule.next_after(datetime.datetime.now())

    def run(self) -> None:
        while not self.stop.wait(max(0.0, (self.next - datetime.datetime.now()).total_seconds())):
            try:
                status, message = self.invoke_timer(self.function)
            except Exception as e:  # the worker went away: the run is stopping or has failed
                status, message = "Failure", f"{type(e).__name__}: {e}"
            if status != "Success" and not self.stop.is_set():
                print(f"{clock()} WARNING {self.function} failed: {message}", flush=True)
            self.next = self.schedule.next_after(datetime.datetime.now())


def leases_held(documents: list, host: str, prefixes: list[str], owner: str) -> dict:
    """Per lease prefix, how many of its leases `owner` holds with a continuation, or None while any is not.

    A lease with a continuation has been read once: from then on the processor hands every later change,
    so a change written the moment the run says it is ready is not missed, though the feed starts from now.
    """
    held = {}
    for prefix in prefixes:
        # Lease ids are <prefix><account host>_<database rid>_<container rid>..<token> (the Java processor's).
        leases = [d for d in documents if d["id"].startswith(prefix + host) and "LeaseToken" in d]
        ready = leases and all(d.get("Owner") == owner and d.get("ContinuationToken") for d in leases)
        held[prefix] = len(leases) if ready else None
    return held


def describe(function) -> tuple[str, dict]:
    """(trigger type, binding) of a function's trigger, from the metadata the worker returned."""
    for raw in function.raw_bindings:
        binding = json.loads(raw)
        if binding.get("type", "").endswith("Trigger"):
            return binding["type"], binding
    return "", {}


class LocalHost:
    """The worker, the trigger listener and the timers: the app run by this package."""

    def __init__(self, env: dict, stop: threading.Event):
        self.env, self.stop = env, stop
        self.worker = self.listener = None
        self.timers: list[TimerTrigger] = []
        self.owner = f"run-local-{socket.gethostname()}-{os.getpid()}"

    def start(self, classpath: Callable[[], str]) -> None:
        """The worker, then the processor (its `classpath()` waited for only then), then the timers' schedules."""
        from devhost import trigger_listener
        from devhost.schedule import Schedule
        from devhost.worker_host import WorkerHost, compile_protos

        started = time.monotonic()
        protos = compile_protos(RUN_DIR / "function-rpc")
        self.worker = WorkerHost(ROOT, self.env, protos_dir=protos)
        response = self.worker.init()
        if response.result.status != self.worker.protos.StatusResult.Success:
            raise RunFailed(f"the worker runtime could not index function_app.py: "
                            f"{response.result.exception.message}")
        functions = self.worker.load_all()
        if not functions:
            raise RunFailed(f"the worker runtime found no function in function_app.py:\n{self.worker.stderr[-3000:]}")
        say(f"Microsoft's worker runtime (azure-functions-runtime, Python {sys.version.split()[0]}) indexed "
            f"function_app.py in {time.monotonic() - started:.1f} s: {', '.join(functions)}")
        self.functions = functions

        triggers = trigger_listener.cosmos_triggers(functions)
        classpath = classpath()
        started = time.monotonic()
        self.listener = trigger_listener.TriggerListener(
            classpath, triggers, self.env, self.worker.invoke, host_name=self.owner,
            stderr_path=RUN_DIR / "trigger-listener.log")
        say(f"Microsoft's change feed processor (azure-cosmos {trigger_listener.AZURE_COSMOS_VERSION}, Java) started "
            f"for {', '.join(triggers)} in {time.monotonic() - started:.1f} s")
        for name, function in functions.items():
            kind, binding = describe(function)
            if kind == "timerTrigger":
                self.timers.append(TimerTrigger(name, Schedule(binding["schedule"]), self.worker.invoke_timer,
                                                self.stop))

    def wait_for_leases(self, connection: str, trigger, prefixes: list[str]) -> dict:
        """Per lease prefix, the number of leases this run holds, once it holds them all, each read once."""
        from azure.cosmos import CosmosClient

        from devhost.trigger_listener import connection_parts

        endpoint, key = connection_parts(connection)
        with CosmosClient(endpoint, credential=key) as client:
            leases = client.get_database_client(trigger.database).get_container_client(trigger.lease_container)
            return self._wait_for_leases(leases, urlparse(endpoint).hostname or "", prefixes)

    def _wait_for_leases(self, leases, host: str, prefixes: list[str]) -> dict:
        started = time.monotonic()
        while True:
            held = leases_held(list(leases.read_all_items()), host, prefixes, self.owner)
            if all(held.values()):
                say(f"every trigger holds its leases: {time.monotonic() - started:.1f} s")
                return held
            if self.stop.is_set():
                raise Stopped()
            if not self.alive():
                raise RunFailed(f"the change feed processor stopped:\n{self.listener.stderr}")
            if time.monotonic() - started > LEASES_TIMEOUT:
                raise RunFailed(f"the triggers did not hold their leases within {LEASES_TIMEOUT:.0f} s "
                                f"({held}); the processor's log, {RUN_DIR / 'trigger-listener.log'}:\n"
                                f"{self.listener.stderr}")
            time.sleep(0.2)

    def start_timers(self) -> None:
        for timer in self.timers:
            timer.start()

    def alive(self) -> bool:
        return self.listener.running and self.worker.running

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close(timeout=15)
        if self.worker is not None:
            self.worker.close(timeout=10)
        for timer in self.timers:
            if timer.ident is not None:
                timer.join(2)


# -- func start -----------------------------------------------------------------------------------------

class CoreTools:
    """`func start` (Core Tools: the Functions host itself), with Azurite for the host's storage."""

    def __init__(self, env: dict):
        self.env = env
        self.azurite = self.func = None

    def start(self) -> None:
        if not _listens(10000):
            npx = shutil.which("npx")
            if npx is None:
                raise RunFailed("func start needs Azurite for AzureWebJobsStorage, run with npx: Node.js is missing")
            (ROOT / ".azurite").mkdir(exist_ok=True)
            self.azurite = subprocess.Popen(
                [npx, "--yes", "azurite", "--silent", "--skipApiVersionCheck", "--location", ".azurite",
                 "--debug", ".azurite/debug.log"], cwd=ROOT, stdin=subprocess.DEVNULL, start_new_session=True)
            say(f"Azurite started for the host's storage (pid {self.azurite.pid}), data in .azurite/")
        venv = Path(sys.prefix)
        env = {**self.env, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
        env.setdefault("AzureWebJobsStorage", "UseDevelopmentStorage=true")
        self.func = subprocess.Popen(["func", "start"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                     start_new_session=True)

    def alive(self) -> bool:
        return self.func is not None and self.func.poll() is None

    def close(self) -> None:
        for process, signum in ((self.func, signal.SIGINT), (self.azurite, signal.SIGTERM)):
            if process is None or process.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signum)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _listens(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


# -- the run ------------------------------------------------------------------------------------------------

def ready_block(*, kafka_hosts: str, cosmos: str, emulator: bool, trigger, topic: str, functions: dict,
                held: Optional[dict], local_host: bool, own_kafka: bool) -> str:
    """What a person needs once the run is ready: where things are, what runs, how to make a change."""
    lines = ["", "Ready. " + ("A local host of Microsoft's parts, not the Azure Functions host: Microsoft's worker "
                              "runtime runs the app, Microsoft's Java change feed processor reads each container."
                              if local_host else "func start (Core Tools) runs the app; its own output follows."),
             f"  KAFKA_HOSTS={kafka_hosts}" + ("   (a local broker, .kafka/)" if own_kafka else ""),
             f"  COSMOSDB={redact(cosmos)}" + ("   (the project's emulator, .cosmos/)" if emulator else
                                                "   (COSMOSDB's account)"),
             f"  database {trigger.database}, lease container {trigger.lease_container}",
             f"  topic {topic}",
             "  functions:"]
    for name, (kind, binding) in functions.items():
        if kind == "cosmosDBTrigger":
            prefix = binding.get("leaseContainerPrefix", "")
            count = f", {held[prefix]} leases held" if held and held.get(prefix) else ""
            lines.append(f"    {name}: change feed of {binding['containerName']}, lease prefix {prefix}{count}")
        elif kind == "timerTrigger":
            lines.append(f"    {name}: timer, schedule {binding['schedule']}")
        else:
            lines.append(f"    {name}: {kind}")
    if trigger.local_run_name:
        lines.append(f"  lease prefixes local.{trigger.local_run_name}.*: this run's own (LOCAL_RUN_NAME); no "
                     f"region reads under them")
    put = "scripts/cosmos put whisks guest/test-package"
    lines.append("  make a change, in another shell:")
    lines.append(f"    {put}" if emulator else f"    COSMOSDB=<this account's connection string> {put}   "
                 f"(writes into the account, as a controller would)")
    lines.append("  Ctrl-C stops everything this run started.")
    return "\n".join(lines) + "\n"


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/run-local",
        description="Run the app on this machine: a local Kafka broker and the project's Cosmos DB emulator "
                    "(unless KAFKA_HOSTS or COSMOSDB, in the environment or local.settings.json, name others), "
                    "and func start when Core Tools is installed, else the local host of Microsoft's parts "
                    "(devhost/). Ctrl-C stops everything it started.")
    parser.add_argument("--local-host", action="store_true",
                        help="run the app in the local host even when func is on the PATH")
    return parser.parse_args(argv)


def background(step: Callable[[], object]) -> Future:
    """The step run in a daemon thread: a stop never waits for a fetch or a build to finish."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(step())
        except BaseException as e:  # handed to whoever waits for the result
            future.set_exception(e)

    threading.Thread(target=run, name=getattr(step, "__name__", "step"), daemon=True).start()
    return future


class LocalRun:
    """One run: what it started, so that a signal at any moment stops exactly that."""

    def __init__(self, local_host: bool):
        self.local_host = local_host
        self.stop = threading.Event()
        # While False a signal raises Stopped in the main thread; True once ready, and around the starts of the
        # worker and the processor, whose processes must be known before they can be stopped.
        self.shielded = False
        self.scripts = Scripts()
        self.broker = Service(self.scripts, "kafka", KAFKA_DIR)
        self.emulator = Service(self.scripts, "cosmos", COSMOS_DIR)
        self.reader: Optional[TopicReader] = None
        self.app = None  # LocalHost or CoreTools

    def on_signal(self, signum, _frame) -> None:
        if self.stop.is_set():
            say("still stopping ...")
            return
        self.stop.set()
        print(flush=True)
        say(f"{signal.Signals(signum).name}: stopping everything this run started ...")
        if not self.shielded:
            raise Stopped()

    def start(self) -> None:
        """Everything up to the ready block."""
        from cache_invalidator.settings import DEFAULT_TOPIC, SettingsError, TriggerSettings

        started = time.monotonic()
        say("the app on this machine: a local Kafka and Cosmos DB unless the settings name others; see README.md, "
            "\"Running locally\"")
        settings, settings_file = read_settings(os.environ)
        if settings_file:
            say(f"settings: the environment over {settings_file.name}")
        topic = settings.get("KAFKA_TOPIC", DEFAULT_TOPIC)

        # The broker, the processor's build and the emulator side by side: on a first run, two Maven fetches and
        # a cargo build.
        if settings.get("KAFKA_HOSTS"):
            say(f"Kafka: KAFKA_HOSTS={settings['KAFKA_HOSTS']} (from the settings); topic {topic} must exist there")
            kafka = Future()
            kafka.set_result(settings["KAFKA_HOSTS"])
        else:
            kafka = background(lambda: start_kafka(self.broker, topic))
        classpath = background(build_listener) if self.local_host else None
        emulator = False
        if settings.get("COSMOSDB"):
            cosmos = settings["COSMOSDB"]
            settings.setdefault("LOCAL_RUN_NAME", default_run_name())
            say(f"Cosmos DB: COSMOSDB={redact(cosmos)} (from the settings); this run's leases: LOCAL_RUN_NAME="
                f"{settings['LOCAL_RUN_NAME']}")
        elif settings.get("COSMOSDB__accountEndpoint") and not self.local_host:
            cosmos = ""
            settings.setdefault("LOCAL_RUN_NAME", default_run_name())
        elif settings.get("COSMOSDB__accountEndpoint"):
            raise RunFailed("COSMOSDB__accountEndpoint (a managed identity) is set without COSMOSDB: the local "
                            "host's change feed processor signs in with a key; set COSMOSDB to the account's "
                            "connection string for a local run")
        else:
            cosmos, emulator = start_emulator(self.emulator), True
        kafka_hosts = kafka.result()
        env = {**settings, "KAFKA_HOSTS": kafka_hosts, "FUNCTIONS_WORKER_RUNTIME": "python",
               "COSMOSDB_NAME": settings.get("COSMOSDB_NAME", DEFAULT_DATABASE), **({"COSMOSDB": cosmos} if cosmos
                                                                                    else {})}
        try:
            trigger = TriggerSettings.from_env(env)
            reader_config = kafka_client_config(env)
        except SettingsError as e:
            raise RunFailed(str(e)) from None
        if emulator:
            timed("creating the database, whisks, subjects and the lease container", False,
                  lambda: create_containers(cosmos, trigger))

        self.reader = TopicReader(reader_config, topic)
        if self.local_host:
            self.app = LocalHost(env, self.stop)
            self.shielded = True
            self.app.start(classpath.result)
            self.shielded = False
            if self.stop.is_set():
                raise Stopped()
            functions = {name: describe(f) for name, f in self.app.functions.items()}
            prefixes = [b["leaseContainerPrefix"] for kind, b in functions.values() if kind == "cosmosDBTrigger"]
            say("waiting until every trigger holds its leases ...")
            held = self.app.wait_for_leases(cosmos, trigger, prefixes)
        else:
            self.app = CoreTools(env)
            functions = {name: ("cosmosDBTrigger", {"containerName": container,
                                                    "leaseContainerPrefix": trigger.lease_prefix(container)})
                         for name, container in (("invalidate_whisks", trigger.whisks_container),
                                                 ("invalidate_subjects", trigger.subjects_container))}
            held = None
        self.shielded = True  # from here a signal only sets `stop`, which wait() sees
        self.reader.start()
        shown = cosmos or f"(a managed identity) {settings['COSMOSDB__accountEndpoint']}"
        print(ready_block(kafka_hosts=kafka_hosts, cosmos=shown, emulator=emulator, trigger=trigger,
                          topic=topic, functions=functions, held=held, local_host=self.local_host,
                          own_kafka=self.broker.started), flush=True)
        say(f"ready {time.monotonic() - started:.1f} s after the start")
        if self.local_host:
            self.app.start_timers()
        else:
            self.app.start()

    def wait(self) -> int:
        """Until a signal (0), or until the app stops on its own (1)."""
        while not self.stop.wait(0.5):
            if not self.app.alive():
                say("the app stopped on its own; stopping the rest")
                return 1
        return 0

    def stop_everything(self) -> int:
        """Stops the app, then the services this run started, side by side; 1 when something could not be stopped."""
        self.shielded = True  # no Stopped raised from here on
        self.stop.set()
        started = time.monotonic()
        self.scripts.interrupt()  # a fetch, a build or a start still running
        status = 0
        for part in (self.app, self.reader):
            if part is None:
                continue
            try:
                part.close()
            except Exception as e:
                say(f"stopping {type(part).__name__} failed: {type(e).__name__}: {e}")
                status = 1
        failures = []

        def down(service: Service) -> None:
            try:
                service.down()
            except (RunFailed, subprocess.TimeoutExpired) as e:
                failures.append(f"{service.script}: {e}")

        threads = [threading.Thread(target=down, args=(s,)) for s in (self.broker, self.emulator) if s.started]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for failure in failures:
            say(f"could not stop {failure}")
        say(f"stopped in {time.monotonic() - started:.1f} s" + (", with failures" if failures or status else ""))
        return 1 if failures else status


def hold_lock():
    """This checkout's run lock, or None when another run holds it."""
    RUN_DIR.mkdir(exist_ok=True)
    lock = open(RUN_DIR / "lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        print(f"run-local: another scripts/run-local runs in this checkout (pid {lock.read().strip()})",
              file=sys.stderr)
        lock.close()
        return None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    run = LocalRun(local_host=args.local_host or shutil.which("func") is None)
    signal.signal(signal.SIGINT, run.on_signal)
    signal.signal(signal.SIGTERM, run.on_signal)
    lock = hold_lock()
    if lock is None:
        return 1
    logging.basicConfig(level=logging.INFO, handlers=[AppLines()], force=True)
    for noisy in ("azure", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    status = 0
    try:
        run.start()
        status = run.wait()
    except Stopped:
        pass
    except RunFailed as e:
        if not run.stop.is_set():  # else a step ended by the stop itself
            say(str(e))
            status = 1
    except Exception as e:  # anything unforeseen still stops what was started
        say(f"failed: {type(e).__name__}: {e}")
        status = 1
    finally:
        status = run.stop_everything() or status
        lock.close()
    return status
