"""Time per training step of ppmodels' trainer against the same loss hand-written in torch, side by side.

For each model (``vae``; ``m2`` with y enumerated over 10 classes; ``m1m2`` in both of its stages) at the paper's
sizes (MNIST 784-dim inputs, 500-unit layers, 600-600 for the M1 of M1+M2, 100 labels) and each batch size, it
times, interleaved round by round so that a noisy shared machine slows every variant alike:

* ``ppmodels``: ``Trainer._step`` exactly as training runs it: Adam on ``TraceEnum_ELBO.differentiable_loss`` of the
  model's Pyro pair (``PPModel.loss``; M2 adds its labeled and classification pairs);
* ``oracle``: a hand-written torch loss with an exact sum over y on the same networks (``benchmarks/oracle.py``),
  zero_grad + backward + Adam;
* ``oracle_compiled``: the same loss through ``torch.compile`` (time-boxed; a failure is recorded, not fatal);
* ``ppmodels_bf16``: the trainer's step with ``TrainConfig(precision="bf16")`` (the networks under autocast to
  bfloat16, everything else float32), and the relative change of the step's loss against ``ppmodels`` on the same
  weights and batch (``--precisions fp32`` leaves it out).

It prints median step times, ratios to the oracle, the projected epoch time and peak resident memory, and writes
everything to ``benchmarks/results/speed.json``.

Run (one command; threads are fixed before torch is imported)::

    .venv/bin/python benchmarks/speed.py --threads 1 --compile-batch-sizes 200 --compile-timeout 300 --full-epoch
    .venv/bin/python benchmarks/speed.py --threads 1 --models m2 --batch-sizes 200 --no-compile   # quicker
    .venv/bin/python benchmarks/speed.py --threads 1 --batch-sizes 100 --no-compile --out benchmarks/results/speed_bf16.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MNIST_DIR = ROOT.parent / "shared" / "data" / "mnist"
MODELS = ("vae", "m2", "m1m2:m1", "m1m2:m2")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (OMP_NUM_THREADS is set to match)")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {', '.join(MODELS)}")
    p.add_argument("--batch-sizes", default="100,200", help="comma-separated unlabeled batch sizes")
    p.add_argument("--labels", type=int, default=100, help="labeled examples (M2, M1+M2)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per variant before timing")
    p.add_argument("--rounds", type=int, default=15, help="timed steps per variant (interleaved rounds)")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    p.add_argument("--precisions", default="fp32,bf16", help="trainer precisions to time: fp32 (ppmodels), bf16 (ppmodels_bf16)")
    p.add_argument("--compile-batch-sizes", default=None, help="batch sizes that get the torch.compile variant (default: all)")
    p.add_argument("--compile-timeout", type=int, default=240, help="seconds allowed for one torch.compile warm-up")
    p.add_argument("--full-epoch", action="store_true", help="also time one real epoch of m2 (batch 200) with the trainer")
    p.add_argument("--mnist-dir", default=str(MNIST_DIR), help="folder with the MNIST IDX files (random binary data if absent)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "speed.json"))
    return p.parse_args(argv)


ARGS = parse_args()
os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(ARGS.threads)

import torch  # noqa: E402  (after the thread settings)

torch.set_num_threads(ARGS.threads)
sys.path.insert(0, str(ROOT))

import pyro  # noqa: E402

import ppmodels  # noqa: E402

from benchmarks import oracle  # noqa: E402
from ppmodels.data import load_dataset, prepare_data  # noqa: E402
from ppmodels.data.sources import from_arrays  # noqa: E402
from ppmodels.models import M1M2, M2, VAE  # noqa: E402
from ppmodels.infer import TrainConfig, Trainer, fit  # noqa: E402
from ppmodels.nets import precision as compute_in  # noqa: E402


# ----- memory ----------------------------------------------------------------------------------------------
def reset_peak_rss() -> None:
    """Reset the kernel's high-water mark of this process (Linux); harmless elsewhere."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss_mb() -> float:
    try:
        return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024
    except (OSError, AttributeError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----- data and models -------------------------------------------------------------------------------------
def mnist_data(num_labels: int, mnist_dir: Path):
    """MNIST (50k train) from ../shared/data/mnist, else random binary images of that shape (stated in the JSON)."""
    if (mnist_dir / "train-images-idx3-ubyte.gz").is_file():
        return prepare_data(load_dataset("mnist", data_dir=str(mnist_dir)), num_labels=num_labels), f"MNIST from {mnist_dir}"
    g = torch.Generator().manual_seed(0)
    x = torch.bernoulli(torch.full((60000, 1, 28, 28), 0.13), generator=g).numpy()
    y = torch.randint(0, 10, (60000,), generator=g).numpy()
    return prepare_data(from_arrays("random-binary", x, y), num_labels=num_labels), "random binary 28x28 (MNIST not found)"


def build(name: str, data):
    """A fresh model at the paper's sizes, ready to train (M1+M2 put in the requested stage)."""
    torch.manual_seed(0)
    if name == "vae":
        return VAE(x_shape=[1, 28, 28], z_dim=50, hidden=[500, 500])
    if name == "m2":
        model = M2(x_shape=[1, 28, 28], z_dim=50, hidden=[500])
    else:
        model = M1M2(x_shape=[1, 28, 28], z1_dim=50, z2_dim=50, m1_hidden=[600, 600], m2_hidden=[500], m1_epochs=1)
        model.start_stage(name.split(":")[1], data)
    return model


def oracle_loss(name: str):
    if name in ("vae", "m1m2:m1"):
        return (lambda m, b: oracle.vae_loss(m, b)) if name == "vae" else (lambda m, b: oracle.vae_loss(m.m1, b))
    return (lambda m, b: oracle.m2_loss(m, b)) if name == "m2" else (lambda m, b: oracle.m2_loss(m.m2, b))


# ----- the variants ----------------------------------------------------------------------------------------
class Variant:
    def __init__(self, label: str, model, step):
        self.label, self.model, self.step, self.times, self.error = label, model, step, [], None


def trainer_step(model, lr: float = 1e-3, precision: str = "fp32"):
    trainer = Trainer(TrainConfig(lr=lr, precision=precision))
    trainer.model, trainer.optimizer = model, torch.optim.Adam(model.parameters(), lr=lr)
    return trainer._step


def hand_step(model, loss_fn, lr: float = 1e-3):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def step(batch):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model, batch)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


class CompileTimeout(Exception):
    pass


def timed_first_call(variant: Variant, batch, timeout: int) -> float | None:
    """Run the first (compiling) step under an alarm; on failure or timeout record why and return None."""
    def alarm(*_):
        raise CompileTimeout(f"compile took more than {timeout} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(timeout)
    start = time.perf_counter()
    try:
        variant.step(batch)
        return time.perf_counter() - start
    except Exception as exc:  # a compile failure must not end the benchmark
        variant.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        return None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def trainer_label(precision: str) -> str:
    """The variant name of the trainer's step in ``precision``: ``ppmodels``, ``ppmodels_bf16``."""
    return "ppmodels" if precision == "fp32" else f"ppmodels_{precision}"


def make_variants(name: str, data, compile_: bool, precisions: list[str]) -> list[Variant]:
    variants = []
    for precision in precisions:
        model = build(name, data)
        variants.append(Variant(trainer_label(precision), model, trainer_step(model, precision=precision)))
    model = build(name, data)
    variants.append(Variant("oracle", model, hand_step(model, oracle_loss(name))))
    if compile_:
        model = build(name, data)
        variants.append(Variant("oracle_compiled", model, hand_step(model, torch.compile(oracle_loss(name)))))
    return variants


def batches_for(name: str, data, batch_size: int, count: int):
    """The first ``count`` training batches of an epoch (shared by every variant) and the number of steps per epoch."""
    model = build(name, data)
    gen = torch.Generator().manual_seed(0)
    batches, steps = [], 0
    for batch in model.training_batches(data.train, batch_size, gen):
        if len(batches) < count and len(batch.get("x", batch.get("x_labeled"))) == batch_size:
            batches.append(batch)
        steps += 1
    return batches, steps


def bench(name: str, batch_size: int, data, args) -> dict:
    n_batches = args.warmup + args.rounds
    batches, steps_per_epoch = batches_for(name, data, batch_size, n_batches)
    compile_sizes = args.batch_sizes if args.compile_batch_sizes is None else args.compile_batch_sizes
    precisions = args.precisions.split(",")
    variants = make_variants(name, data, not args.no_compile and str(batch_size) in compile_sizes.split(","), precisions)
    loss_changes = {p: loss_change(name, data, batches[0], p) for p in precisions if p != "fp32"}
    compile_s = None
    for v in variants:
        v.model.train()
        if v.label == "oracle_compiled":
            compile_s = timed_first_call(v, batches[0], args.compile_timeout)
        for b in batches[: args.warmup]:
            if v.error is None:
                v.step(b)
    live = [v for v in variants if v.error is None]
    for r in range(args.rounds):  # interleaved, rotating the order each round
        for v in live[r % len(live):] + live[: r % len(live)]:
            start = time.perf_counter()
            v.step(batches[args.warmup + r])
            v.times.append(time.perf_counter() - start)
    memory = {}
    for v in live:
        reset_peak_rss()
        for b in batches[:2]:
            v.step(b)
        memory[v.label] = round(peak_rss_mb(), 1)
    oracle_med = statistics.median(next(v for v in live if v.label == "oracle").times)
    result = {"model": name, "batch_size": batch_size, "steps_per_epoch": steps_per_epoch, "compile_first_step_s": compile_s,
              "relative_loss_change": loss_changes, "variants": {}}
    for v in variants:
        if v.error is not None:
            result["variants"][v.label] = {"error": v.error}
            continue
        med = statistics.median(v.times)
        result["variants"][v.label] = {
            "median_step_ms": round(1e3 * med, 2), "min_step_ms": round(1e3 * min(v.times), 2),
            "ratio_to_oracle": round(med / oracle_med, 3), "epoch_s": round(med * steps_per_epoch, 1),
            "peak_rss_mb": memory[v.label], "steps_timed": len(v.times)}
    return result


def loss_change(name: str, data, batch, precision: str) -> float:
    """``|loss(precision) - loss(fp32)| / |loss(fp32)|`` on fresh weights and one batch (the same noise for both)."""
    model = build(name, data)
    losses = []
    for p in ("fp32", precision):
        pyro.set_rng_seed(1)
        with compute_in(p):  # differentiable_loss refuses to run under no_grad
            losses.append(model.loss(batch).item())
    return round(abs(losses[1] - losses[0]) / abs(losses[0]), 6)


def full_epoch(data, batch_size: int = 200) -> dict:
    """One real epoch of M2 through ``Trainer.fit`` (validation ELBO included) and the process's peak memory."""
    model = build("m2", data)
    reset_peak_rss()
    start = time.perf_counter()
    fit(model, data, TrainConfig(epochs=1, batch_size=batch_size, patience=None))
    return {"model": "m2", "batch_size": batch_size, "epoch_s": round(time.perf_counter() - start, 1),
            "num_unlabeled": int((~data.train.labeled).sum()), "peak_rss_mb": round(peak_rss_mb(), 1)}


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True)
        return out.stdout.strip()
    except OSError:
        return "unknown"


def print_result(r: dict) -> None:
    print(f"\n{r['model']}  batch {r['batch_size']}  ({r['steps_per_epoch']} steps/epoch)")
    print(f"  {'variant':<16}{'median ms':>11}{'ratio':>8}{'epoch s':>9}{'peak RSS MB':>13}")
    for label, v in r["variants"].items():
        if "error" in v:
            print(f"  {label:<16}  failed: {v['error']}")
        else:
            print(f"  {label:<16}{v['median_step_ms']:>11.1f}{v['ratio_to_oracle']:>8.2f}{v['epoch_s']:>9.1f}{v['peak_rss_mb']:>13.0f}")
    for precision, change in r.get("relative_loss_change", {}).items():
        fp32, other = r["variants"].get(trainer_label("fp32"), {}), r["variants"].get(trainer_label(precision), {})
        if "median_step_ms" in fp32 and "median_step_ms" in other:
            print(f"  {precision}: {fp32['median_step_ms'] / other['median_step_ms']:.2f}x faster than fp32; the step's loss changes by {change:.1e} (relative)")
    if r.get("compile_first_step_s") is not None:
        print(f"  (torch.compile first step: {r['compile_first_step_s']:.1f} s)")


def main() -> None:
    args = ARGS
    pyro.set_rng_seed(0)
    data, source = mnist_data(args.labels, Path(args.mnist_dir))
    print(f"ppmodels from {Path(ppmodels.__file__).parent} ({git_commit()})")
    print(f"data: {source}; {len(data.train)} training images, {data.train.num_labeled} labeled; torch {torch.__version__}, "
          f"pyro {pyro.__version__}, {args.threads} thread(s), {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}", flush=True)
    results = []
    for name in args.models.split(","):
        for bs in (int(b) for b in args.batch_sizes.split(",")):
            results.append(bench(name, bs, data, args))
            print_result(results[-1])
            sys.stdout.flush()
    epoch = full_epoch(data) if args.full_epoch else None
    if epoch:
        print(f"\none real M2 epoch (batch 200, {epoch['num_unlabeled']} unlabeled images, with validation): "
              f"{epoch['epoch_s']:.1f} s, peak RSS {epoch['peak_rss_mb']:.0f} MB")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "command": " ".join([Path(sys.executable).name, *sys.argv]), "data": source, "threads": args.threads,
        "torch": torch.__version__, "pyro": pyro.__version__, "python": platform.python_version(), "cpus": os.cpu_count(),
        "device": "cpu", "ppmodels": str(Path(ppmodels.__file__).parent), "commit": git_commit(),
        "load_average_at_start": os.getloadavg()[0], "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": results, "full_epoch": epoch}, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
