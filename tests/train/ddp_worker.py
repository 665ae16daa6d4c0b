"""One rank of the two-process tests in test_distributed.py (not a test module: the test starts two of these).

``python ddp_worker.py OUT CASE...`` joins the gloo group the environment describes (RANK, WORLD_SIZE, MASTER_ADDR,
MASTER_PORT, as torchrun sets them), fits each case with :func:`ppmodels.fit` and writes ``OUT/CASE_rankR.pt``: the
final weights of this rank and, from rank 0, the epoch records.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pyro
import torch

from ppmodels.data import load_dataset, prepare_data
from ppmodels.infer import TrainConfig, fit
from ppmodels.infer.distributed import close, init_from_env, world
from ppmodels.models import get_model_class

# name: (model, options, epochs, labels); the batch size is the global one, given on the command line
CASES = {
    "ppca": ("ppca", {"z_dim": 4, "seed": 0, "optimizer": "adam"}, 3, None),  # EM runs in one process
    "gmm": ("gmm", {"num_components": 5, "seed": 0}, 3, None),
    "m2": ("m2", {"z_dim": 4, "hidden": [32], "seed": 0}, 1, 50),
    "m1m2": ("m1m2", {"z1_dim": 6, "z2_dim": 4, "m1_hidden": [32], "m2_hidden": [32], "m1_epochs": 1, "seed": 0}, 2, 150),  # 15 labels a class: 3 of each held out (MIN_SELECTION_PER_CLASS), so valid_accuracy is recorded
}


class Records:
    def __init__(self):
        self.records = []

    def on_epoch_end(self, trainer, record):
        self.records.append(dict(record))


def run_case(name: str, batch_size: int, lr: float = 0.01):
    model_name, options, epochs, labels = CASES[name]
    data = prepare_data(load_dataset("digits"), num_labels=labels, seed=0)
    cls = get_model_class(model_name)
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    model = cls(cls.config_from_data(data.dataset, **options))
    records = Records()
    fit(model, data, TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, patience=None, seed=0), callbacks=[records])
    return model, records.records


def resume_case(out: Path, batch_size: int) -> dict:
    """M2 (Monte Carlo noise on every rank) for 3 epochs in one go, and for 2 epochs then resumed to 3 from its
    checkpoint: each rank's final weights and the records of both."""
    results = {}
    for how in ("straight", "resumed"):
        run_dir = out / f"m2_{how}"
        for epochs, resume in (((3, False),) if how == "straight" else ((2, False), (3, True))):
            _, options, _, labels = CASES["m2"]
            data = prepare_data(load_dataset("digits"), num_labels=labels, seed=0)
            pyro.clear_param_store()
            model = get_model_class("m2")(get_model_class("m2").config_from_data(data.dataset, **options))
            records = Records()
            fit(model, data, TrainConfig(epochs=epochs, batch_size=batch_size, lr=0.01, patience=None, seed=0),
                callbacks=[records], run_dir=run_dir, resume=resume)
        results[how] = {"weights": model.state_dict(), "records": records.records}
    return results


def ddp_alive() -> int:
    """DDP modules still alive (found without a garbage collection): one that outlives training is destroyed
    whenever the collector gets to it, possibly after the process group or during interpreter shutdown."""
    return sum(isinstance(o, torch.nn.parallel.DistributedDataParallel) for o in gc.get_objects())


def main(out: str, batch_size: int, names: list[str]) -> None:
    init_from_env("cpu")
    rank, _ = world()
    try:
        for name in names:
            if name == "m2_resume":
                result = resume_case(Path(out), batch_size)
            else:
                model, records = run_case(name, batch_size)
                result = {"weights": model.state_dict(), "records": records, "ddp_alive": ddp_alive()}
            torch.save(result, Path(out) / f"{name}_rank{rank}.pt")
    finally:
        close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
