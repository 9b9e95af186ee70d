"""Reads a container's change feed as the Functions host's Cosmos DB trigger does, and hands each batch to a function.

What the trigger does, from its public source:

- The WebJobs extension (Azure/azure-webjobs-sdk-extensions,
  src/WebJobs.Extensions.CosmosDB/Trigger/CosmosDBTriggerListener.cs) builds a change feed processor of the
  .NET SDK v3 on the monitored container, with the lease container, the trigger's leaseContainerPrefix,
  maxItemsPerInvocation as the most items per read, feedPollDelay as the poll interval and
  startFromBeginning as the start time of a lease with no continuation yet. Its delegate,
  `ProcessChangesAsync`, awaits `TryExecuteAsync` of the function: with a retry policy the host invokes the
  function again with the same documents until it succeeds, and only then does the delegate return.
- The processor (Azure/azure-cosmos-dotnet-v3, Microsoft.Azure.Cosmos/src/ChangeFeedProcessor/) keeps one
  lease per partition key range in the lease container (format: tests/lease_documents.py). For each lease
  it owns, `FeedProcessorCore.RunAsync` reads the next page from the lease's continuation, hands the
  page to the delegate, and on 304 (nothing changed) waits the poll delay. `AutoCheckpointer` stores the
  response's continuation in the lease (`ContinuationToken`) only after the delegate returned, so a batch
  whose delegate never returned is read again from the old continuation by whoever takes the lease next.

`ChangeFeedProcessor` imitates that for one function: `start()` creates the lease container if the trigger
says so and the leases if the store has none (one per feed range, owned by this instance), or takes over
the stored ones with their continuations; `poll_round()` gives every lease one step (read a batch if none
is pending, invoke the function with it, checkpoint on success, keep the same batch on failure);
`run_until_idle()` repeats rounds, backing off after a failure, until every lease answers 304.
Every attempt is recorded in `attempts`.

Where it differs, and why: the processor runs the leases concurrently, here they take turns (timing only:
what each lease reads and stores is the same); a failed batch waits for the next round rather than the
retry policy's interval from 1 s (the tests use short back-offs); there is no lease balancing, renewal or
expiry, and no partition split (the emulator has neither). The continuation is the read's `etag` response header,
from which the emulator resumes (tests/test_cosmos_emulator.py); the pager's continuation_token does not
resume there. A lease with no continuation starts at "Beginning" or "Now" as startFromBeginning says; the
emulator honours "Now" (tests/runtime/test_runtime_trigger_listener.py shows it), though it ignores a start time.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Optional
from urllib.parse import urlparse

from azure.core import MatchConditions
from azure.cosmos import CosmosClient, PartitionKey
from azure.cosmos.exceptions import CosmosResourceNotFoundError

from tests.lease_documents import lease_store_prefix, lease_timestamp, write_leases


@dataclasses.dataclass
class Batch:
    """A batch read from a lease: its documents and the continuation that follows them."""

    lease_token: str
    number: int  # of this lease's batches, from 1
    documents: list
    continuation: str
    failures: int = 0


@dataclasses.dataclass
class Attempt:
    """One hand-over of a batch to the function."""

    function_name: str
    lease_token: str
    batch: int
    retry_count: int  # 0 for the first hand-over
    changes: tuple  # (id, _etag) of each document handed, in order
    error: Optional[BaseException]


class Lease:
    """A lease document of the store, and the batch it is handing over, if any."""

    def __init__(self, document: dict):
        self.document = document
        self.pending: Optional[Batch] = None
        self.batches_read = 0
        # Where the next read starts. As the processor's feed iterator, it moves on after a read that found
        # nothing (so that a lease started "now" does not start "now" again), while the lease document moves
        # only at a checkpoint.
        self.read_from: Optional[str] = document.get("ContinuationToken")

    @property
    def token(self) -> str:
        return self.document["LeaseToken"]


def connection_parts(connection_string: str) -> tuple[str, str]:
    """(endpoint, key) of an `AccountEndpoint=...;AccountKey=...;` connection string."""
    pairs = dict(part.split("=", 1) for part in connection_string.strip().split(";") if "=" in part)
    return pairs["AccountEndpoint"], pairs["AccountKey"]


class ChangeFeedProcessor:
    """The change feed of one function's trigger, read lease by lease and handed to `invoke`.

    `trigger` is the function's trigger binding as the worker hands it to the host
    (`get_trigger().get_dict_repr()`), `settings` the app settings that name its connection, and
    `invoke(function_name, documents, retry_count)` calls the function as the worker would
    (tests.app_loading.library_invoker).
    """

    def __init__(self, function_name: str, trigger: dict, settings: dict, invoke: Callable[[str, list, int], None],
                 *, owner: str, min_backoff: float = 0.05, max_backoff: float = 0.5):
        self.function_name = function_name
        self.trigger = trigger
        self.invoke = invoke
        self.owner = owner
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.endpoint, key = connection_parts(settings[trigger["connection"]])
        # As tests/cosmos_emulator.py: only a local endpoint (an emulator's self-signed certificate) skips TLS checks.
        local = urlparse(self.endpoint).hostname in ("localhost", "127.0.0.1", "::1")
        self.client = CosmosClient(self.endpoint, credential=key, connection_verify=not local)
        self.database = self.client.get_database_client(trigger["databaseName"])
        self.monitored = self.database.get_container_client(trigger["containerName"])
        self.lease_container = None
        self.leases: list[Lease] = []
        self.attempts: list[Attempt] = []

    @classmethod
    def for_function(cls, module, function_name: str, settings: dict, invoke, **options) -> "ChangeFeedProcessor":
        """The processor of a function of an app loaded with tests.app_loading.load_function_app."""
        trigger = module.indexed_functions[function_name].get_trigger().get_dict_repr()
        return cls(function_name, trigger, settings, invoke, **options)

    @property
    def lease_prefix(self) -> str:
        return self.trigger.get("leaseContainerPrefix") or ""

    def close(self) -> None:
        self.client.close()

    # -- leases --------------------------------------------------------------------------------

    def start(self) -> "ChangeFeedProcessor":
        """Opens (or creates) the lease container, then creates this prefix's leases or takes over the stored ones."""
        name = self.trigger["leaseContainerName"]
        if self.trigger.get("createLeaseContainerIfNotExists"):
            # The extension creates it keyed by /id, as the processor requires.
            self.lease_container = self.database.create_container_if_not_exists(name, PartitionKey(path="/id"))
        else:
            self.lease_container = self.database.get_container_client(name)
            self.lease_container.read()  # raises when missing, as the host fails to start the listener
        store = lease_store_prefix(self.database, self.trigger["containerName"], self.lease_prefix, self.endpoint)
        try:
            self.lease_container.read_item(f"{store}.info", partition_key=f"{store}.info")
        except CosmosResourceNotFoundError:
            # The processor's bootstrap: a lease per partition key range, no continuation yet.
            write_leases(self.database, self.trigger["containerName"], self.lease_prefix, self.endpoint, [self.owner],
                         lease_container=name, continuation=None)
        # The processor lists its leases by id prefix; a plain read and filter keeps to calls the emulator
        # is pinned for.
        documents = [doc for doc in self.lease_container.read_all_items() if doc["id"].startswith(f"{store}..")]
        self.leases = [self._acquire(doc) for doc in sorted(documents, key=lambda doc: doc["id"])]
        return self

    def _replace_lease(self, document: dict) -> dict:
        # As DocumentServiceLeaseUpdaterCosmos: replaced only if nobody changed it since it was read.
        return self.lease_container.replace_item(document["id"], document, etag=document["_etag"],
                                                 match_condition=MatchConditions.IfNotModified)

    def _acquire(self, document: dict) -> Lease:
        if document.get("Owner") != self.owner:
            document = self._replace_lease({**document, "Owner": self.owner, "timestamp": lease_timestamp()})
        return Lease(document)

    def _checkpoint(self, lease: Lease, continuation: str) -> None:
        lease.document = self._replace_lease({**lease.document, "ContinuationToken": continuation,
                                              "timestamp": lease_timestamp()})

    # -- the feed ------------------------------------------------------------------------------

    def _read(self, lease: Lease) -> tuple[list, Optional[str]]:
        """The next page of the lease's feed, and the continuation after it (None when nothing changed)."""
        responses = []
        options = {"max_item_count": self.trigger.get("maxItemsPerInvocation") or 100,
                   "raw_response_hook": lambda response: responses.append(response.http_response)}
        if lease.read_from is not None:
            options["continuation"] = lease.read_from
        else:
            options["feed_range"] = lease.document["FeedRange"]
            options["start_time"] = "Beginning" if self.trigger.get("startFromBeginning") else "Now"
        page = next(self.monitored.query_items_change_feed(**options).by_page(), None)
        documents = list(page) if page is not None else []
        last = responses[-1] if responses else None
        return documents, last.headers.get("etag") if last is not None else None

    def _step(self, lease: Lease) -> str:
        """One step of a lease: "idle", "delivered" or "failed"."""
        if lease.pending is None:
            documents, continuation = self._read(lease)
            if not documents:
                # Nothing is handed and nothing checkpointed; the processor checkpoints only after a batch.
                lease.read_from = continuation or lease.read_from
                return "idle"
            lease.batches_read += 1
            lease.pending = Batch(lease.token, lease.batches_read, documents, continuation)
        batch = lease.pending
        try:
            self.invoke(self.function_name, batch.documents, batch.failures)
            error = None
        except Exception as exc:  # the host catches whatever the invocation raised
            error = exc
        self.attempts.append(Attempt(self.function_name, batch.lease_token, batch.number, batch.failures,
                                     tuple((doc.get("id"), doc.get("_etag")) for doc in batch.documents), error))
        if error is not None:
            batch.failures += 1
            return "failed"
        self._checkpoint(lease, batch.continuation)
        lease.read_from = batch.continuation
        lease.pending = None
        return "delivered"

    def poll_round(self) -> list[str]:
        """Every lease's step, in turn."""
        return [self._step(lease) for lease in self.leases]

    def run_until_idle(self, time_limit: float = 120.0) -> None:
        """Rounds until a round finds every lease idle; raises if that takes longer than `time_limit`."""
        deadline = time.monotonic() + time_limit
        failed_rounds = 0
        while True:
            outcomes = self.poll_round()
            if all(outcome == "idle" for outcome in outcomes):
                return
            if time.monotonic() > deadline:
                errors = [a.error for a in self.attempts if a.error is not None]
                raise TimeoutError(f"{self.function_name}: feed not drained within {time_limit:.0f} s; "
                                   f"last error: {errors[-1] if errors else None!r}")
            if "failed" in outcomes:
                failed_rounds += 1
                time.sleep(min(self.max_backoff, self.min_backoff * 2 ** (failed_rounds - 1)))
            else:
                failed_rounds = 0

    @property
    def failures(self) -> list[Attempt]:
        return [a for a in self.attempts if a.error is not None]

    def handed(self) -> list[str]:
        """The ids of every document handed and delivered, in hand-over order."""
        return [doc_id for a in self.attempts if a.error is None for doc_id, _ in a.changes]
