#!/usr/bin/python3
"""Draws the benchmark plots from the CSV files bench/all.sh writes.

    bench/plot.py RESULTS_DIR

Reads compare.csv, hops.csv and scale*.csv in RESULTS_DIR (each optional; scale_1m.csv, say,
adds a run of another size) and writes there:
tasks_per_second.png (fan-out tasks/s against size, batchd beside make and ninja),
hop_latency.png (distribution of chain hops) and rss.png (peak RSS against partitions).
"""
import csv
import glob
import os
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import ScalarFormatter  # noqa: E402

TOOL_COLOURS = {"batchd": "tab:blue", "make": "tab:orange", "ninja": "tab:green", "floor": "tab:grey"}


def read_rows(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def save(fig, ax, out, legend_at="best"):
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc=legend_at)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def plot_tasks_per_second(rows, out):
    series = defaultdict(list)  # (tool, jobs) -> [(size, tasks/s)]
    for r in rows:
        if r["case"] == "fanout":
            size = int(r["size"])
            series[(r["tool"], int(r["jobs"]))].append((size, size / float(r["best_wall_s"])))
    if not series:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (tool, jobs), points in sorted(series.items()):
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o",
                color=TOOL_COLOURS.get(tool), linestyle="-" if jobs == min(j for _, j in series) else "--",
                label=f"{tool} -j{jobs}")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.set_xlabel("no-op tasks in the fan-out")
    ax.set_ylabel("tasks per second (best run)")
    ax.set_title("Throughput against size: batchd run, GNU make, ninja")
    ax.set_ylim(bottom=0)
    save(fig, ax, out)
    return True


def plot_hops(rows, out):
    hops = defaultdict(list)
    for r in rows:
        hops[r["tool"]].append(float(r["us"]))
    if not hops:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for tool, values in hops.items():
        values.sort()
        n = len(values)
        p50, p99 = values[n // 2], values[min(n - 1, int(n * 0.99))]
        ax.step(values, [(i + 1) / n for i in range(n)], where="post", color=TOOL_COLOURS.get(tool),
                label=f"{tool}: p50 {p50:.0f} µs, p99 {p99:.0f} µs")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(ScalarFormatter())
    ax.set_xlabel("hop: upstream's end to downstream's start (µs)")
    ax.set_ylabel("fraction of hops")
    ax.set_title("Chain hop latency")
    save(fig, ax, out, legend_at="lower right")
    return True


def plot_rss(rows, out):
    series = {"batchd run (fan-in)": [], "batchd serve (one run)": []}
    for r in rows:
        if r["workload"] == "fanin" and r["metric"] == "peak_rss":
            series["batchd run (fan-in)"].append((int(r["size"]), float(r["value"])))
        if r["workload"] == "daemon_run" and r["metric"] == "daemon_peak_rss":
            series["batchd serve (one run)"].append((int(r["size"]), float(r["value"])))
    if not any(series.values()):
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, points in series.items():
        if points:
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("partitions in the run")
    ax.set_ylabel("peak RSS (MiB)")
    ax.set_title("Memory against run width")
    save(fig, ax, out)
    return True


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    results = sys.argv[1]
    plots = [
        (plot_tasks_per_second, "compare.csv", "tasks_per_second.png"),
        (plot_hops, "hops.csv", "hop_latency.png"),
        (plot_rss, "scale*.csv", "rss.png"),
    ]
    for draw, source, image in plots:
        out = os.path.join(results, image)
        rows = [row for path in sorted(glob.glob(os.path.join(results, source))) for row in read_rows(path)]
        if draw(rows, out):
            print(f"wrote {out}")


if __name__ == "__main__":
    main()
