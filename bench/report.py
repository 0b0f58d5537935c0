"""Turns bench/results.json into the generated section of BENCHMARKS.md and the charts.

    report.py RESULTS BENCHMARKS_MD

Rewrites what lies between `<!-- suite:begin -->` and `<!-- suite:end -->` in
BENCHMARKS_MD (appending the markers if missing) and writes bench/throughput.png and
bench/rss-large.png. Medians with min-max over the runs; ratios are of medians measured
in the same invocation of the suite.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BENCH = Path(__file__).resolve().parent
BEGIN, END = "<!-- suite:begin -->", "<!-- suite:end -->"
ORDER = ["cdf-syncd", "plain PUT (curl -T)", "cognite-sdk", "extractor-utils"]
COLORS = {"cdf-syncd": "#1f77b4", "plain PUT (curl -T)": "#7f7f7f", "cognite-sdk": "#ff7f0e", "extractor-utils": "#2ca02c"}
GIB, MIB = 1024**3, 1024**2


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def who_order(runs: dict[str, Any]) -> list[str]:
    return [w for w in ORDER if w in runs] + [w for w in runs if w not in ORDER]


def metric(w: dict[str, Any], name: str, rec: dict[str, Any]) -> float:
    """The workload's headline number for one run: MB/s, files/s, or seconds."""
    if name == "large":
        return w["bytes"] / rec["seconds"] / 1e6
    if name == "small":
        return w["files"] / rec["seconds"]
    return rec["seconds"]


UNIT = {"large": "MB/s", "small": "files/s", "mixed": "s"}
TITLE = {
    "large": "Large file: throughput (MB/s, higher is better)",
    "small": "Many small files: files/s (higher is better)",
    "mixed": "Mixed tree: total time (s, lower is better)",
}


def fmt(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}" if x >= 10 else f"{x:,.2f}"


def size_label(n: int) -> str:
    return f"{n / GIB:.0f} GiB" if n >= GIB else f"{n / MIB:.0f} MiB"


def upload_table(name: str, w: dict[str, Any]) -> list[str]:
    lines = []
    desc = {
        "large": f"one {size_label(w['bytes'])} file",
        "small": f"{w['files']:,} files of 4-64 KiB in 200 directories ({w['bytes'] / MIB:.0f} MiB)",
        "mixed": f"{w['files']:,} files from 0 bytes to 200 MiB in 100 directories ({w['bytes'] / GIB:.2f} GiB)",
    }[name]
    runs = w["runs"]
    n_runs = max((len(r) for r in runs.values()), default=0)
    lines.append(f"**{TITLE[name].split(':')[0]}**: {desc}; {n_runs} runs each, {w['when']}, "
                 f"load average {w['load_before'][0]:.1f} before, {w['load_after'][0]:.1f} after.")
    lines.append("")
    ref = "plain PUT (curl -T)" if name == "large" else None
    best_py = None
    pys = [p for p in ("cognite-sdk", "extractor-utils") if p in runs]
    if pys:
        pick = max if name != "mixed" else min
        best_py = pick(pys, key=lambda p: med([metric(w, name, r) for r in runs[p]]))
    head = f"| contender | median {UNIT[name]} | min-max | time (s, median) | CPU-s | CPU-s per GiB | peak RSS (MiB) |"
    if ref:
        head += " vs plain PUT |"
    elif best_py:
        head += f" cdf-syncd vs it |"
    lines.append(head)
    lines.append("|" + "---|" * (head.count("|") - 1))
    syncd = med([metric(w, name, r) for r in runs["cdf-syncd"]]) if "cdf-syncd" in runs else None
    for who in who_order(runs):
        rs = runs[who]
        vals = [metric(w, name, r) for r in rs]
        m = med(vals)
        cpu = med([r["cpu"] for r in rs])
        row = (f"| {who} | {fmt(m)} | {fmt(min(vals))}-{fmt(max(vals))} | {med([r['seconds'] for r in rs]):.2f} "
               f"| {cpu:.2f} | {cpu / (w['bytes'] / GIB):.2f} | {max(r['maxrss_kib'] for r in rs) / 1024:.0f} |")
        if ref:
            r0 = med([metric(w, name, r) for r in runs[ref]]) if ref in runs else None
            row += f" {m / r0:.2f}x |" if r0 else " |"
        elif best_py:
            if who == "cdf-syncd" or syncd is None:
                row += " |"
            else:
                ratio = syncd / m if name != "mixed" else m / syncd
                row += f" {ratio:.1f}x |"
        lines.append(row)
    for who, problems in w.get("failures", {}).items():
        lines.append("")
        lines.append(f"{who} failed {len(problems)} run(s): {problems[0]}")
    lines.append("")
    return lines


def targets(res: dict[str, Any]) -> list[str]:
    ws = res["workloads"]
    out = ["| target | measured | met? |", "|---|---|---|"]

    def medof(name: str, who: str) -> float | None:
        w = ws.get(name)
        if not w or who not in w["runs"]:
            return None
        return med([metric(w, name, r) for r in w["runs"][who]])

    if "large" in ws:
        s, p = medof("large", "cdf-syncd"), medof("large", "plain PUT (curl -T)")
        py = [v for v in (medof("large", "cognite-sdk"), medof("large", "extractor-utils")) if v]
        if s and p:
            ok = s >= 0.9 * p and all(s > v for v in py)
            out.append(f"| large file >= 0.9x plain PUT, ahead of both Python contenders | {s / p:.2f}x of plain PUT; "
                       f"{', '.join(f'{s / v:.1f}x' for v in py)} of the Python ones | {'yes' if ok else 'NO'} |")
        w = ws["large"]
        if "cdf-syncd" in w["runs"]:
            rss = max(r["maxrss_kib"] for r in w["runs"]["cdf-syncd"]) / 1024
            out.append(f"| peak RSS <= 40 MiB during the large file | {rss:.0f} MiB | {'yes' if rss <= 40 else 'NO'} |")
            cpu = med([r["cpu"] for r in w["runs"]["cdf-syncd"]]) / (w["bytes"] / GIB)
            if "plain PUT (curl -T)" in w["runs"]:
                cp = med([r["cpu"] for r in w["runs"]["plain PUT (curl -T)"]]) / (w["bytes"] / GIB)
                out.append(f"| CPU-s per GiB, next to the plain PUT client's | {cpu:.2f} vs curl {cp:.2f} | (reported) |")
    if "small" in ws:
        s = medof("small", "cdf-syncd")
        py = [v for v in (medof("small", "cognite-sdk"), medof("small", "extractor-utils")) if v]
        if s and py:
            r = s / max(py)
            out.append(f"| small files >= 5x the better Python contender | {r:.1f}x | {'yes' if r >= 5 else 'NO'} |")
    if "mixed" in ws:
        s = medof("mixed", "cdf-syncd")
        py = [v for v in (medof("mixed", "cognite-sdk"), medof("mixed", "extractor-utils")) if v]
        if s and py:
            out.append(f"| mixed tree: total time ahead of both | {s:.1f} s vs {', '.join(f'{v:.1f} s' for v in py)} "
                       f"| {'yes' if all(s < v for v in py) else 'NO'} |")
    if "latency" in ws:
        lat = ws["latency"]
        out.append(f"| latency close -> uploaded (daemon, default stable_for), {lat['files']} files "
                   f"| p50 {lat['p50']:.2f} s, p99 {lat['p99']:.2f} s, {lat['missing']} missing | (reported) |")
    if "restart" in ws:
        pts = ws["restart"]["points"]
        for p in pts:
            out.append(f"| restart with {p['files']:,} synced files: start to idle, next to find "
                       f"| {p['restart_s']:.2f} s vs find {p['find_s']:.2f} s | (reported) |")
        if len(pts) > 1:
            d = (pts[-1]["restart_rss_kib"] - pts[0]["restart_rss_kib"]) / 1024
            out.append(f"| RSS growth {pts[0]['files']:,} -> {pts[-1]['files']:,} tracked files < 10 MiB "
                       f"| {d:+.1f} MiB | {'yes' if d < 10 else 'NO'} |")
        p = pts[-1]
        out.append(f"| job-store bytes per tracked file ({p['files']:,} files) | {p['store_bytes_per_file']:.0f} | (reported) |")
    if "tracked" in ws:
        pts = ws["tracked"]["points"]
        if len(pts) > 1:
            d = (pts[-1]["rss_kib"] - pts[0]["rss_kib"]) / 1024
            out.append(f"| RSS with {pts[0]['files']:,} vs {pts[-1]['files']:,} tracked synced files: difference < 10 MiB "
                       f"| {pts[0]['rss_kib'] / 1024:.0f} -> {pts[-1]['rss_kib'] / 1024:.0f} MiB ({d:+.1f}) | {'yes' if d < 10 else 'NO'} |")
    if "ratelimit" in ws:
        r = ws["ratelimit"]
        out.append(f"| bandwidth limit accuracy | {r['achieved_mib']:.2f} MiB/s at max_rate {r['max_rate_mib']} MiB/s "
                   f"({r['error_pct']:+.1f} %) | {'yes' if abs(r['error_pct']) < 10 else 'NO'} |")
    return out


def charts(res: dict[str, Any]) -> list[str]:
    ws = res["workloads"]
    made = []
    names = [n for n in ("large", "small", "mixed") if n in ws]
    if names:
        fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4), squeeze=False)
        for ax, name in zip(axes[0], names):
            w = ws[name]
            whos = who_order(w["runs"])
            vals = [[metric(w, name, r) for r in w["runs"][x]] for x in whos]
            meds = [med(v) for v in vals]
            err = [[m - min(v) for m, v in zip(meds, vals)], [max(v) - m for m, v in zip(meds, vals)]]
            ax.bar(range(len(whos)), meds, yerr=err, capsize=4, color=[COLORS.get(x, "#999") for x in whos])
            ax.set_xticks(range(len(whos)), [x.replace(" (curl -T)", "\n(curl -T)") for x in whos], fontsize=8)
            ax.set_title(TITLE[name], fontsize=9)
            for i, m in enumerate(meds):
                ax.text(i, m / 2, fmt(m), ha="center", va="center", fontsize=9, color="white", fontweight="bold")
        fig.tight_layout()
        fig.savefig(BENCH / "throughput.png", dpi=100)
        plt.close(fig)
        made.append("throughput.png")
    if "large" in ws and ws["large"].get("rss"):
        fig, ax = plt.subplots(figsize=(8, 4))
        for who in who_order(ws["large"]["rss"]):
            pts = ws["large"]["rss"][who]
            ax.plot([p[0] for p in pts], [p[1] / 1024 for p in pts], label=who, color=COLORS.get(who))
        ax.set_xlabel("seconds since start")
        ax.set_ylabel("RSS (MiB)")
        ax.set_title(f"RSS during the large-file upload ({size_label(ws['large']['bytes'])}, first run)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(BENCH / "rss-large.png", dpi=100)
        plt.close(fig)
        made.append("rss-large.png")
    return made


def section(res: dict[str, Any]) -> str:
    m = res["machine"]
    ws = res["workloads"]
    cmds = sorted({w.get("command", "") for w in ws.values() if w.get("command")})
    lines = [
        "## The suite: cdf-syncd against the Python clients and the plain-PUT limit",
        "",
        "Generated by `bench/report.py` from `bench/results.json`; reproduce with:",
        "",
        "```",
        *cmds,
        "```",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['mem_mib'] / 1024:.0f} GiB RAM, Linux {m['kernel']}, "
        f"Python {m['python']}; cdf-syncd at {m['commit']}, release build. Emulator `--discard` on loopback; "
        "workload files in the page cache (written just before), so the disk is not measured. "
        f"Python contenders' settings: cognite-sdk `files.upload` concurrency {res['settings']['sdk_upload']}, "
        f"extractor-utils `max_parallelism` {res['settings']['extractor_parallelism']} (see below).",
        "",
        "### Targets",
        "",
        *targets(res),
        "",
    ]
    for name in ("large", "small", "mixed"):
        if name in ws:
            lines += [f"### {TITLE[name]}", "", *upload_table(name, ws[name])]
    made = charts(res)
    if made:
        lines += ["### Charts", ""] + [f"![{x}](bench/{x})" for x in made] + [""]
    if "latency" in ws:
        lat = ws["latency"]
        nd = lat.get("new_dir") or {}
        lines += ["### Latency (daemon)", "",
                  f"`cdf-syncd run` with the default `stable_for` (5 s); {lat['files']} files of 4-64 KiB written one every "
                  f"20 ms into 10 directories the daemon already watches; time from the writer's `close` to the emulator "
                  f"listing the file `uploaded: true` (polled every {lat['poll_interval'] * 1000:.0f} ms): "
                  f"**p50 {lat['p50']:.3f} s, p99 {lat['p99']:.3f} s**, max {lat['max']:.3f} s; {lat['missing']} never "
                  f"arrived. {lat['when']}."
                  + (f" A file written into a directory created a moment before ({nd['files']} cases): median "
                     f"{nd['p50']:.2f} s, max {nd['max']:.2f} s." if nd.get("files") else ""), ""]
    if "restart" in ws:
        lines += ["### Restart over an already-synced tree, memory vs tracked files, job-store size", "",
                  "`sync --once` over a tree it already synced (files of 100 bytes in 10,000 directories): start to exit "
                  "with nothing re-uploaded (checked: no new `POST files`), next to `find TREE -type f | wc -l` "
                  "on the same tree.", "",
                  "| tracked files | first sync (s) | restart to idle (s) | find (s) | restart peak RSS (MiB) | restart CPU-s | job store (bytes) | bytes per file |",
                  "|---|---|---|---|---|---|---|---|"]
        for p in ws["restart"]["points"]:
            lines.append(f"| {p['files']:,} | {p['first_sync_s']:.1f} | {p['restart_s']:.2f} | {p['find_s']:.2f} | "
                         f"{p['restart_rss_kib'] / 1024:.0f} | {p['restart_cpu']:.2f} | {p['store_bytes']:,} | {p['store_bytes_per_file']:.0f} |")
        lines.append("")
    if "tracked" in ws:
        lines += ["### Memory and time to idle vs tracked files", "",
                  "Empty files on disk (100 per directory, dated 10 minutes back, as after a restart), a job store prefilled with a synced record for each "
                  "(`examples/bench_prefill.rs`), then `sync --once`: it scans and stats every file, finds each "
                  "synced, uploads nothing (checked in the emulator) and exits. Its peak RSS is what tracking the "
                  "files costs; `find TREE -type f | wc -l` on the same tree for scale.", "",
                  "| tracked files | start to idle (s) | find (s) | peak RSS (MiB) | CPU-s | job store (bytes) | bytes per file |",
                  "|---|---|---|---|---|---|---|"]
        for p in ws["tracked"]["points"]:
            lines.append(f"| {p['files']:,} | {p['idle_s']:.2f} | {p['find_s']:.2f} | {p['rss_kib'] / 1024:.1f} | "
                         f"{p['cpu']:.2f} | {p['store_bytes']:,} | {p['store_bytes'] / p['files']:.0f} |")
        lines.append("")
    if "ratelimit" in ws:
        r = ws["ratelimit"]
        lines += ["### Bandwidth limit", "",
                  f"`[upload] max_rate = \"{r['max_rate_mib']} MiB/s\"`, one file of {r['bytes'] / MIB:.0f} MiB, whole "
                  f"`sync --once` run: {r['seconds']:.2f} s, {r['achieved_mib']:.3f} MiB/s ({r['error_pct']:+.2f} %).", ""]
    if "tune" in ws:
        t = ws["tune"]
        lines += ["### Settings sweep for the Python contenders (`--workloads tune`)", "",
                  f"{t['small_files']:,} small files and one {size_label(t['large_bytes'])} file, one run each, {t['when']}.", "",
                  "| workload | contender | setting | seconds |", "|---|---|---|---|"]
        for row in t["rows"]:
            s = f"{row['seconds']:.2f}" if row["seconds"] is not None else f"failed: {row['problem']}"
            lines.append(f"| {row['workload']} | {row['contender']} | `{row['setting']}` | {s} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    res = json.loads(Path(sys.argv[1]).read_text())
    md_path = Path(sys.argv[2])
    text = md_path.read_text() if md_path.exists() else "# Benchmarks\n"
    body = f"{BEGIN}\n{section(res)}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + body + tail
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    md_path.write_text(text)
    print(f"wrote {md_path} and the charts in {BENCH}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
