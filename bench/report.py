"""Tables and chart of a bench run: the generated part of docs/BENCHMARKS.md and docs/benchmark-throughput.png."""

from __future__ import annotations

import math
from pathlib import Path

BEGIN = "<!-- bench/run.py writes from here -->"
END = "<!-- bench/run.py writes up to here -->"

LABELS = {
    "app": "1. app: host JSON → converter → function → acked",
    "raw": "2. raw confluent-kafka, flush() per batch",
    "naive": "3. naive, flush() per message",
    "fire": "4. fire-and-forget, one flush() at the end",
    "app_fn": "1c. the function alone (batch decoded beforehand)",
    "app_linger5": "1. app, linger.ms=5 (librdkafka's default)",
    "raw_linger5": "2. raw flush() per batch, linger.ms=5",
    "raw_poll_linger5": "2b. raw, linger.ms=5, waits with poll() (no flush)",
}
PARALLEL_LABELS = {
    "shipped": "as shipped",
    "linger5": "linger.ms=5 (KAFKA_PRODUCER_LINGER_MS=5)",
}
MAIN = ("app", "raw", "naive", "fire")
FIX = ("app_fn", "app_linger5", "raw_linger5", "raw_poll_linger5")


def _sizes(results) -> list[str]:
    return sorted(results["paths"]["app"], key=int)


def _rate(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:,.0f}"


def _ms(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def ratio(results, numerator: str, denominator: str, size) -> float:
    return results["paths"][numerator][size]["docs_per_s"] / results["paths"][denominator][size]["docs_per_s"]


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _throughput_table(results, names, ratios) -> list[str]:
    sizes = _sizes(results)
    lines = [_row(["documents per second", *[f"batch of {s}" for s in sizes]]),
             _row(["---", *["---:"] * len(sizes)])]
    for name in names:
        lines.append(_row([LABELS[name], *[_rate(results["paths"][name][s]["docs_per_s"]) for s in sizes]]))
    for label, numerator, denominator in ratios:
        lines.append(_row([f"**{label}**", *[f"**{ratio(results, numerator, denominator, s):.2f}**" for s in sizes]]))
    return lines


def _latency_table(results, names) -> list[str]:
    sizes = _sizes(results)
    lines = [_row(["latency per batch, p50 / p99 ms (batches)", *[f"batch of {s}" for s in sizes]]),
             _row(["---", *["---:"] * len(sizes)])]
    for name in names:
        cells = []
        for s in sizes:
            f = results["paths"][name][s]
            cells.append(f"{_ms(f['p50_ms'])} / {_ms(f['p99_ms'])} ({f['batches']})")
        lines.append(_row([LABELS[name], *cells]))
    return lines


def markdown(results) -> str:
    m = results["machine"]
    c = results["cold_start"]
    t = results["translation"]
    lines = [
        BEGIN,
        "",
        f"Run of {m['date']}, {results['run_seconds']:.0f} s, code at commit {m['git_commit']}.",
        "",
        "```",
        results["command"],
        "```",
        "",
        "| machine | |",
        "| --- | --- |",
        f"| CPU | {m['cpu_model']}, nproc {m['nproc']} ({m['cpus_usable']} usable) |",
        f"| memory | {m['memory_gib']} GiB |",
        f"| OS | {m['os']} |",
        f"| Python | {m['python']} |",
        f"| confluent-kafka / librdkafka | {m['confluent_kafka']} / {m['librdkafka']} |",
        f"| azure-functions | {m['azure_functions']} |",
        f"| Kafka broker | {m['kafka']}; {m['java']}; topic of {results['partitions']} partition(s), "
        "replication factor 1 |",
        f"| load average (1, 5, 15 min) | before {', '.join(f'{x:.2f}' for x in m['load_average_before'])}; "
        f"after {', '.join(f'{x:.2f}' for x in m['load_average_after'])} |",
        "",
        "Producer config as shipped (`Settings.from_env(...).kafka.producer_config()`, the same for paths 1 to 4): "
        f"`{results['producer_config']['shipped']}`",
        "",
        "### Change batch to acknowledged invalidation, producer config as shipped",
        "",
        "Whisks documents (actions, actions in packages, packages, triggers, rules: one message each), "
        f"batches back to back, the paths interleaved in {results['rounds']} rounds.",
        "",
        *_throughput_table(results, MAIN, [("ratio 1 / 2", "app", "raw")]),
        "",
        *_latency_table(results, MAIN[:3]),
        "",
        "Path 4 has no per-batch latency: nothing waits for a batch's acknowledgements.",
        "",
        "### Without the converter (1c), and with librdkafka's default `linger.ms` of 5 ms, same run",
        "",
        *_throughput_table(results, ("app", "raw", *FIX), [
            ("ratio 1 / 2, as shipped", "app", "raw"),
            ("ratio 1c / 2, as shipped", "app_fn", "raw"),
            ("ratio 1 / 2, both linger.ms=5", "app_linger5", "raw_linger5"),
            ("ratio 1 (linger.ms=5) / 2 (as shipped)", "app_linger5", "raw"),
        ]),
        "",
        *_latency_table(results, ("app", *FIX)),
        "",
        "### Where path 1's time goes: median ms per batch, by stage",
        "",
        "Measured on the same batches as the tables above (handler.translate and InvalidationProducer.deliver "
        "wrapped with timers); path 2 is the raw client's median with the same producer config.",
        "",
        _row(["producer config", "batch", "converter", "translate", "deliver", "rest of the function", "total",
              "path 2"]),
        _row(["---", "---:", "---:", "---:", "---:", "---:", "---:", "---:"]),
        *[_row([PARALLEL_LABELS[variant], size,
                *[_ms(m[k]) for k in ("converter", "translate", "deliver", "rest", "total")],
                _ms(results["paths"]["raw" if variant == "shipped" else "raw_linger5"][size]["p50_ms"])])
          for variant, name in (("shipped", "app"), ("linger5", "app_linger5"))
          for size, m in results["stages"][name].items()],
        "",
        "### Parallel leases: threads invoking at once, batches of 100, whisks and subjects alternating",
        "",
        _row(["code and producer config", "threads", "documents per second", "p50 ms", "p99 ms", "batches"]),
        _row(["---", "---:", "---:", "---:", "---:", "---:"]),
    ]
    for variant, by_threads in results["parallel"].items():
        for threads, f in by_threads.items():
            lines.append(_row([PARALLEL_LABELS.get(variant, variant), threads, _rate(f["docs_per_s"]),
                               _ms(f["p50_ms"]), _ms(f["p99_ms"]), f["batches"]]))
    lines += [
        "",
        "### Translation alone, µs per document (median of batches of 1000)",
        "",
        _row(["container", "messages per document", "azure-functions converter (json.loads + Document)",
              "translate() on the converter's Documents", "translate() on plain dicts"]),
        _row(["---", "---:", "---:", "---:", "---:"]),
    ]
    for kind, f in t.items():
        lines.append(_row([kind, f"{f['messages_per_document']:.2f}", f"{f['converter_decode_us_per_doc']:.1f}",
                           f"{f['translate_us_per_doc']:.1f}", f"{f['translate_plain_dicts_us_per_doc']:.1f}"]))
    lines += [
        "",
        "### Cold start",
        "",
        "| | |",
        "| --- | --- |",
        f"| `import function_app` in a fresh interpreter | median {c['import_s_median'] * 1000:.0f} ms "
        f"(min {c['import_s_min'] * 1000:.0f}, max {c['import_s_max'] * 1000:.0f}, {c['import_runs']} runs); "
        f"whole process {c['process_s_median'] * 1000:.0f} ms |",
        f"| first invocation (1 document: settings, producer, connection, producer id) | "
        f"{c['first_invocation_s'] * 1000:.0f} ms |",
        f"| of which Kafka: first acknowledgement of a new producer, median of 3 | "
        f"{c['first_message_of_a_new_producer_ms']['idempotent']:.0f} ms with enable.idempotence (as shipped), "
        f"{c['first_message_of_a_new_producer_ms']['not_idempotent']:.0f} ms without |",
        f"| RSS: bare interpreter / after the import / after the first invocation | "
        f"{c['rss_interpreter_mib']:.1f} / {c['rss_after_import_mib']:.1f} / "
        f"{c['rss_after_first_invocation_mib']:.1f} MiB |",
        f"| RSS after {c['later_batches']} more batches of {c['later_batch_size']} | "
        f"{c['rss_after_later_batches_mib']:.1f} MiB |",
        "",
        END,
    ]
    return "\n".join(lines)


_SKELETON = """# Benchmarks

{generated}
"""


def update_benchmarks_md(path: Path, results) -> None:
    """Replaces the generated part of the file, keeping the text around it."""
    generated = markdown(results)
    if path.exists():
        text = path.read_text()
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            _, tail = rest.split(END, 1)
            path.write_text(head + generated + tail)
            return
        path.write_text(text.rstrip("\n") + "\n\n" + generated + "\n")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_SKELETON.format(generated=generated))


def summary_text(results) -> str:
    sizes = _sizes(results)
    width = 52
    out = [f"{'documents per second':<{width}}" + "".join(f"{'batch ' + s:>14}" for s in sizes)]
    for name in (*MAIN, *FIX):
        out.append(f"{LABELS[name]:<{width}}" + "".join(f"{_rate(results['paths'][name][s]['docs_per_s']):>14}" for s in sizes))
    for label, a, b in (("ratio 1 / 2", "app", "raw"), ("ratio 1c / 2", "app_fn", "raw"),
                        ("ratio 1 / 2, both linger.ms=5", "app_linger5", "raw_linger5"),
                        ("ratio 1 (linger.ms=5) / 2", "app_linger5", "raw")):
        out.append(f"{label:<{width}}" + "".join(f"{ratio(results, a, b, s):>14.2f}" for s in sizes))
    out.append("")
    out.append(f"{'p50 / p99 ms per batch':<{width}}" + "".join(f"{'batch ' + s:>14}" for s in sizes))
    for name in ("app", "raw", "naive", *FIX):
        cells = "".join(f"{_ms(results['paths'][name][s]['p50_ms']) + ' / ' + _ms(results['paths'][name][s]['p99_ms']):>14}"
                        for s in sizes)
        out.append(f"{LABELS[name]:<{width}}{cells}")
    out.append("")
    for variant, by_threads in results["parallel"].items():
        for threads, f in by_threads.items():
            out.append(f"parallel {variant}, {threads} thread(s): {_rate(f['docs_per_s'])} docs/s, "
                       f"p50 {_ms(f['p50_ms'])} ms, p99 {_ms(f['p99_ms'])} ms")
    for kind, f in results["translation"].items():
        out.append(f"translation {kind}: converter {f['converter_decode_us_per_doc']:.1f} µs/doc, "
                   f"translate {f['translate_us_per_doc']:.1f} µs/doc "
                   f"(plain dicts {f['translate_plain_dicts_us_per_doc']:.1f})")
    c = results["cold_start"]
    out.append(f"cold start: import {c['import_s_median'] * 1000:.0f} ms median of {c['import_runs']}, "
               f"first invocation {c['first_invocation_s'] * 1000:.0f} ms, RSS after it "
               f"{c['rss_after_first_invocation_mib']:.1f} MiB "
               f"({c['rss_after_later_batches_mib']:.1f} MiB after {c['later_batches']} more batches)")
    return "\n".join(out)


def chart(results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = _sizes(results)
    x = [int(s) for s in sizes]
    styles = {
        "app": dict(color="tab:blue", marker="o", linewidth=2.5),
        "raw": dict(color="tab:green", marker="s", linewidth=2),
        "naive": dict(color="tab:red", marker="v", linewidth=2),
        "fire": dict(color="tab:gray", marker="^", linewidth=2),
        "app_linger5": dict(color="tab:purple", marker="o", linewidth=1.5, linestyle="--", markerfacecolor="white"),
    }
    fig, ax = plt.subplots(figsize=(9, 6), dpi=110)
    for name, style in styles.items():
        y = [results["paths"][name][s]["docs_per_s"] for s in sizes]
        ax.plot(x, y, label=LABELS[name] + (", as before 3de4574" if name == "app_linger5" else ""), **style)
    for s, xi in zip(sizes, x):
        r = ratio(results, "app", "raw", s)
        ax.annotate(f"1 / 2 = {r:.2f}", (xi, results["paths"]["app"][s]["docs_per_s"]),
                    textcoords="offset points", xytext=(8, 6), fontsize=9, color="tab:blue",
                    bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor="none", alpha=0.85))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels([str(v) for v in x])
    ax.set_xlabel("documents per change batch")
    ax.set_ylabel("documents per second (log scale)")
    m = results["machine"]
    ax.set_title("Change batch to acknowledged invalidation\n"
                 f"{m['nproc']} cores {m['cpu_model']}, Kafka {m['kafka'].split(',')[0]} on localhost, "
                 f"librdkafka {m['librdkafka']}, {m['date']}", fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=9, framealpha=0.95)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
