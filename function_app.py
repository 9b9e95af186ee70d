"""Wires the two Cosmos DB change-feed triggers and the lease watch's timer to the cache invalidator; nothing else."""

import os

import azure.functions as func

from cache_invalidator.handler import ChangeHandler
from cache_invalidator.settings import TriggerSettings, watch_schedule
from cache_invalidator.translation import ContainerKind

trigger = TriggerSettings.from_env(os.environ)
handler = ChangeHandler(os.environ, change_feed_mode=trigger.change_feed_mode)
# Kafka connects while the host loads the functions, so that the first batch does not wait for it.
handler.connect_early()
app = func.FunctionApp()

# Unlimited retries: without a retry policy the host checkpoints a failed batch
# and its invalidations are lost.
RETRY_FOREVER = dict(strategy="exponential_backoff", max_retry_count="-1",
                     minimum_interval="00:00:01", maximum_interval="00:01:00")
# Both functions read one database through one connection and share one lease
# container; only the watched container and the lease prefix differ.
CHANGE_FEED = dict(
    arg_name="changes",
    connection="COSMOSDB",
    database_name=trigger.database,
    lease_container_name=trigger.lease_container,
    create_lease_container_if_not_exists=trigger.create_lease_container,
    start_from_beginning=trigger.start_from_beginning,
    start_from_time=trigger.start_from_time,
    preferred_locations=trigger.preferred_locations,
    max_items_per_invocation=trigger.max_items_per_invocation,
    feed_poll_delay=trigger.feed_poll_delay_ms,
    # A keyword of azure-functions 2.x, and written into the binding as it is by 1.x.
    change_feed_mode=trigger.binding_change_feed_mode,
)
# `changes: str`: the worker then hands over the host's JSON array as text, as
# it does for any str parameter, and skips the library's Cosmos DB converter,
# which wraps every document in a func.Document (and fails the whole batch on
# an element that is not an object, which the handler skips as poison). The
# handler also takes a func.DocumentList, and fails, rather than count
# characters as poison, on anything that is not a JSON array of documents.


@app.function_name("invalidate_whisks")
@app.retry(**RETRY_FOREVER)
@app.cosmos_db_trigger(**CHANGE_FEED, container_name=trigger.whisks_container,
                       lease_container_prefix=trigger.lease_prefix(trigger.whisks_container))
def invalidate_whisks(changes: str) -> None:
    handler.handle(changes, ContainerKind.WHISKS, trigger.whisks_container)


@app.function_name("invalidate_subjects")
@app.retry(**RETRY_FOREVER)
@app.cosmos_db_trigger(**CHANGE_FEED, container_name=trigger.subjects_container,
                       lease_container_prefix=trigger.lease_prefix(trigger.subjects_container))
def invalidate_subjects(changes: str) -> None:
    handler.handle(changes, ContainerKind.SUBJECTS, trigger.subjects_container)


# Every region's leases, read from the shared lease container: a region that stopped
# invalidating writes no batch line, so the other regions report it. It never raises
# (a failure to read is itself a logged finding), writes nothing, and is imported on
# its first run, with azure-cosmos, so that the triggers' cold start does not grow.
@app.function_name("watch_leases")
@app.timer_trigger(arg_name="timer", schedule=watch_schedule(os.environ), run_on_startup=False)
def watch_leases(timer: func.TimerRequest) -> None:
    from cache_invalidator.lease_watch import shared_watch

    shared_watch(os.environ, trigger).run()
