"""A local host for the app: the parts of the Azure Functions host a local run needs, played with Microsoft's parts.

Azure runs the app in the Functions host (.NET): its Cosmos DB extension reads each trigger's change feed with
the .NET SDK's change feed processor and hands every batch to the Python worker over gRPC. Neither the host nor
Core Tools (`func start`) can be installed on every machine, so `scripts/run-local`, the runtime suite
(tests/runtime/) and the benchmarks (bench/) run the app with this package instead.

Microsoft's parts, run as they are:
- the worker runtime, `azure-functions-runtime` from the package index (Python 3.13), which imports
  function_app.py, indexes and validates the functions, decodes each invocation's data and runs it;
- the change feed processor of Microsoft's Java SDK for Cosmos DB (`com.azure:azure-cosmos`, fetched with Maven),
  which reads each trigger's container, keeps the leases in the lease container and checkpoints a batch only
  once its invocation succeeded (trigger_listener/TriggerListener.java);
- the Cosmos DB emulator, Microsoft's in-memory one from the Rust SDK's driver crate, served by scripts/cosmos.

Ours, following the public contracts they cite:
- worker_host.py: the host's side of the host-worker protocol (FunctionRpc.proto): init, metadata, load, and an
  invocation per batch or timer tick;
- proxy_worker.py: the proxy worker process that hands each message to the runtime, on pipes instead of gRPC;
- trigger_listener.py: the bridge between the Java processor and the worker, one processor per Cosmos DB trigger
  with the trigger's own binding (container, lease container and prefix, start options, batch size, poll delay);
- jvm_program.py: fetches and compiles the Java program once, into .cache/.

Where it differs from Azure's host:
- leases: the Java processor writes EPK-range leases of its own shape; the .NET processor's lease documents
  (ids and continuations) differ, so leases written here are not taken over by a deployed app, nor the reverse;
- retries: a failed batch is handed again by the Java processor (it gives the lease up and reads it again within
  about a second), not after the retry policy's exponential back-off of 1 s to 1 min;
- checkpoints: when a lease's renewal and its checkpoint race, the Java processor (azure-cosmos 4.81.0,
  epkversion/DocumentServiceLeaseUpdaterImpl) retries the loser with the content it held before the conflict,
  so a renewal can write back the continuation a checkpoint just replaced. The processor reads on from its own
  position, so nothing is lost; the lease trails until that range's next change, and another instance taking the
  lease over before then hands those changes again. The .NET processor applies its update again to the lease it
  reads after a conflict (DocumentServiceLeaseUpdaterCosmos), so a checkpoint is never undone in Azure;
- no gRPC, no Application Insights, no scale controller: one instance, logs to the terminal.

Nothing here depends on pytest.
"""
