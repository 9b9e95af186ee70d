"""Plays the Python proxy worker: the process the Functions host starts, which hands each host
message to Microsoft's worker runtime (azure_functions_runtime) and sends back its answer.

It follows workers/proxy_worker/dispatcher.py of Azure/azure-functions-python-worker:
- every message from the host becomes a task on one event loop, so invocations overlap;
- a request reaches the runtime's coroutine of its kind (worker_init_request,
  function_environment_reload_request, functions_metadata_request,
  function_load_request, invocation_request) wrapped as the dispatcher's
  WorkerRequest: `name`, `request` (the StreamingMessage itself) and, for init and
  reload, `properties` with the message classes ("protos") and the host's address;
- before init and reload the runtime's thread pool is started, and the app
  folder is put on sys.path (the runtime imports function_app from it but does
  not add it itself);
- log records reach the host as RpcLog messages, through a handler on the root
  logger at INFO (DEBUG with PYTHON_ENABLE_DEBUG_LOGGING): without a handler the
  runtime and the app would log nothing.

The one difference: no gRPC. The same StreamingMessages travel on pipes (stdin
from the host, the original stdout to it), each framed as gRPC frames a
message: a zero byte, then the length as 4 bytes big-endian. What the app or
the runtime prints goes to stderr.

Run by devhost/worker_host.py: python -P proxy_worker.py PROTOS_DIR WORKER_ID
"""

import asyncio
import importlib
import logging
import os
import queue
import struct
import sys
import threading
from dataclasses import dataclass
from typing import Any, Optional

_FRAME = struct.Struct(">BI")
_STOP = object()


@dataclass
class WorkerRequest:
    """What the runtime's coroutines take, as the dispatcher builds it."""

    name: str
    request: Any
    properties: Optional[dict] = None


def read_frame(stream) -> Optional[bytes]:
    header = stream.read(_FRAME.size)
    if len(header) < _FRAME.size:
        return None
    _, length = _FRAME.unpack(header)
    return stream.read(length)


def write_frame(stream, payload: bytes) -> None:
    stream.write(_FRAME.pack(0, len(payload)) + payload)
    stream.flush()


class ProxyWorker:
    def __init__(self, protos, runtime, worker_id: str, host_in, host_out):
        self.protos = protos
        self.runtime = runtime
        self.worker_id = worker_id
        self.host_in = host_in
        self.host_out = host_out
        self.outgoing: queue.Queue = queue.Queue()
        self.loop = asyncio.new_event_loop()

    # -- to the host -----------------------------------------------------------

    def send(self, **content) -> None:
        self.outgoing.put(self.protos.StreamingMessage(request_id=self.worker_id, **content))

    def _write_forever(self) -> None:
        while (message := self.outgoing.get()) is not _STOP:
            write_frame(self.host_out, message.SerializeToString())

    def on_log(self, record: logging.LogRecord, text: str) -> None:
        levels = self.protos.RpcLog
        level = (levels.Critical if record.levelno >= logging.CRITICAL else levels.Error if record.levelno >= logging.ERROR
                 else levels.Warning if record.levelno >= logging.WARNING
                 else levels.Information if record.levelno >= logging.INFO else levels.Debug)
        # As the dispatcher: the runtime's own loggers are the System category, the rest are User.
        system = record.name.startswith("azure.functions") or record.name.startswith("azure_functions_worker")
        invocation_id = self.runtime.invocation_id_cv.get()
        self.send(rpc_log=self.protos.RpcLog(
            level=level, message=text, category=record.name, invocation_id=invocation_id or "",
            log_category=levels.RpcLogCategory.Value("System" if system else "User")))

    # -- from the host ---------------------------------------------------------

    def _read_forever(self) -> None:
        while (payload := read_frame(self.host_in)) is not None:
            message = self.protos.StreamingMessage.FromString(payload)
            self.loop.call_soon_threadsafe(self.loop.create_task, self.dispatch(message))
        self.loop.call_soon_threadsafe(self.loop.stop)  # the host closed the stream

    async def dispatch(self, message) -> None:
        kind = message.WhichOneof("content")
        runtime = self.runtime
        if kind in ("worker_init_request", "function_environment_reload_request"):
            app_dir = getattr(message, kind).function_app_directory
            if app_dir and app_dir not in sys.path:
                sys.path.insert(0, app_dir)
            runtime.start_threadpool_executor()
            request = WorkerRequest(kind, message, {"protos": self.protos, "host": "127.0.0.1"})
            if kind == "worker_init_request":
                self.send(worker_init_response=await runtime.worker_init_request(request))
            else:
                self.send(function_environment_reload_response=await runtime.function_environment_reload_request(request))
        elif kind == "functions_metadata_request":
            self.send(function_metadata_response=await runtime.functions_metadata_request(WorkerRequest(kind, message)))
        elif kind == "function_load_request":
            self.send(function_load_response=await runtime.function_load_request(WorkerRequest(kind, message)))
        elif kind == "invocation_request":
            self.send(invocation_response=await runtime.invocation_request(WorkerRequest(kind, message)))
        else:  # as the dispatcher: an unknown message is logged, not fatal
            logging.getLogger("azure_functions_worker").error("Unknown StreamingMessage content type: %s", kind)

    def run(self) -> None:
        writer = threading.Thread(target=self._write_forever, name="to-host", daemon=True)
        writer.start()
        self.send(start_stream=self.protos.StartStream(worker_id=self.worker_id))
        threading.Thread(target=self._read_forever, name="from-host", daemon=True).start()
        try:
            self.loop.run_forever()
        finally:
            self.runtime.stop_threadpool_executor()
            self.outgoing.put(_STOP)
            writer.join(5)


class _ToHost(logging.Handler):
    def __init__(self, worker: ProxyWorker):
        super().__init__()
        self.worker = worker

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.worker.on_log(record, self.format(record))
        except Exception:  # a log line must never break an invocation
            self.handleError(record)


def main(protos_dir: str, worker_id: str) -> None:
    host_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # prints go to stderr; the original stdout carries only frames
    sys.stdout = sys.stderr
    sys.path.insert(0, protos_dir)
    protos = importlib.import_module("FunctionRpc_pb2")
    import azure_functions_runtime as runtime

    worker = ProxyWorker(protos, runtime, worker_id, sys.stdin.buffer, host_out)
    root = logging.getLogger()
    debug = os.environ.get("PYTHON_ENABLE_DEBUG_LOGGING", "").lower() in ("1", "true")
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    root.addHandler(_ToHost(worker))
    worker.run()


if __name__ == "__main__":
    main(*sys.argv[1:3])
