"""The README's first command, timed as a user sees it: `scripts/run-local` to its ready block, then changes made with
`scripts/cosmos put` to their invalidations printed, then Ctrl-C to its exit.

    python3 bench/run_local.py                          # in this checkout, 5 changes
    python3 bench/run_local.py --checkout DIR --changes 3

`--checkout DIR` times another copy of the project, e.g. a scratch copy with an empty .cache/ for a first run (every
build and fetch included). The environment is PATH and HOME only, as on a new user's machine. A change's time is
from starting the put command to run-local printing its message read back from Kafka: the put command's own start
(a Python process, azure-cosmos), the feed's poll delay (1 s), Microsoft's change feed processor, the worker
runtime, Kafka and the read back. Prints its figures and writes them to bench/results-run-local.json (or --out).
Only the standard library is used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results-run-local.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", type=Path, default=BENCH.parent, help="the project copy to run (default: this)")
    parser.add_argument("--changes", type=int, default=5, help="changes to time (default 5)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"where the figures go (default {RESULTS.name})")
    args = parser.parse_args()
    checkout = args.checkout.resolve()
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    cold = not (checkout / ".cache" / "venv-runtime-3.13").exists()

    lines: queue.Queue = queue.Queue()
    transcript: list[str] = []
    started = time.monotonic()
    run = subprocess.Popen(["scripts/run-local", "--local-host"], cwd=checkout, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, start_new_session=True)

    def read() -> None:
        for line in run.stdout:
            lines.put((time.monotonic(), line.rstrip("\n")))
        lines.put((time.monotonic(), None))

    threading.Thread(target=read, daemon=True).start()

    def until(pattern: str, timeout: float) -> tuple[float, re.Match]:
        deadline = time.monotonic() + timeout
        while True:
            at, line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                raise SystemExit("scripts/run-local ended:\n" + "\n".join(transcript[-40:]))
            transcript.append(line)
            print(line, flush=True)
            if match := re.search(pattern, line):
                return at, match

    try:
        ready_at, _ = until(r"^  Ctrl-C stops everything", 3600)
        to_ready = ready_at - started
        steps = [line for line in transcript if re.match(r"run-local: .*: \d+\.\d s$", line)]
        changes = []
        for i in range(args.changes):
            name = f"guest/bench-{int(time.time())}-{i}"
            put_started = time.monotonic()
            subprocess.run(["scripts/cosmos", "put", "whisks", name], cwd=checkout, env=env, check=True,
                           capture_output=True, timeout=60)
            put_done = time.monotonic()
            printed_at, _ = until(rf"key={re.escape(name)} message=", 60)
            changes.append({"from_put_command": printed_at - put_started, "after_put_returned": printed_at - put_done})
            time.sleep(1.0)
    finally:
        interrupted = time.monotonic()
        os.killpg(run.pid, signal.SIGINT)
        status = run.wait(60)
        stopped = time.monotonic() - interrupted

    figures = {
        "checkout": "this checkout" if checkout == BENCH.parent else "another copy (--checkout)", "cold_cache": cold, "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}", "python": sys.version.split()[0],
        "to_ready_seconds": round(to_ready, 1), "steps": steps,
        "change_to_printed_seconds": [round(c["from_put_command"], 2) for c in changes],
        "change_to_printed_median_seconds": round(statistics.median(c["from_put_command"] for c in changes), 2),
        "after_put_returned_median_seconds": round(statistics.median(c["after_put_returned"] for c in changes), 2),
        "sigint_to_exit_seconds": round(stopped, 1), "exit_status": status,
    }
    print(json.dumps(figures, indent=2))
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
