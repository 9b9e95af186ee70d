"""The fault scenarios: an outage or a slow broker costs time and an error, never an invalidation.

Each runs through tests/host_driver.py's LeaseDriver against the real broker,
with the app called directly (tests/test_faults.py) or through Microsoft's
worker runtime (tests/runtime/test_runtime_faults.py). A scenario takes the
broker, an `invoke(function_name, documents, retry_count)`, the app's topic
(one partition) and a `report` from host_driver.make_reporter; the app must
run with KAFKA_DELIVERY_TIMEOUT_SECONDS = DEADLINE.

Each drives the functions the way the host does (one batch at a time per
lease, a failed batch handed again after an exponential back-off, the next
batch only after success), injects a fault from a background thread while the
run goes on, then reads the whole topic back and counts, per key and per
batch, what arrived.

What each report checks (see host_driver.analyse): every batch starts with a
marker document whose key exists only in that batch; the topic has one
partition and the app's idempotent producer keeps its messages in produce
order, so every message is attributed to the batch whose marker precedes it.
- changes missing: a key changed in batch b with no message attributed to b.
  Must be 0: that would be a lost invalidation.
- keys missing: expected keys with no message at all. Must be 0.
- duplicates: messages beyond the first per (key, batch): allowed (at least once).
- per-key order: the batches a key's messages are attributed to never go down
  along the log, so a key's last invalidation is for its last change. Must be 0.
"""

import threading
import time

from tests.host_driver import LeaseDriver, analyse, subjects_plan, whisks_plan
from tests.kafka_reading import read_topic

DEADLINE = 2  # KAFKA_DELIVERY_TIMEOUT_SECONDS for these runs
BATCHES = 300
PER_BATCH = 10  # changes per batch, plus the batch's marker document
KEYS = 400  # distinct keys: each is changed about 7 times across a run
POLL_DELAY = 0.01  # between batches, as the host's feed poll; keeps the fault inside the run


class Fault(threading.Thread):
    """Runs a fault from a background thread and keeps whatever it raised for the test."""

    def __init__(self, action):
        super().__init__(name="fault", daemon=True)
        self.action = action
        self.error = None
        self.times = {}

    def run(self):
        try:
            self.action(self.times)
        except BaseException as exc:  # re-raised by finish()
            self.error = exc

    def finish(self, timeout=180):
        self.join(timeout)
        assert not self.is_alive(), "the fault thread did not finish"
        if self.error is not None:
            raise self.error


def run_with_fault(drivers, action):
    """Runs the drivers in their threads and `action` in another; returns the times the action noted."""
    fault = Fault(action)
    for driver in drivers:
        driver.start()
    fault.start()
    try:
        fault.finish()
    except BaseException:
        for driver in drivers:
            driver.abort()
        for driver in drivers:
            try:
                driver.join()
            except AssertionError:
                pass  # the fault's own error says more
        raise
    for driver in drivers:
        driver.join()
    return fault.times


def failure_type(error):
    """The name of the exception an invocation failed with; through the worker runtime it arrives as text."""
    return getattr(error, "exception_type", type(error).__name__)


def delivery_errors(driver):
    errors = [a.error for a in driver.failures]
    others = [e for e in errors if failure_type(e) != "DeliveryError"]
    assert not others, f"invocations failed with something else than DeliveryError: {others[:3]}"
    return errors


def broker_stopped_mid_run_then_started_loses_nothing(broker, invoke, topic, report):
    plan = whisks_plan(BATCHES, PER_BATCH, KEYS)
    driver = LeaseDriver(invoke, "invalidate_whisks", plan.batches, poll_delay=POLL_DELAY)

    def outage(times):
        driver.wait_for(BATCHES // 5)
        times["stop"] = time.monotonic()
        try:
            broker.stop()
            time.sleep(DEADLINE)  # at least one invocation runs into the stopped broker
        finally:
            broker.start()
        times["started"] = time.monotonic()

    run_with_fault([driver], outage)
    errors = delivery_errors(driver)
    result = analyse("broker stopped and started", read_topic(broker.bootstrap, topic), [plan],
                     failed_invocations=len(errors),
                     notes=f"documents={plan.documents} batches={BATCHES}")
    report(result)
    assert errors, "no invocation met the stopped broker: the fault came too late to prove anything"
    result.assert_nothing_lost()
    result.assert_duplicates_only_from({plan.name: driver.retried_batches})


def broker_frozen_past_the_deadline_then_resumed_loses_nothing(broker, invoke, topic, report):
    plan = whisks_plan(BATCHES, PER_BATCH, KEYS, seed=3)
    driver = LeaseDriver(invoke, "invalidate_whisks", plan.batches, poll_delay=POLL_DELAY)

    def freeze(times):
        driver.wait_for(BATCHES // 5)
        broker.pause()
        try:
            time.sleep(DEADLINE * 2.5)  # past the deadline of the invocation that met it
        finally:
            broker.resume()

    run_with_fault([driver], freeze)
    errors = delivery_errors(driver)
    result = analyse("broker frozen (SIGSTOP) then resumed", read_topic(broker.bootstrap, topic), [plan],
                     failed_invocations=len(errors), notes=f"documents={plan.documents} batches={BATCHES}")
    report(result)
    assert errors, "no invocation met the frozen broker"
    assert any("not all acknowledged" in str(e) for e in errors), [str(e) for e in errors]
    result.assert_nothing_lost()
    result.assert_duplicates_only_from({plan.name: driver.retried_batches})


def both_leases_at_once_across_a_broker_restart_lose_nothing(broker, invoke, topic, report):
    whisks = whisks_plan(BATCHES // 2, PER_BATCH, KEYS, seed=4)
    subjects = subjects_plan(BATCHES // 2, PER_BATCH, KEYS // 2, seed=5)
    drivers = [LeaseDriver(invoke, "invalidate_whisks", whisks.batches, poll_delay=POLL_DELAY),
               LeaseDriver(invoke, "invalidate_subjects", subjects.batches, poll_delay=POLL_DELAY)]

    def restart(times):
        for driver in drivers:
            driver.wait_for(BATCHES // 10)
        try:
            broker.stop()
            time.sleep(DEADLINE)
        finally:
            broker.start()

    run_with_fault(drivers, restart)
    errors = [delivery_errors(d) for d in drivers]
    result = analyse("two leases, broker restarted", read_topic(broker.bootstrap, topic), [whisks, subjects],
                     failed_invocations=sum(map(len, errors)),
                     notes=f"documents={whisks.documents + subjects.documents} "
                           f"failed whisks/subjects={len(errors[0])}/{len(errors[1])}")
    report(result)
    assert all(errors), "each lease must have met the restart"
    result.assert_nothing_lost()
    result.assert_duplicates_only_from({whisks.name: drivers[0].retried_batches, subjects.name: drivers[1].retried_batches})


def topic_deleted_and_created_again_fails_clearly_then_delivers(kafka_broker, invoke, topic, report):
    """While the topic is gone every invocation fails saying so; once it exists again, delivery resumes.

    Messages already on the topic when it is deleted are deleted with it: that
    is the operator's data, not something the app can keep. So the count is of
    what the app must still deliver: every batch whose successful invocation
    started after the topic existed again must be on the new topic, whole,
    in order. Batches that succeeded before the deletion are not counted.
    """
    plan = whisks_plan(BATCHES, PER_BATCH, KEYS, seed=6)
    driver = LeaseDriver(invoke, "invalidate_whisks", plan.batches, poll_delay=POLL_DELAY)

    def delete_and_create(times):
        driver.wait_for(BATCHES // 5)
        times["deleted"] = time.monotonic()
        kafka_broker.delete_topic(topic)
        times["gone"] = time.monotonic()
        time.sleep(DEADLINE * 3)  # several invocations meet the missing topic
        kafka_broker.create_topic(topic)
        times["created"] = time.monotonic()

    times = run_with_fault([driver], delete_and_create)
    errors = delivery_errors(driver)
    created = times["created"]
    counted = {i for i, started in enumerate(driver.success_started) if started >= created}
    result = analyse("topic deleted and created again", read_topic(kafka_broker.bootstrap, topic), [plan],
                     counted={plan.name: counted}, failed_invocations=len(errors),
                     notes=f"batches counted (handed after re-creation)={len(counted)} of {BATCHES}")
    report(result)
    texts = [str(e) for e in errors]
    for text in sorted(set(t.split(" on Kafka topic")[1] for t in texts)):
        report(f"  error seen: ...on Kafka topic{text}")
    assert errors, "no invocation met the missing topic"
    # Every failure while the topic was missing names the topic and says it does not exist.
    while_gone = [str(a.error) for a in driver.failures if times["gone"] <= a.started and a.ended <= created]
    assert while_gone, "no invocation ran entirely while the topic was missing"
    unclear = [t for t in while_gone if "topic does not exist" not in t or topic not in t]
    assert not unclear, unclear
    assert len(counted) >= BATCHES // 2
    result.assert_nothing_lost()
    result.assert_duplicates_only_from({plan.name: driver.retried_batches})


def invocation_abandoned_at_its_deadline_yields_duplicates_at_worst(broker, invoke, topic, report):
    """The broker freezes just before an invocation, so its messages sit in flight when it raises at its deadline.

    The abandoned messages may still be written once the broker resumes: the
    retry then sends them again (duplicates), and the next batch is handed only
    after the retry succeeded, so no change is skipped and each key's last
    message is for its last change.
    """
    plan = whisks_plan(BATCHES, PER_BATCH, KEYS, seed=7)
    frozen_batch = BATCHES // 3
    resumer = []

    def freeze_before(batch, attempt):
        if batch == frozen_batch and attempt == 1:
            broker.pause()
            timer = threading.Timer(DEADLINE + 1.0, broker.resume)
            timer.start()
            resumer.append(timer)

    driver = LeaseDriver(invoke, "invalidate_whisks", plan.batches, poll_delay=POLL_DELAY, before_attempt=freeze_before)
    try:
        driver.run()
    finally:
        for timer in resumer:
            timer.join()
    errors = delivery_errors(driver)
    abandoned = [a for a in driver.failures if a.batch == frozen_batch and a.number == 1]
    result = analyse("invocation abandoned at its deadline", read_topic(broker.bootstrap, topic), [plan],
                     failed_invocations=len(errors),
                     notes=f"frozen batch={frozen_batch}, its hand-overs="
                           f"{len([a for a in driver.attempts if a.batch == frozen_batch])}")
    report(result)
    assert abandoned and "not all acknowledged" in str(abandoned[0].error), [str(e) for e in errors]
    result.assert_nothing_lost()
    result.assert_duplicates_only_from({plan.name: driver.retried_batches})
