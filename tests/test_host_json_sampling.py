"""host.json keeps every log line out of Application Insights' sampling, so that no alert is bent by it.

The alert rules (infra/modules/queries) count and measure the app's batch and lease watch lines, which reach
Application Insights as trace telemetry. The Functions host hands host.json's
`logging.applicationInsights.samplingSettings` to the Application Insights SDK's adaptive sampling
(azure-functions-host's ApplicationInsightsLoggerOptionsSetup moves `excludedTypes`/`includedTypes` into
ApplicationInsightsLoggerOptions.SamplingExcludedTypes/IncludedTypes; azure-webjobs-sdk's
TelemetryProcessorFactory sets them on the AdaptiveSamplingTelemetryProcessor). The SDK
(ApplicationInsights-dotnet 2.x, SamplingIncludesUtility) splits each on ';', matches the names Dependency,
Event, Exception, PageView, Request and Trace without regard to case, ignores any other name, and lets
excludedTypes win over includedTypes; `Trace` is TraceTelemetry, every ILogger line, the app's among them.

Sampled, a line is kept when its operation's score (SamplingScoreGenerator: a hash of the operation id, the
invocation's, scaled to 0..100) is below the sampling percentage, and a kept line carries itemCount = 100 /
percentage. Weighing rows by itemCount restores a count on average, but a window in which every watch run's
lines were dropped holds no row to weigh, and a maximum (lag, oldest pending change) is not restored by a
weight. Only keeping every trace keeps every rule true, which is the choice made here.
"""

import json
import random
import uuid
from pathlib import Path

HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"
SAMPLING_TYPES = ("Dependency", "Event", "Exception", "PageView", "Request", "Trace")


def sampled_types(sampling: dict) -> set[str]:
    """The telemetry types adaptive sampling applies to, read from samplingSettings as the host and the SDK read it."""
    if not sampling.get("isEnabled", True):
        return set()
    settings = {key.lower(): value for key, value in sampling.items()}

    def names(value):
        known = {name.lower(): name for name in SAMPLING_TYPES}
        return {known[item.lower()] for item in (value or "").split(";") if item and item.lower() in known}

    included = settings.get("includedtypes")
    types = names(included) if included else set(SAMPLING_TYPES)
    return types - names(settings.get("excludedtypes"))


def sampling_score(operation_id: str) -> float:
    """SamplingScoreGenerator.GetSamplingScore: the operation id's hash (C# int arithmetic) scaled to 0..100."""
    text = operation_id
    while len(text) < 8:
        text += text
    value = 5381
    for char in text:
        value = ((value << 5) + value + ord(char)) & 0xFFFFFFFF
    signed = value - (1 << 32) if value >= 1 << 31 else value
    magnitude = 2**31 - 1 if signed == -(2**31) else abs(signed)
    return magnitude / (2**31 - 1) * 100


def kept(telemetry_type: str, operation_id: str, percentage: float, sampled: set[str]) -> bool:
    return telemetry_type not in sampled or sampling_score(operation_id) < percentage


def host_sampling() -> dict:
    return json.loads(HOST_JSON.read_text())["logging"]["applicationInsights"]["samplingSettings"]


def test_host_json_never_samples_a_trace_a_request_or_an_exception():
    sampled = sampled_types(host_sampling())
    assert not sampled & {"Trace", "Request", "Exception"}, sampled


def test_a_misspelt_type_name_would_leave_traces_sampled():
    """The SDK ignores a name it does not know, without a word; the reading above does too."""
    assert "Trace" in sampled_types({"isEnabled": True, "excludedTypes": "Request;Exception;Traces"})
    assert "Trace" not in sampled_types({"isEnabled": True, "excludedTypes": "request;exception;TRACE"})


def silent_windows(sampled: set[str], percentage: float, windows: int = 2000, runs: int = 10) -> dict:
    """Of `windows` windows of a healthy app's `runs` watch runs, how many the watch-silent rule fires in.

    Each run's lines share its invocation's operation id. The rule fires when the window holds less than one
    line, counted as rows or weighed by itemCount (100 / percentage for a sampled line, 1 otherwise).
    """
    rng = random.Random(24)
    fired = {"rows": 0, "itemCount": 0}
    weight = 100 / percentage
    for _ in range(windows):
        operations = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(runs)]
        rows = [op for op in operations if kept("Trace", op, percentage, sampled)]
        fired["rows"] += len(rows) < 1
        fired["itemCount"] += sum(weight if "Trace" in sampled else 1 for _ in rows) < 1
    return fired


def test_under_a_burst_the_watch_rule_fires_on_a_healthy_app_unless_traces_are_kept():
    """At 5 %, a percentage adaptive sampling reaches under a burst, most 10-minute windows keep no watch line.

    Weighing by itemCount fires in exactly those windows too; with host.json's settings no window does.
    """
    before = sampled_types({"isEnabled": True, "excludedTypes": "Request;Exception"})
    assert "Trace" in before
    fired = silent_windows(before, percentage=5.0)
    print(f"\nsampled at 5 %: the watch-silent rule fires in {fired['rows']} of 2000 healthy windows counting rows, "
          f"{fired['itemCount']} weighing by itemCount (expected (1 - 0.05)^10 = 60 %)")
    assert fired["rows"] == fired["itemCount"] and 0.5 < fired["rows"] / 2000 < 0.7
    assert silent_windows(sampled_types(host_sampling()), percentage=5.0) == {"rows": 0, "itemCount": 0}
