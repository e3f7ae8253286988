#!/usr/bin/python3
"""Plot compare_schemes.csv: accuracy against stored bytes and against batch-1 latency.

    tools/plot_compare_schemes.py build/compare_schemes.csv      # writes .svg and .png beside it

One row of panels per network (mlp, cnn): test accuracy against parameter bytes (log x)
and against single-thread batch-1 latency (log x). Every variant is one marker, labelled
with its setting (a label that would overlap another moves down a line) and coloured by
scheme; the grey staircase is the Pareto front (no other variant is both smaller, or
faster, and more accurate). Needs matplotlib (Debian: python3-matplotlib).
"""

import argparse
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402

COLUMNS = ["network", "scheme", "setting", "accuracy", "param_bytes", "latency_b1_us"]


def read_rows(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: not a compare_schemes.csv (missing columns {', '.join(missing)})")
        rows = []
        for line, r in enumerate(reader, start=2):
            try:
                rows.append({"network": r["network"], "scheme": r["scheme"], "setting": r["setting"],
                             "accuracy": 100 * float(r["accuracy"]), "param_bytes": float(r["param_bytes"]),
                             "latency_b1_us": float(r["latency_b1_us"])})
            except ValueError as e:
                raise ValueError(f"{path}:{line}: {e}") from e
    if not rows:
        raise ValueError(f"{path}: no results")
    return rows


def pareto_front(points):
    """The (x, accuracy) points no other point beats on both: smaller x and higher accuracy."""
    front, best = [], float("-inf")
    for x, acc in sorted(points, key=lambda p: (p[0], -p[1])):
        if acc > best:
            front.append((x, acc))
            best = acc
    return front


def place_labels(ax, points):
    """Label each (x, y, text) to the upper right of its marker; a label that would overlap
    one placed before it (the points sharply above first) moves down a line at a time."""
    renderer = ax.figure.canvas.get_renderer()
    placed = []
    for x, y, text in sorted(points, key=lambda p: (-p[1], p[0])):
        for line in range(8):
            label = ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, 3 - 8 * line), fontsize=7)
            box = label.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed):
                break
            label.remove()
        else:
            label = ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
            box = label.get_window_extent(renderer)
        placed.append(box)


def plot(rows, out_base):
    networks = list(dict.fromkeys(r["network"] for r in rows))
    schemes = list(dict.fromkeys(r["scheme"] for r in rows))
    colours = {s: plt.get_cmap("tab10")(i % 10) for i, s in enumerate(schemes)}
    axes_spec = [("param_bytes", "stored parameter bytes (log)"), ("latency_b1_us", "batch-1 latency, us (log)")]
    fig, axes = plt.subplots(len(networks), 2, figsize=(12, 4.6 * len(networks)), squeeze=False)
    for i, net in enumerate(networks):
        mine = [r for r in rows if r["network"] == net]
        for j, (key, label) in enumerate(axes_spec):
            ax = axes[i][j]
            front = pareto_front([(r[key], r["accuracy"]) for r in mine])
            xs = [p[0] for p in front]
            ys = [p[1] for p in front]
            ax.step(xs, ys, where="post", color="0.6", linewidth=1.2, zorder=1, label="Pareto front")
            for s in schemes:
                pts = [r for r in mine if r["scheme"] == s]
                if not pts:
                    continue
                ax.scatter([r[key] for r in pts], [r["accuracy"] for r in pts], color=colours[s], s=40,
                           zorder=2, label=s, edgecolors="black", linewidths=0.4)
            ax.set_xscale("log")
            place_labels(ax, [(r[key], r["accuracy"], r["setting"]) for r in mine])
            # Readable ticks: engineering notation (1.6M, 200k); evenly spaced ones when the
            # values span less than 4x, and more ticks per decade when they span less than 30x.
            values = [r[key] for r in mine]
            span = max(values) / min(values)
            if span < 4:
                ax.xaxis.set_major_locator(ticker.MaxNLocator(5))
            elif span < 30:
                ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0, 7.0)))
            else:
                ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(ticker.EngFormatter(unit="B" if key == "param_bytes" else "us", sep=""))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
            ax.set_xlabel(label)
            ax.set_ylabel("test accuracy (%)")
            ax.set_title(f"{net}: accuracy vs {'size' if key == 'param_bytes' else 'latency'}")
            ax.grid(True, which="both", alpha=0.3)
            if j == 0:
                ax.legend(fontsize=8, loc="best")
    fig.suptitle("slimnn compare_schemes on Fashion-MNIST (CPU only, single-thread latency)")
    fig.tight_layout()
    written = []
    for ext in ("svg", "png"):
        path = f"{out_base}.{ext}"
        fig.savefig(path, dpi=110)
        written.append(path)
    plt.close(fig)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description="Plot compare_schemes.csv (accuracy vs size and latency).")
    parser.add_argument("csv", help="the compare_schemes.csv that compare_schemes wrote")
    parser.add_argument("--out", help="output path without extension (default: beside the csv)")
    args = parser.parse_args(argv)
    try:
        rows = read_rows(args.csv)
    except (OSError, ValueError) as e:
        print(f"plot_compare_schemes: {e}", file=sys.stderr)
        return 1
    out = args.out or os.path.splitext(args.csv)[0]
    for path in plot(rows, out):
        print(f"plot_compare_schemes: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
