"""Plot the error curves of ``benchmarks/semisupervised.py`` results: test error against training time, one line per run, the
baselines of the same split as horizontal lines. Writes a PNG (default ``docs/images/ssl_curves.png``).

    python benchmarks/ssl_curves.py benchmarks/results/ssl_mnist_100_m2.json benchmarks/results/ssl_mnist_100_m1m2.json
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def tag(row: dict, threads: int = 1) -> str:
    """What sets a run apart from the default one-thread float32 runs: `` (bf16)`` for networks trained in bfloat16
    (``--precision bf16``), `` (2 threads)`` for a run given more than one thread; else nothing."""
    precision = row.get("train", {}).get("precision", "fp32")
    marks = ([] if precision == "fp32" else [precision]) + ([] if threads == 1 else [f"{threads} threads"])
    return f" ({', '.join(marks)})" if marks else ""


FAMILIES = {"m2": 0, "m1m2": 2, "adgm": 1, "m1": 3}  # a hue of tab20c per model, so a model's runs read as one group
SHADES = 3  # of each hue's four shades in tab20c, the three dark enough to read on white


def curve_style(row: dict, shades: dict) -> dict:
    """A model's runs share a hue, each run the next shade of it; runs in bfloat16 are dashed, so more curves than
    one colour cycle holds stay apart."""
    precision = row.get("train", {}).get("precision", "fp32")
    family = FAMILIES.get(row["model"], 4)
    shade = shades.setdefault((row["model"], precision), 0)
    shades[(row["model"], precision)] = shade + 1
    return {"color": plt.cm.tab20c.colors[4 * family + shade % SHADES], "linestyle": "-" if precision == "fp32" else "--"}


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="+", help="JSON files written by benchmarks/semisupervised.py")
    p.add_argument("--out", default=str(ROOT / "docs" / "images" / "ssl_curves.png"))
    args = p.parse_args(argv)
    results = [json.loads(Path(path).read_text()) for path in args.results]
    rows = [(row, result.get("threads", 1)) for result in results for row in result["rows"]]
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=110)
    baselines, shades = {}, {}
    for row, threads in rows:
        if row.get("curve"):
            minutes = [pt["elapsed_s"] / 60 for pt in row["curve"]]
            ax.plot(minutes, [pt["test_error_pct"] for pt in row["curve"]], marker=".", label=f"{row['model']} seed {row['seed']}{tag(row, threads)}",
                    **curve_style(row, shades))
        else:
            baselines[f"{row['model']} seed {row['seed']}"] = row["test_error_pct"]  # each seed's own labels
    for (name, error), style in zip(sorted(baselines.items()), itertools.cycle(("--", ":", "-."))):
        ax.axhline(error, color="black", alpha=0.6, linestyle=style, label=f"{name} ({error:.1f}%)")
    first = rows[0][0] if rows else {"dataset": "", "num_labels": ""}
    ax.set(xlabel="training time (minutes; one thread unless marked)", ylabel="test error (%)", ylim=(0, None),
           title=f"{first['dataset']}-{first['num_labels']}: test error while training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the plot: the curves fill it
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
