"""Tables and chart of a bench run: the generated part of docs/BENCHMARKS.md and docs/benchmark-throughput.png."""

from __future__ import annotations

import math
from pathlib import Path

BEGIN = "<!-- bench/run.py writes from here -->"
END = "<!-- bench/run.py writes up to here -->"

LABELS = {
    "app": "app: host JSON text → `changes: str` function → acked",
    "limit": "limit: json.loads, unescape, produce, flush()",
    "app_doclist": "app with `func.DocumentList`: converter → function → acked",
    "raw": "raw: prebuilt messages, flush()",
    "naive": "naive: flush() per message",
    "fire": "fire-and-forget: one flush() at the end",
}
ACKED = ("app", "limit", "app_doclist", "raw", "naive")
TARGET = 0.9


def _sizes(results) -> list[str]:
    return sorted(results["paths"]["app"], key=int)


def _rate(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:,.0f}"


def _ms(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def ratio(results, numerator: str, denominator: str, size) -> float:
    return results["paths"][numerator][size]["docs_per_s"] / results["paths"][denominator][size]["docs_per_s"]


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _headline(results) -> list[str]:
    sizes = _sizes(results)
    return [
        _row(["", *[f"batch of {s}" for s in sizes]]),
        _row(["---", *["---:"] * len(sizes)]),
        _row([f"**app / limit** (goal {TARGET} at 10, 100 and 1000)",
              *[f"**{ratio(results, 'app', 'limit', s):.2f}**" for s in sizes]]),
        _row(["app / limit, p50 latency (limit p50 ÷ app p50)",
              *[f"{results['paths']['limit'][s]['p50_ms'] / results['paths']['app'][s]['p50_ms']:.2f}" for s in sizes]]),
        _row(["app with `func.DocumentList` / limit", *[f"{ratio(results, 'app_doclist', 'limit', s):.2f}" for s in sizes]]),
        _row(["app / raw (prebuilt messages)", *[f"{ratio(results, 'app', 'raw', s):.2f}" for s in sizes]]),
    ]


def _throughput_table(results) -> list[str]:
    sizes = _sizes(results)
    lines = [_row(["documents per second", *[f"batch of {s}" for s in sizes]]),
             _row(["---", *["---:"] * len(sizes)])]
    for name in (*ACKED, "fire"):
        lines.append(_row([LABELS[name], *[_rate(results["paths"][name][s]["docs_per_s"]) for s in sizes]]))
    return lines


def _latency_table(results) -> list[str]:
    sizes = _sizes(results)
    lines = [_row(["latency per batch, p50 / p99 ms (batches)", *[f"batch of {s}" for s in sizes]]),
             _row(["---", *["---:"] * len(sizes)])]
    for name in ACKED:
        cells = []
        for s in sizes:
            f = results["paths"][name][s]
            cells.append(f"{_ms(f['p50_ms'])} / {_ms(f['p99_ms'])} ({f['batches']})")
        lines.append(_row([LABELS[name], *cells]))
    return lines


def _runtime_table(results) -> list[str]:
    r = results.get("runtime")
    if not r:
        return ["Not measured in this run: the runtime suite's Python 3.13 environment "
                "(`.cache/venv-runtime-3.13`, made by `scripts/test`) was missing."]
    sizes = sorted(r["str"], key=int)
    return [
        f"{r['runtime']} on Python {r['python']}, through `devhost/worker_host.py` (pipes stand in for "
        "the host's gRPC stream); InvocationRequest to InvocationResponse, median ms, the two apps taking turns.",
        "",
        _row(["trigger parameter", *[f"batch of {s}" for s in sizes]]),
        _row(["---", *["---:"] * len(sizes)]),
        _row(["`changes: str` (as shipped)", *[_ms(r["str"][s]["p50_ms"]) for s in sizes]]),
        _row(["`changes: func.DocumentList`", *[_ms(r["DocumentList"][s]["p50_ms"]) for s in sizes]]),
        _row(["DocumentList ÷ str", *[f"{r['DocumentList'][s]['p50_ms'] / r['str'][s]['p50_ms']:.2f}" for s in sizes]]),
    ]


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
        f"| confluent-kafka / librdkafka / orjson | {m['confluent_kafka']} / {m['librdkafka']} / {m['orjson']} |",
        f"| azure-functions | {m['azure_functions']} |",
        f"| Kafka broker | {m['kafka']}; {m['java']}; topic of {results['partitions']} partition(s), "
        "replication factor 1 |",
        f"| load average (1, 5, 15 min) | before {', '.join(f'{x:.2f}' for x in m['load_average_before'])}; "
        f"after {', '.join(f'{x:.2f}' for x in m['load_average_after'])} |",
        "",
        "Producer config of every path (`Settings.from_env(...).kafka.producer_config()`): "
        f"`{results['producer_config']}`",
        "",
        "### The headline: the app against the limit",
        "",
        "Whisks documents (actions, actions in packages, packages, triggers, rules: one message each), "
        f"batches back to back, every path interleaved in {results['rounds']} rounds; throughput ratios.",
        "",
        *_headline(results),
        "",
        "### Every path",
        "",
        *_throughput_table(results),
        "",
        *_latency_table(results),
        "",
        "Fire-and-forget has no per-batch latency: nothing waits for a batch's acknowledgements.",
        "",
        "### Through Microsoft's worker runtime, both annotations",
        "",
        *_runtime_table(results),
        "",
        "### Parallel leases: threads invoking at once, batches of 100, whisks and subjects alternating",
        "",
        _row(["threads", "documents per second", "p50 ms", "p99 ms", "batches"]),
        _row(["---:", "---:", "---:", "---:", "---:"]),
    ]
    for threads, f in results["parallel"].items():
        lines.append(_row([threads, _rate(f["docs_per_s"]), _ms(f["p50_ms"]), _ms(f["p99_ms"]), f["batches"]]))
    lines += [
        "",
        "### Parsing and translation alone, µs per document (median of batches of 1000)",
        "",
        _row(["container", "messages per document", "json.loads", "orjson.loads",
              "azure-functions converter", "translate()"]),
        _row(["---", "---:", "---:", "---:", "---:", "---:"]),
    ]
    for kind, f in t.items():
        lines.append(_row([kind, f"{f['messages_per_document']:.2f}", f"{f['json_us_per_doc']:.2f}",
                           f"{f['orjson_us_per_doc']:.2f}", f"{f['converter_us_per_doc']:.2f}",
                           f"{f['translate_us_per_doc']:.2f}"]))
    lines += [
        "",
        "### Cold start",
        "",
        "| | |",
        "| --- | --- |",
        f"| `import function_app` in a fresh interpreter | median {c['import_s_median'] * 1000:.0f} ms "
        f"(min {c['import_s_min'] * 1000:.0f}, max {c['import_s_max'] * 1000:.0f}, {c['import_runs']} runs) |",
        f"| `import azure.functions` alone | median {c['library_import_s_median'] * 1000:.0f} ms |",
        f"| the app's own import (the difference) | **{c['own_import_s_median'] * 1000:.0f} ms** |",
        f"| first invocation, 1 document, right after import and indexing | "
        f"{c['first_invocation_at_once_s'] * 1000:.1f} ms |",
        f"| first invocation, {c['first_batch_pause_s']:g} s after indexing (the host starts its listener and takes "
        f"leases first) | **{c['first_invocation_s'] * 1000:.1f} ms** (the second: "
        f"{c['second_invocation_s'] * 1000:.1f} ms) |",
        f"| what the first invocation would wait without the early start: a new producer's first acknowledgement "
        f"| {c['first_message_of_a_new_producer_ms']['idempotent']:.0f} ms with enable.idempotence (as shipped), "
        f"{c['first_message_of_a_new_producer_ms']['not_idempotent']:.0f} ms without |",
        f"| RSS: bare interpreter / after the import / after the first invocation | "
        f"{c['rss_interpreter_mib']:.1f} / {c['rss_after_import_mib']:.1f} / "
        f"{c['rss_after_first_invocation_mib']:.1f} MiB |",
        f"| RSS after {c['later_batches']} more batches (up to {c['later_batch_size']} documents) | "
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
    width = 62
    out = [f"{'':<{width}}" + "".join(f"{'batch ' + s:>14}" for s in sizes)]
    out.append(f"{'APP / LIMIT':<{width}}" + "".join(f"{ratio(results, 'app', 'limit', s):>14.2f}" for s in sizes))
    out.append(f"{'app with DocumentList / limit':<{width}}"
               + "".join(f"{ratio(results, 'app_doclist', 'limit', s):>14.2f}" for s in sizes))
    out.append("")
    out.append(f"{'documents per second':<{width}}" + "".join(f"{'batch ' + s:>14}" for s in sizes))
    for name in (*ACKED, "fire"):
        out.append(f"{LABELS[name]:<{width}}"
                   + "".join(f"{_rate(results['paths'][name][s]['docs_per_s']):>14}" for s in sizes))
    out.append("")
    out.append(f"{'p50 / p99 ms per batch':<{width}}" + "".join(f"{'batch ' + s:>14}" for s in sizes))
    for name in ACKED:
        cells = "".join(f"{_ms(results['paths'][name][s]['p50_ms']) + ' / ' + _ms(results['paths'][name][s]['p99_ms']):>14}"
                        for s in sizes)
        out.append(f"{LABELS[name]:<{width}}{cells}")
    out.append("")
    for threads, f in results["parallel"].items():
        out.append(f"parallel, {threads} thread(s): {_rate(f['docs_per_s'])} docs/s, "
                   f"p50 {_ms(f['p50_ms'])} ms, p99 {_ms(f['p99_ms'])} ms")
    for kind, f in results["translation"].items():
        out.append(f"{kind}: json {f['json_us_per_doc']:.2f}, orjson {f['orjson_us_per_doc']:.2f}, converter "
                   f"{f['converter_us_per_doc']:.2f}, translate {f['translate_us_per_doc']:.2f} µs/doc")
    r = results.get("runtime")
    if r:
        for size in sorted(r["str"], key=int):
            out.append(f"worker runtime, batch of {size}: str {_ms(r['str'][size]['p50_ms'])} ms, "
                       f"DocumentList {_ms(r['DocumentList'][size]['p50_ms'])} ms (p50)")
    c = results["cold_start"]
    out.append(f"cold start: import function_app {c['import_s_median'] * 1000:.0f} ms, azure.functions "
               f"{c['library_import_s_median'] * 1000:.0f} ms, own {c['own_import_s_median'] * 1000:.0f} ms; "
               f"first invocation {c['first_invocation_at_once_s'] * 1000:.1f} ms at once, "
               f"{c['first_invocation_s'] * 1000:.1f} ms after {c['first_batch_pause_s']:g} s; RSS after it "
               f"{c['rss_after_first_invocation_mib']:.1f} MiB")
    return "\n".join(out)


def chart(results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = _sizes(results)
    x = [int(s) for s in sizes]
    styles = {
        "app": dict(color="tab:blue", marker="o", linewidth=2.5),
        "limit": dict(color="black", marker="D", linewidth=2, linestyle="--"),
        "app_doclist": dict(color="tab:purple", marker="o", linewidth=1.5, markerfacecolor="white"),
        "raw": dict(color="tab:green", marker="s", linewidth=1.5),
        "naive": dict(color="tab:red", marker="v", linewidth=1.5),
        "fire": dict(color="tab:gray", marker="^", linewidth=1.5),
    }
    fig, (ax, bars) = plt.subplots(1, 2, figsize=(13, 6), dpi=110, gridspec_kw={"width_ratios": [3, 2]})
    for name, style in styles.items():
        ax.plot(x, [results["paths"][name][s]["docs_per_s"] for s in sizes], label=LABELS[name].replace("`", ""),
                **style)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels([str(v) for v in x])
    ax.set_xlabel("documents per change batch")
    ax.set_ylabel("documents per second (log scale)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, framealpha=0.95)
    ax.set_title("Change batch to acknowledged invalidation", fontsize=11)

    ratios = [ratio(results, "app", "limit", s) for s in sizes]
    drawn = bars.bar([str(s) for s in sizes], ratios, color=["tab:blue" if r >= TARGET else "tab:orange" for r in ratios])
    bars.axhline(TARGET, color="black", linestyle="--", linewidth=1)
    bars.annotate(f"goal {TARGET}", (-0.45, TARGET), textcoords="offset points", xytext=(0, 4), fontsize=9)
    for bar, r in zip(drawn, ratios):
        bars.annotate(f"{r:.2f}", (bar.get_x() + bar.get_width() / 2, r), textcoords="offset points",
                      xytext=(0, 4), ha="center", fontsize=10, fontweight="bold")
    bars.set_ylim(0, max(1.2, max(ratios) * 1.15))
    bars.set_xlabel("documents per change batch")
    bars.set_ylabel("app / limit (throughput)")
    bars.set_title("The app against what no implementation can skip", fontsize=11)
    m = results["machine"]
    fig.suptitle(f"{m['nproc']} cores {m['cpu_model']}, Kafka {m['kafka'].split(',')[0]} on localhost, "
                 f"librdkafka {m['librdkafka']}, {m['date']}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
