"""Plays the Functions host against Microsoft's Python worker runtime (azure-functions-runtime).

`WorkerHost` starts devhost/proxy_worker.py (which plays the host's proxy
worker and hands every message to azure_functions_runtime) as a process of its
own, with the app settings as its environment, as the host starts a worker per
app. It then sends the messages the host sends, built from the public
FunctionRpc.proto (devhost/FunctionRpc.proto, compiled when first
needed): WorkerInitRequest (the runtime indexes the app here), FunctionsMetadataRequest,
a FunctionLoadRequest per function, and an InvocationRequest per batch carrying
what the host sends for a Cosmos DB trigger. Its size and shape follow the
worker's own test host, _MockWebHost in azure-functions-python-worker's
tests/utils/testutils.py; unlike it, messages travel on pipes, not gRPC.

    host = WorkerHost(app_dir, env)
    host.init()                 # the WorkerInitResponse; indexing errors show here
    (or host.reload_environment(env), as for a placeholder worker specialised for the app)
    host.load_all()             # metadata, then every function loaded
    status, message = host.invoke("invalidate_whisks", json_text, retry_count=0)
    status, message = host.invoke_timer("watch_leases")
    host.close()

Used by scripts/run-local, the tests and the benchmarks: nothing here depends on pytest.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import uuid
from concurrent.futures import Future
from pathlib import Path
from typing import Mapping, Optional

HERE = Path(__file__).resolve().parent
PROTO = HERE / "FunctionRpc.proto"
# The host's functionTimeout in host.json: an invocation that has not answered by then is a failure.
INVOCATION_TIMEOUT = 120.0
HOST_VERSION = "4.1043.0"  # what the driver says it is; the runtime only logs it
_LEVELS = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR,
           5: logging.CRITICAL}


def compile_protos(out_dir: Path) -> Path:
    """Compiles FunctionRpc.proto into FunctionRpc_pb2.py in out_dir with grpc_tools' protoc; returns out_dir."""
    import importlib.resources

    from grpc_tools import protoc

    well_known = importlib.resources.files("grpc_tools") / "_proto"  # google/protobuf/duration.proto
    out_dir.mkdir(parents=True, exist_ok=True)
    status = protoc.main(["protoc", f"-I{HERE}", f"-I{well_known}", f"--python_out={out_dir}", str(PROTO)])
    if status != 0:
        raise RuntimeError(f"protoc failed on {PROTO} (exit {status})")
    return out_dir


def load_protos(protos_dir: Path):
    """The compiled message classes, as a module (the `protos` the proxy worker hands the runtime)."""
    if str(protos_dir) not in sys.path:
        sys.path.insert(0, str(protos_dir))
    import FunctionRpc_pb2

    return FunctionRpc_pb2


class InvocationFailed(Exception):
    """An invocation the worker answered with Failure; `exception_type` is the app's exception class name."""

    def __init__(self, message: str):
        super().__init__(message)
        self.exception_type = message.split(":", 1)[0] if ":" in message else ""


class WorkerExited(RuntimeError):
    """The worker process ended while the host waited for an answer."""


class WorkerHost:
    """One worker process for one app, driven as the Functions host drives it."""

    def __init__(self, app_dir, env: Mapping[str, str], *, protos_dir: Optional[Path] = None,
                 python: str = sys.executable):
        self.app_dir = str(Path(app_dir).resolve())
        if protos_dir is None:
            protos_dir = compile_protos(Path(tempfile.mkdtemp(prefix="function-rpc-")))
        self.protos = load_protos(Path(protos_dir))
        self.worker_id = str(uuid.uuid4())
        self.logs: list = []  # every RpcLog the worker sent
        self.functions: dict = {}  # name -> RpcFunctionMetadata, after load_all()
        self._pending: dict = {}
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._last_failure: dict = {}
        self._started: Future = Future()
        # A session of its own: Ctrl-C in the host's terminal reaches the host, which then closes the worker's
        # stream, as the Functions host stops its workers; the worker never sees the signal itself.
        self._process = subprocess.Popen(
            [python, "-P", str(HERE / "proxy_worker.py"), str(protos_dir), self.worker_id],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**env, "FUNCTIONS_WORKER_RUNTIME": "python"}, cwd=self.app_dir, start_new_session=True)
        self._stderr: list[str] = []
        threading.Thread(target=self._read_stderr, name="worker-stderr", daemon=True).start()
        threading.Thread(target=self._read_responses, name="worker-responses", daemon=True).start()
        self._started.result(timeout=60)

    # -- the host's messages ----------------------------------------------------

    def init(self):
        """Sends WorkerInitRequest for the app folder; returns the WorkerInitResponse (indexing happens here)."""
        p = self.protos
        request = p.WorkerInitRequest(host_version=HOST_VERSION, function_app_directory=self.app_dir,
                                      worker_directory=str(HERE))
        return self._ask("worker_init_response", worker_init_request=request)

    def reload_environment(self, env: Mapping[str, str]):
        """Sends FunctionEnvironmentReloadRequest, as the host does when it specialises a placeholder worker
        for an app: the runtime replaces the worker's whole environment with `env` and indexes the app again.
        Returns the FunctionEnvironmentReloadResponse."""
        request = self.protos.FunctionEnvironmentReloadRequest(environment_variables=dict(env),
                                                               function_app_directory=self.app_dir)
        return self._ask("function_environment_reload_response", function_environment_reload_request=request)

    def functions_metadata(self):
        """Sends FunctionsMetadataRequest; returns the FunctionMetadataResponse (what the host registers)."""
        request = self.protos.FunctionsMetadataRequest(function_app_directory=self.app_dir)
        return self._ask("function_metadata_response", functions_metadata_request=request)

    def load_all(self) -> dict:
        """Asks for the metadata, then loads every function it names; returns them by name."""
        metadata = self.functions_metadata()
        for function in metadata.function_metadata_results:
            response = self._ask(("function_load_response", function.function_id), function_load_request=
                                 self.protos.FunctionLoadRequest(function_id=function.function_id, metadata=function))
            if response.result.status != self.protos.StatusResult.Success:
                raise RuntimeError(f"{function.name} did not load: {response.result.exception.message}")
            self.functions[function.name] = function
        return self.functions

    def invoke(self, function_name: str, json_text: str, retry_count: int = 0,
               timeout: float = INVOCATION_TIMEOUT) -> tuple[str, str]:
        """Invokes a function with a change batch as the host's JSON; returns ("Success" or "Failure", exception message)."""
        response = self.invocation_response(function_name, json_text, retry_count, timeout)
        status = self.protos.StatusResult.Status.Name(response.result.status)
        if status == "Failure":
            self._last_failure[function_name] = response.result.exception
        return status, response.result.exception.message

    def invoke_documents(self, function_name: str, documents: list, retry_count: int = 0) -> None:
        """invoke() in the form tests.host_driver.LeaseDriver takes; raises InvocationFailed on Failure."""
        status, message = self.invoke(function_name, json.dumps(documents), retry_count)
        if status != "Success":
            raise InvocationFailed(message)

    def invocation_response(self, function_name: str, json_text: str, retry_count: int = 0,
                            timeout: float = INVOCATION_TIMEOUT):
        """Sends one InvocationRequest as the host does for a Cosmos DB trigger; returns the InvocationResponse."""
        p = self.protos
        function = self.functions[function_name]
        invocation_id = str(uuid.uuid4())
        request = p.InvocationRequest(
            invocation_id=invocation_id, function_id=function.function_id,
            # The trigger's binding, named as in the metadata, with the batch as the host
            # serialises the extension's IReadOnlyList of documents: a JSON array.
            input_data=[p.ParameterBinding(name=_trigger_name(function), data=p.TypedData(json=json_text))],
            # The Cosmos DB extension adds no binding data of its own; the host adds "sys"
            # (azure-functions-python-worker issue #24; some host versions leave it out).
            trigger_metadata={"sys": p.TypedData(json=json.dumps({
                "MethodName": function_name, "UtcNow": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                "RandGuid": str(uuid.uuid4())}))},
            trace_context=p.RpcTraceContext(trace_parent=f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00"))
        if retry_count:
            # Only a retry carries a RetryContext: the attempt's number, the policy's
            # maximum (-1: forever) and the previous attempt's exception.
            request.retry_context.CopyFrom(p.RetryContext(
                retry_count=retry_count, max_retry_count=function.retry_options.max_retry_count,
                exception=self._last_failure.get(function_name)))
        return self._ask(("invocation_response", invocation_id), timeout=timeout, invocation_request=request)

    def invoke_timer(self, function_name: str, *, past_due: bool = False,
                     timeout: float = INVOCATION_TIMEOUT) -> tuple[str, str]:
        """Invokes a timer-triggered function as the host does when its schedule fires; returns (status, message).

        The input is the WebJobs timer extension's TimerInfo as JSON (Schedule, ScheduleStatus with Last, Next
        and LastUpdated, IsPastDue), which azure.functions.timer.TimerRequestConverter decodes; the trigger
        metadata is the host's "sys" alone, as for the Cosmos DB trigger.
        """
        p = self.protos
        function = self.functions[function_name]
        invocation_id = str(uuid.uuid4())
        now = datetime.datetime.now(datetime.timezone.utc)
        timer_info = {"Schedule": {"AdjustForDST": True},
                      "ScheduleStatus": {"Last": (now - datetime.timedelta(minutes=1)).isoformat(),
                                         "Next": (now + datetime.timedelta(minutes=1)).isoformat(),
                                         "LastUpdated": now.isoformat()},
                      "IsPastDue": past_due}
        request = p.InvocationRequest(
            invocation_id=invocation_id, function_id=function.function_id,
            input_data=[p.ParameterBinding(name=_trigger_name(function), data=p.TypedData(json=json.dumps(timer_info)))],
            trigger_metadata={"sys": p.TypedData(json=json.dumps({
                "MethodName": function_name, "UtcNow": now.isoformat(), "RandGuid": str(uuid.uuid4())}))},
            trace_context=p.RpcTraceContext(trace_parent=f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00"))
        response = self._ask(("invocation_response", invocation_id), timeout=timeout, invocation_request=request)
        return self.protos.StatusResult.Status.Name(response.result.status), response.result.exception.message

    def close(self, timeout: float = 30.0) -> None:
        """Closes the stream to the worker (it stops its thread pool and exits), then waits for it."""
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

    def __enter__(self) -> "WorkerHost":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    # -- the stream ---------------------------------------------------------------

    def _ask(self, answer, *, timeout: float = 60.0, **content):
        key = answer if isinstance(answer, tuple) else (answer,)
        future: Future = Future()
        with self._lock:
            self._pending[key] = future
        message = self.protos.StreamingMessage(request_id=self.worker_id, **content)
        payload = message.SerializeToString()
        try:
            with self._send_lock:
                self._process.stdin.write(b"\0" + len(payload).to_bytes(4, "big") + payload)
                self._process.stdin.flush()
            return future.result(timeout=timeout)
        except BrokenPipeError:
            raise WorkerExited(f"the worker exited before {key[0]}; its stderr:\n{self.stderr[-4000:]}") from None
        finally:
            with self._lock:
                self._pending.pop(key, None)

    def _read_responses(self) -> None:
        stream = self._process.stdout
        while True:
            header = stream.read(5)
            if len(header) < 5:
                break
            message = self.protos.StreamingMessage.FromString(stream.read(int.from_bytes(header[1:], "big")))
            kind = message.WhichOneof("content")
            body = getattr(message, kind)
            if kind == "start_stream":
                self._started.set_result(body.worker_id)
            elif kind == "rpc_log":
                self._on_log(body)
            else:
                key = ((kind, body.invocation_id) if kind == "invocation_response"
                       else (kind, body.function_id) if kind == "function_load_response" else (kind,))
                with self._lock:
                    future = self._pending.get(key)
                if future is not None:
                    future.set_result(body)
        self._process.wait()
        error = WorkerExited(f"the worker exited (status {self._process.returncode}); its stderr:\n"
                             f"{self.stderr[-4000:]}")
        if not self._started.done():
            self._started.set_exception(error)
        with self._lock:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(error)

    def _on_log(self, log) -> None:
        # Into this process's logging, under the worker's logger name, so that caplog
        # tests/secret_scan.py and scripts/run-local read what the worker logged.
        self.logs.append(log)
        logging.getLogger(log.category or "azure_functions_worker").log(
            _LEVELS.get(log.level, logging.INFO), "%s", log.message,
            extra={"invocation_id": log.invocation_id, "from_worker": True})

    def _read_stderr(self) -> None:
        for line in iter(self._process.stderr.readline, b""):
            self._stderr.append(line.decode("utf-8", "replace"))


def _trigger_name(function) -> str:
    for raw in function.raw_bindings:
        binding = json.loads(raw)
        if binding.get("type", "").endswith("Trigger"):
            return binding["name"]
    raise ValueError(f"{function.name} has no trigger binding")


def worker_environment(settings: Mapping[str, str], drop_prefixes: tuple = ()) -> dict:
    """This process's environment without settings starting with drop_prefixes, plus the app settings."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith(drop_prefixes)}, **settings}
