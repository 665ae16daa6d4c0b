"""Training on a file larger than we want in memory: peak resident memory and epoch time, on disk against in memory.

It writes a float32 ``.npy`` file of ``--gigabytes`` (default 1.25 GB: MNIST-sized rows, 784 features, values in
[0, 1] from a low-rank model so there is something to learn) into a temporary folder, then runs, each in its own
process (one after the other, so that they do not compete for the cores)::

    ppmodels train vae --data npy:BIG.npy --epochs 1          # memory-mapped, block-shuffled from disk
    ppmodels train vae --data npy:BIG.npy?lazy=0 --epochs 1   # the same data read into memory

and records each process's peak resident memory (``ru_maxrss`` from ``wait4``; the file is written by another child,
so that this process stays small: a child's ``ru_maxrss`` starts from its parent's), the epoch time the trainer measured
(``train_time_s``: the epoch with its validation ELBO) and the wall time of the whole command (opening the data,
the final ELBOs on every split). Targets (issue 17): peak memory on disk under 800 MB, epoch time at most 1.2x the
in-memory one. The file is deleted afterwards; results go to ``benchmarks/results/stream.json``.

The file is freshly written, so both runs read it from the page cache; the in-memory run reads it whole first.

``--source cube`` does the same for an image cube: a netCDF file (h5netcdf) with ``reflectance`` over
``(y, x, band)`` (``--bands`` bands, 1,000 pixels a line, chunks of a few lines), trained as ``cube:BIG.nc?lazy=1``
(pixels read a block of lines at a time, standardised per band from one streaming pass) against ``?lazy=0``.

Run::

    .venv/bin/python benchmarks/stream.py
    .venv/bin/python benchmarks/stream.py --gigabytes 0.2 --out /tmp/stream.json   # a quick try
    .venv/bin/python benchmarks/stream.py --source cube --bands 200 --out benchmarks/results/stream_cube.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TARGET_RSS_MB = 800
TARGET_RATIO = 1.2


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gigabytes", type=float, default=1.25, help="size of the float32 file to write (issue 17: at least 1.2)")
    p.add_argument("--source", choices=("npy", "cube"), default="npy", help="an .npy array, or a netCDF image cube")
    p.add_argument("--features", type=int, default=784, help="features per row (npy)")
    p.add_argument("--bands", type=int, default=200, help="bands per pixel (cube)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tmp", default=None, help="folder for the temporary file (default: the system's)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "stream.json"))
    p.add_argument("--write-file", default=None, help=argparse.SUPPRESS)  # internal: the child that writes the file
    p.add_argument("--rows", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def write_big(path: Path, rows: int, features: int, seed: int, chunk: int = 20_000) -> None:
    """Rows x = sigmoid(z W) with z of 10 dimensions, written chunk by chunk (never whole in this process's memory)."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(0, 1.5, (10, features)).astype(np.float32)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, features))
    for start in range(0, rows, chunk):
        z = rng.normal(size=(min(chunk, rows - start), 10)).astype(np.float32)
        out[start:start + len(z)] = 1 / (1 + np.exp(-(z @ weights)))
    out.flush()
    del out


CUBE_WIDTH = 1000  # pixels a line of the cube


def write_cube(path: Path, rows: int, bands: int, seed: int, lines: int = 20) -> None:
    """A netCDF cube of ``rows // CUBE_WIDTH`` lines: each pixel's spectrum sigmoid(z W) as in :func:`write_big`,
    written ``lines`` lines at a time through h5netcdf (never whole in memory), in chunks of a few lines."""
    import h5netcdf

    rng = np.random.default_rng(seed)
    weights = rng.normal(0, 1.5, (10, bands)).astype(np.float32)
    height = rows // CUBE_WIDTH
    chunk_lines = max(1, (4 << 20) // (4 * CUBE_WIDTH * bands))
    with h5netcdf.File(path, "w") as f:
        f.dimensions = {"y": height, "x": CUBE_WIDTH, "band": bands}
        cube = f.create_variable("reflectance", ("y", "x", "band"), dtype="f4", chunks=(chunk_lines, CUBE_WIDTH, bands))
        for start in range(0, height, lines):
            n = min(lines, height - start)
            z = rng.normal(size=(n * CUBE_WIDTH, 10)).astype(np.float32)
            cube[start:start + n] = (1 / (1 + np.exp(-(z @ weights)))).reshape(n, CUBE_WIDTH, bands)


def run_train(spec: str, run_dir: Path, epochs: int, seed: int) -> dict:
    """``ppmodels train vae`` in a child process: its peak RSS (wait4), wall time and the run's summary."""
    cmd = [str(ROOT / ".venv" / "bin" / "ppmodels"), "train", "vae", "--data", spec, "--epochs", str(epochs), "--seed", str(seed),
           "--out", str(run_dir), "--overwrite", "--sample-every", "0"]
    start = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({child.returncode}):\n{output[-3000:]}")
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"command": " ".join(["ppmodels", *cmd[1:]]), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "peak_rss_mb_reported_by_run": summary["peak_memory_mb"], "wall_s": round(wall, 2),
            "epoch_time_s": summary["train_time_s"], "train_elbo": summary["train_elbo"], "valid_elbo": summary["valid_elbo"]}


def main(argv=None) -> dict:
    args = parse_args(argv)
    cube = args.source == "cube"
    features = args.bands if cube else args.features
    if args.write_file:
        (write_cube if cube else write_big)(Path(args.write_file), args.rows, features, args.seed)
        return {}
    rows = int(args.gigabytes * 1e9 / (4 * features))
    if cube:
        rows -= rows % CUBE_WIDTH
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        big = Path(tmp) / ("BIG.nc" if cube else "BIG.npy")
        t0 = time.perf_counter()
        # written by a child: a child's ru_maxrss starts from its parent's peak (the high-water mark survives fork and
        # exec), so this process must never hold the file's pages itself
        subprocess.run([sys.executable, __file__, "--source", args.source, "--write-file", str(big), "--rows", str(rows),
                        "--features", str(args.features), "--bands", str(args.bands), "--seed", str(args.seed)], check=True)
        size = big.stat().st_size
        print(f"wrote {big} ({size / 1e9:.2f} GB, {rows} x {features}) in {time.perf_counter() - t0:.0f} s", flush=True)
        runs = {}
        specs = ((f"cube:{big}?lazy=1", f"cube:{big}?lazy=0") if cube else (f"npy:{big}", f"npy:{big}?lazy=0"))
        for name, spec in zip(("disk", "memory"), specs):
            runs[name] = run_train(spec, Path(tmp) / f"run_{name}", args.epochs, args.seed)
            print(f"{name:>6}: peak RSS {runs[name]['peak_rss_mb']:.0f} MB, epoch {runs[name]['epoch_time_s']:.1f} s, "
                  f"wall {runs[name]['wall_s']:.1f} s, valid ELBO {runs[name]['valid_elbo']:.2f}", flush=True)
    # imported only now: the children are measured, and a child's ru_maxrss starts from this process's peak
    from ppmodels.files import write_json
    from ppmodels.runs import versions

    ratio = runs["disk"]["epoch_time_s"] / runs["memory"]["epoch_time_s"]
    result = {
        "benchmark": "benchmarks/stream.py", "argv": sys.argv[1:], "source": args.source, "file_bytes": size, "rows": rows, "features": features,
        "epochs": args.epochs, "runs": runs,
        "summary": {"disk_peak_rss_mb": runs["disk"]["peak_rss_mb"], "memory_peak_rss_mb": runs["memory"]["peak_rss_mb"],
                    "epoch_time_ratio_disk_to_memory": round(ratio, 3),
                    "meets_rss_target": runs["disk"]["peak_rss_mb"] < TARGET_RSS_MB, "meets_time_target": ratio <= TARGET_RATIO,
                    "targets": f"disk peak RSS < {TARGET_RSS_MB} MB; epoch time <= {TARGET_RATIO}x in memory"},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "versions": versions(),
                    "load_average_at_end": list(os.getloadavg())},
    }
    print(f"epoch time on disk / in memory: {ratio:.2f}x (target <= {TARGET_RATIO}); disk peak RSS "
          f"{runs['disk']['peak_rss_mb']:.0f} MB (target < {TARGET_RSS_MB})")
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
