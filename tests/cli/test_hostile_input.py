"""Every hostile input of issues 6 and 14, through the CLI and the Python API.

The CLI must exit with code 2 and print exactly one line on stderr (``error: PROBLEM; FIX``), never a traceback;
the API must raise a :class:`~ppmodels.errors.PPModelsError` that is also a ``ValueError`` or ``FileNotFoundError``
(``RuntimeError`` for training that diverges),
with the same message. A request that fails must not leave a run folder behind, nor change the file it would have
replaced. ``ACCEPTED`` lists the requests that once failed but are valid: they must succeed.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from typer.testing import CliRunner

import ppmodels as api
from ppmodels.data.mnist import FILES as MNIST_FILES
from ppmodels.errors import PPModelsError
from ppmodels.infer import TrainConfig
from ppmodels_cli.main import app

runner = CliRunner()
TINY = {"hidden": [8], "z_dim": 2}
FAST = ["--epochs", "1", "--batch-size", "256", "--hidden", "8", "--z-dim", "2", "--quiet", "--sample-every", "0"]


@dataclass
class Case:
    """One hostile request: its CLI arguments, the same request through the API, and what the message must say."""

    cli: list[str] | None  # None: an API-only case
    call: Callable[[], Any] | None  # None: a CLI-only case
    message: str
    builtin: type = ValueError
    out: Path | None = None  # a folder that must not exist afterwards
    intact: Path | None = None  # a file whose bytes the request must not change


def train_case(tmp: Path, name: str, model: str, data: str = "digits", message: str = "", builtin: type = ValueError, *,
               out: Path | None = None, labels: int | None = None, settings: dict | None = None, resume: bool = False,
               overwrite: bool = False, data_dir: Path | None = None, keep_out: bool = False, lr: float = 1e-3,
               skip_nonfinite: bool = False, intact: Path | None = None) -> Case:
    """``ppmodels train`` and :func:`ppmodels.commands.train.train` with the same options."""
    out = out or tmp / "runs" / name
    if resume:  # everything else comes from the run's config.json
        cli = ["train", model, "--out", str(out), "--resume", "--quiet"]
    else:
        cli = ["train", model, "--data", data, "--out", str(out), *FAST, "--lr", str(lr)] + ["--overwrite"] * overwrite
    cli += ["--labels", str(labels)] if labels is not None else []
    cli += ["--data-dir", str(data_dir)] if data_dir is not None else []
    cli += ["--skip-nonfinite"] * skip_nonfinite
    options = dict(TINY)
    for key, value in (settings or {}).items():
        cli += ["--likelihood", value] if key == "likelihood" else ["--set", f"{key}={json.dumps(value)}"]
        options[key] = value

    def call():
        return api.train(model, data, out, data_dir=None if data_dir is None else str(data_dir), labels=labels,
                         train_config=TrainConfig(epochs=1, batch_size=256, lr=lr, skip_nonfinite=skip_nonfinite), model_options=options, resume=resume,
                         overwrite=overwrite, progress=False, sample_every=0)

    return Case(cli, call, message, builtin, None if keep_out or resume or overwrite else out, intact)


def encode_case(run: Path, data: str, out: Path, message: str, builtin: type = ValueError, intact: Path | None = None) -> Case:
    return Case(["encode", str(run), "--data", data, "--out", str(out)], lambda: api.encode(run, data, out), message, builtin, intact=intact)


def evaluate_case(run: Path, data: str | None, message: str, out: Path | None = None, intact: Path | None = None) -> Case:
    from ppmodels import evaluate

    cli = ["evaluate", str(run), "--iw-samples", "0"] + ["--data", data] * (data is not None) + ["--out", str(out)] * (out is not None)
    return Case(cli, lambda: evaluate(run, data, iw_samples=0, out=out), message, intact=intact)


def diagnose_case(run: Path, data: str, out: Path, message: str) -> Case:
    options = {"num_data": 5, "particles": 21, "report": False}
    cli = ["diagnose", str(run), "--data", data, "--out", str(out), "--num-data", "5", "--particles", "21", "--no-report"]
    return Case(cli, lambda: api.diagnose(run, data, out, **options), message)


def unwritable_folder(tmp: Path) -> Path:
    """A folder nobody may write into: read-only for a normal user; for root (who may write anywhere) one in /proc."""
    if os.geteuid() == 0:
        return Path("/proc/ppmodels-hostile")
    folder = tmp / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


def copy_run(source: Path, target: Path, replace: dict[str, Any] | None = None) -> Path:
    """A copy of a run folder with some of its files replaced by bytes, or by the same file of another run."""
    shutil.copytree(source, target)
    for name, content in (replace or {}).items():
        (target / name).write_bytes(content.read_bytes() if isinstance(content, Path) else content)
    return target


def digits_rows() -> tuple[np.ndarray, np.ndarray]:
    """The digits images as flat (N, 64) rows in [0, 1], the way a user saves them."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.data / 16.0).astype(np.float32)[:200], bunch.target[:200]


def write_files(tmp: Path) -> dict[str, str]:
    """The hostile data files; returns data specs by name."""
    rng = np.random.default_rng(0)
    x = rng.random((60, 5)).astype(np.float32)
    y = np.arange(60) % 3
    d = tmp / "data"
    d.mkdir()
    with_nan, with_inf = x.copy(), x.copy()
    with_nan[3, 2], with_inf[7, 1] = np.nan, np.inf
    arrays = {
        "good": {"x": x, "y": y}, "nan": {"x": with_nan}, "inf": {"x": with_inf}, "gauss": {"x": rng.normal(size=(60, 5))},
        "gauss64": {"x": rng.normal(size=(60, 64))},
        "unlabeled": {"x": x}, "text_numbers": {"x": x, "y": np.array([str(v) for v in np.arange(60) % 12])},
        "fractions": {"x": x, "y": y + 0.5}, "negative": {"x": x, "y": y - 2}, "short_labels": {"x": x, "y": y[:50]},
        "no_rows": {"x": np.zeros((0, 5))}, "other_key": {"pixels": x}, "one_class": {"x": x, "y": np.zeros(60, int)},
        "sparse_labels": {"x": x, "y": y * 1000}, "row_ids": {"x": x, "y": np.arange(60)},
        "digits12": {"x": np.tile(x[:, :1], (1, 64)), "y": np.arange(60) % 12},
        "one_based": {"x": x, "y": y + 1}, "gaps": {"x": x, "y": np.where(y == 1, 3, y)}, "rank5": {"x": x.reshape(60, 5, 1, 1, 1)},
        "flat_digits": {"x": digits_rows()[0], "y": digits_rows()[1]},
    }
    for name, content in arrays.items():
        np.savez(d / f"{name}.npz", **content)
    np.savez(d / "objects.npz", x=x, y=np.array([{"label": int(v)} for v in y], dtype=object))
    whole = (d / "good.npz").read_bytes()
    (d / "truncated.npz").write_bytes(whole[: len(whole) // 2])
    (d / "empty.npz").write_bytes(b"")
    np.save(d / "good.npy", x)
    (d / "truncated.npy").write_bytes((d / "good.npy").read_bytes()[:100])
    good_npy = (d / "good.npy").read_bytes()
    (d / "bad_header.npy").write_bytes(good_npy[:10] + b"garbage!!" + good_npy[19:])  # the header dict cut open
    (d / "npz_named.npy").write_bytes((d / "good.npz").read_bytes())
    (d / "blank_lines.csv").write_text("\n\n\n")
    csv = "a,b,label\n" + "".join(f"{i % 7 / 7:.3f},{i % 5 / 5:.3f},{i % 3}\n" for i in range(60))
    (d / "good.csv").write_text(csv)
    (d / "truncated.csv").write_text(csv[: csv.index(",", len(csv) // 2) + 1])  # cut mid-row
    (d / "short_row.csv").write_text(csv.replace("0.143,0.200,1\n", "0.143\n", 1))
    (d / "text.csv").write_text("a,b\n1,x\n2,3\n4,5\n")
    (d / "semicolons.csv").write_text("a;b\n1;2\n3;4\n5;6\n")
    (d / "header.csv").write_text("a,b\n")
    (d / "empty.csv").write_text("")
    import h5py

    with h5py.File(d / "good.h5", "w") as f:
        f["x"] = x
    (d / "truncated.h5").write_bytes((d / "good.h5").read_bytes()[:1000])
    specs = {name: f"npz:{d / name}.npz" for name in [*arrays, "objects", "truncated", "empty"]}
    specs.update({f"{n}_npy": f"npy:{d / n}.npy" for n in ("good", "truncated", "bad_header", "npz_named")})
    specs.update({f"{n}_csv": f"csv:{d / n}.csv" for n in ("good", "truncated", "short_row", "text", "semicolons", "header", "empty", "blank_lines")})
    specs.update(truncated_h5=f"h5:{d / 'truncated'}.h5", missing_npz=f"npz:{d / 'missing'}.npz",
                 missing_csv=f"csv:{d / 'missing'}.csv", missing_label="csv:" + str(d / "good.csv") + "?label=kind")
    return specs


def write_mnist(tmp: Path, mnist_dir: str | None) -> dict[str, Path]:
    """MNIST folders with one file missing, cut in half, replaced by junk, or a valid gzip of too few bytes."""
    folders = {}
    for kind in ("missing", "truncated", "junk", "short"):
        folder = tmp / f"mnist_{kind}"
        folder.mkdir()
        for name in MNIST_FILES:
            if name == "train-images-idx3-ubyte.gz":
                if kind == "missing":
                    continue
                if kind == "junk":
                    (folder / name).write_bytes(b"this is not gzip" * 100)
                    continue
                header = (0x0803).to_bytes(4, "big") + (60000).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
                if kind == "short":
                    with gzip.open(folder / name, "wb") as f:
                        f.write(header + bytes(784 * 5))
                    continue
                # the real file cut in half where it is at hand, else a gzip stream of random pixels cut in half
                whole = (Path(mnist_dir) / name).read_bytes() if mnist_dir else gzip.compress(header + os.urandom(784 * 50))
                (folder / name).write_bytes(whole[: len(whole) // 2])
            else:
                (folder / name).symlink_to(Path(mnist_dir) / name) if mnist_dir else (folder / name).write_bytes(b"")
        folders[kind] = folder
    return folders


def trained_runs(tmp: Path) -> dict[str, Path]:
    """Tiny finished runs to damage: a VAE, an M1 with the same networks, and a VAE with another latent size."""
    runs = {}
    for name, model, options in (("vae", "vae", TINY), ("m1", "m1", TINY), ("vae_z3", "vae", {**TINY, "z_dim": 3})):
        runs[name] = tmp / "trained" / name
        api.train(model, "digits", runs[name], train_config=TrainConfig(epochs=1, batch_size=256), model_options=options,
                  progress=False, sample_every=0)
    return runs


def build_cases(tmp: Path, mnist_dir: str | None) -> dict[str, Case]:
    s, mnist, runs = write_files(tmp), write_mnist(tmp, mnist_dir), trained_runs(tmp)
    vae, damaged = runs["vae"], tmp / "damaged"
    last, weights = "checkpoints/last.pt", "model.safetensors"
    evil = tmp / "evil.pt"
    write_pickle_bomb(evil, tmp / "pwned")
    no_train = copy_run(vae, damaged / "no_train_key")
    config = json.loads((no_train / "config.json").read_text())
    del config["train"]
    (no_train / "config.json").write_text(json.dumps(config))
    extra_field = copy_run(vae, damaged / "extra_field")
    config = json.loads((extra_field / "config.json").read_text())
    config["model_config"]["dropout"] = 0.5
    (extra_field / "config.json").write_text(json.dumps(config))
    unknown_model = copy_run(vae, damaged / "unknown_model")
    (unknown_model / "config.json").write_text(json.dumps({**config, "model": "transformer"}))
    not_run = tmp / "thesis"
    not_run.mkdir()
    (not_run / "thesis.tex").write_text("precious")
    finished_no_last = copy_run(vae, damaged / "finished_no_last")
    (finished_no_last / last).unlink()
    never_checkpointed = copy_run(finished_no_last, damaged / "never_checkpointed")
    (never_checkpointed / weights).unlink()
    # issue 14: outputs that would replace someone's work
    kept = copy_run(vae, damaged / "kept")  # a run whose files no request may change
    (kept / "notes.npy").write_bytes(b"a file of the user's inside the run folder")
    (kept / "diagnostics").mkdir()
    (kept / "diagnostics" / "idata.nc").write_bytes(b"what diagnose wrote")
    precious = {suffix: tmp / f"precious{suffix}" for suffix in (".json", ".npz", ".tex")}
    for path in precious.values():
        path.write_text("the user's own file")
    (tmp / "a_folder.npz").mkdir()
    read_only = unwritable_folder(tmp)
    aside = copy_run(vae, damaged / "aside")
    copy_run(vae, damaged / "aside.before-overwrite")
    to_replace = copy_run(vae, damaged / "to_replace")
    junk = np.random.default_rng(1).bytes(4000)
    z = tmp / "z.npz"

    def t(name, model, data="digits", message="", builtin=ValueError, **kw):
        return train_case(tmp, name, model, data, message, builtin, **kw)

    def damaged_encode(name, replace, message):
        return encode_case(copy_run(vae, damaged / name, replace), "digits", z, message)

    def damaged_resume(name, replace, message):
        return t(name, "vae", message=message, out=copy_run(vae, damaged / name, replace), resume=True)

    return {
        # data values
        "nan in data": t("nan", "vae", s["nan"], "NaN or infinite"),
        "inf in data": t("inf", "vae", s["inf"], "NaN or infinite"),
        "x outside [0,1] with bernoulli": t("bern", "vae", s["gauss"], "Bernoulli likelihood needs [0, 1]", settings={"likelihood": "bernoulli"}),
        "no examples": t("no_rows", "vae", s["no_rows"], "only 0 examples"),
        "wrong feature count for a trained model": encode_case(vae, s["good"], z, "the model was trained on shape (1, 8, 8)"),
        "nan in data to encode": encode_case(vae, s["nan"], z, "NaN or infinite"),
        "x outside [0,1] to encode": encode_case(vae, s["gauss64"], z, "binomial:16 likelihood needs [0, 1]"),
        "wrong feature count to evaluate": evaluate_case(runs["m1"], s["good"], "the model was trained on shape (1, 8, 8)"),
        # labels
        "labels beyond a trained model's classes": evaluate_case(runs["m1"], s["digits12"], "labels go up to 11 but model 'm1' has num_classes=10"),
        "labels beyond num_classes": t("num_classes", "m1", s["good"], "num_classes=2", settings={"num_classes": 2}),
        "labels are numbers stored as text": t("text_numbers", "m1", s["text_numbers"], "numbers stored as text"),
        "labels are pickled objects": t("objects", "m1", s["objects"], "holds Python objects"),
        "labels far beyond the classes used": t("sparse_labels", "m1", s["sparse_labels"], "use 3 distinct values but run up to 2000"),
        "labels of one class only": t("one_class", "m1", s["one_class"], "num_classes must be at least 2"),
        "labels with fractions": t("fractions", "m1", s["fractions"], "not whole numbers"),
        "negative labels": t("negative", "m1", s["negative"], "outside the classes"),
        "fewer labels than examples": t("short_labels", "m1", s["short_labels"], "one label per example"),
        "more labels than exist": t("too_many", "m1", labels=100000, message="more than the"),
        "fewer labels than classes": t("too_few", "m1", labels=3, message="fewer than one per class"),
        "labels asked of unlabeled data": t("unlabeled", "vae", s["unlabeled"], "the data has no labels", labels=10),
        "classifier on unlabeled data": t("m1_unlabeled", "m1", s["unlabeled"], "needs labels"),
        # training that diverges (the run folder stays, with no checkpoint: overwrite lets the API call reuse it)
        # training that diverges before its first checkpoint leaves no folder, so the retry needs no --overwrite
        "learning rate that diverges": t("diverges", "vae", message="the loss became non-finite at epoch 1, step 2", builtin=RuntimeError, lr=1e30),
        "learning rate that diverges, skipping bad batches": t("diverges_skip", "vae", message="the validation ELBO became non-finite after epoch 1", builtin=RuntimeError,
                                                             lr=1e30, skip_nonfinite=True),
        "--overwrite with a learning rate that diverges keeps the old run": t("replace_diverges", "vae", message="no checkpoint was written yet", builtin=RuntimeError,
                                                                              lr=1e30, out=to_replace, overwrite=True, intact=to_replace / weights),
        "--overwrite while an interrupted one's set-aside run exists": t("aside", "vae", message="holds the run an interrupted --overwrite of an older ppmodels set aside",
                                                                      out=aside, overwrite=True, intact=aside / weights),
        # files
        "empty npz file": t("empty_npz", "vae", s["empty"], "is empty"),
        "empty csv file": t("empty_csv", "vae", s["empty_csv"], "is empty"),
        "csv with a header only": t("header_csv", "vae", s["header_csv"], "no rows"),
        "csv with text in a numeric column": t("text_csv", "vae", s["text_csv"], "text in numeric column(s) b"),
        "csv separated by semicolons": t("semicolons", "vae", s["semicolons_csv"], "looks separated by semicolons"),
        "csv label column missing": t("missing_label", "vae", s["missing_label"], "no column 'kind'"),
        "npz without the x array": t("other_key", "vae", s["other_key"], "has no array 'x'"),
        "missing npz": t("missing_npz", "vae", s["missing_npz"], "does not exist", FileNotFoundError),
        "missing csv": t("missing_csv", "vae", s["missing_csv"], "does not exist", FileNotFoundError),
        "missing mnist file": t("mnist_missing", "vae", "mnist", "not found in", FileNotFoundError, data_dir=mnist["missing"]),
        "truncated npz": t("truncated_npz", "vae", s["truncated"], "truncated or corrupt"),
        "truncated npy": t("truncated_npy", "vae", s["truncated_npy"], "truncated or corrupt"),
        # issue 32: tracebacks once
        "npy with a damaged header": t("bad_header_npy", "vae", s["bad_header_npy"], "is not a readable .npy file"),
        "npz archive named .npy": t("npz_named_npy", "vae", s["npz_named_npy"], "is an .npz archive, not an .npy array; open it as npz:"),
        "csv of blank lines": t("blank_lines_csv", "vae", s["blank_lines_csv"], "has no header row"),
        "truncated csv": t("truncated_csv", "vae", s["truncated_csv"], "truncated"),
        "csv row with too few columns": t("short_row_csv", "vae", s["short_row_csv"], "wrong number of columns (Line #3"),
        "truncated h5": t("truncated_h5", "vae", s["truncated_h5"], "not a readable HDF5 file"),
        "truncated mnist gzip": t("mnist_truncated", "vae", "mnist", "not a readable gzip IDX file", data_dir=mnist["truncated"]),
        "mnist file that is not gzip": t("mnist_junk", "vae", "mnist", "not a readable gzip IDX file", data_dir=mnist["junk"]),
        "mnist IDX shorter than its header says": t("mnist_short", "vae", "mnist", "is truncated", data_dir=mnist["short"]),
        "unknown data spec": t("imagenet", "vae", "imagenet", "unknown data spec"),
        "unknown model": t("unknown", "transformer", message="unknown model"),
        # weights (model.safetensors), read by encode/sample/load
        "weights truncated": damaged_encode("w_truncated", {weights: (vae / weights).read_bytes()[:60]}, "truncated or corrupt"),
        "weights corrupt": damaged_encode("w_corrupt", {weights: junk}, "truncated or corrupt"),
        "weights that are a pickle": damaged_encode("w_pickle", {weights: evil}, "truncated or corrupt"),
        "weights from another model": damaged_encode("w_m1", {weights: runs["m1"] / weights}, "holds weights of model 'm1'"),
        "weights from another config": damaged_encode("w_z3", {weights: runs["vae_z3"] / weights}, "does not fit model 'vae'"),
        "config.json corrupt": damaged_encode("c_corrupt", {"config.json": b"{not json"}, "not valid JSON"),
        "config.json with a field the model lacks": encode_case(extra_field, "digits", z, "does not fit model 'vae'"),
        "config.json naming an unknown model": encode_case(unknown_model, "digits", z, "unknown model 'transformer'"),
        "run folder missing": encode_case(tmp / "no_such_run", "digits", z, "does not exist"),
        # checkpoints (checkpoints/last.pt), read by train --resume
        "checkpoint truncated": damaged_resume("ck_truncated", {last: (vae / last).read_bytes()[:500]}, "cannot be loaded safely"),
        "checkpoint corrupt": damaged_resume("ck_corrupt", {last: junk}, "cannot be loaded safely"),
        "checkpoint that runs code when unpickled": damaged_resume("ck_pickle", {last: evil}, "cannot be loaded safely"),
        "checkpoint from another model": damaged_resume("ck_m1", {last: runs["m1"] / last}, "written by model 'm1'"),
        "checkpoint from another config": damaged_resume("ck_z3", {last: runs["vae_z3"] / last}, "another vae config"),
        "resume without a checkpoint": t("never", "vae", message="start it again with --overwrite", out=never_checkpointed, resume=True),
        "resume of a finished run without last.pt": t("finished", "vae", message="but the run finished", out=finished_no_last, resume=True,
                                                      intact=finished_no_last / weights),
        "evaluate a run that stopped before its first checkpoint": evaluate_case(never_checkpointed, None, "train it again with `ppmodels train vae"),
        "resume of a folder that is no run": t("no_run", "vae", message="train without --resume", out=tmp / "nothing_here", resume=True),
        "resume naming another model": t("resume_m1", "m1", message="is a run of model 'vae', not 'm1'", out=copy_run(vae, damaged / "resume_m1"), resume=True),
        "resume with options it would ignore": Case(["train", "vae", "--out", str(vae), "--resume", "--epochs", "5", "--quiet"],
                                                    None, "so --epochs would be ignored"),  # the API takes no options with resume=True
        "resume with config.json missing keys": t("no_train", "vae", message="lacks or garbles 'train'", out=no_train, resume=True),
        # output folders
        "output folder exists": t("exists", "vae", message="pass --overwrite to replace it or --resume", out=vae, keep_out=True),
        "overwrite of a folder that is no run": t("thesis", "vae", message="not a ppmodels run folder", out=not_run, overwrite=True),
        "train --out an existing file": t("out_file", "vae", message="is a file; give a folder path", out=precious[".tex"], keep_out=True, intact=precious[".tex"]),
        "train into a folder that cannot be written": t("read_only", "vae", message="is not writable", out=read_only / "run"),
        # output files (issue 14): nothing a command did not write is replaced
        "evaluate --out a run's config.json": evaluate_case(kept, None, "it is part of run folder", out=kept / "config.json", intact=kept / "config.json"),
        "evaluate --out a file of the user's": evaluate_case(kept, None, "was not written by ppmodels; pass --overwrite", out=precious[".json"], intact=precious[".json"]),
        "evaluate --out a .tex file": evaluate_case(kept, None, "must end in .json", out=precious[".tex"], intact=precious[".tex"]),
        "encode --out a file of the user's": encode_case(kept, "digits", precious[".npz"], "was not written by ppmodels", intact=precious[".npz"]),
        "encode --out an existing folder": encode_case(kept, "digits", tmp / "a_folder.npz", "is a folder; give a file path"),
        "encode into a folder that cannot be written": encode_case(kept, "digits", read_only / "z.npz", "is not writable"),
        "sample --out a user's file inside a run folder": Case(["sample", str(kept), "--out", str(kept / "notes.npy"), "--overwrite"],
                                                               lambda: api.sample(kept, kept / "notes.npy", overwrite=True), "it is part of run folder",
                                                               intact=kept / "notes.npy"),
        "predict --out another command's file inside a run folder": Case(
            ["predict", str(kept), "--out", str(kept / "diagnostics" / "idata.nc"), "--overwrite"],
            lambda: api.predict(kept, None, kept / "diagnostics" / "idata.nc", overwrite=True), "it is part of run folder",
            intact=kept / "diagnostics" / "idata.nc"),
        "score --out a folder": Case(["score", str(kept), "--data", "digits", "--out", str(tmp / "a_folder.npz")],
                                     lambda: api.score(kept, "digits", tmp / "a_folder.npz"), "is a folder"),
        "diagnose --out an existing file": diagnose_case(kept, "digits", precious[".tex"], "is a file; give a folder path"),
        # data a trained model cannot take: one line, whichever command
        "wrong feature count to evaluate a model without classes": evaluate_case(vae, s["unlabeled"], "the model was trained on shape (1, 8, 8)"),
        "x outside the likelihood's range to evaluate": evaluate_case(vae, s["gauss64"], "binomial:16 likelihood needs [0, 1]"),
        "wrong feature count to diagnose": diagnose_case(vae, s["good"], tmp / "diag_width", "the model was trained on shape (1, 8, 8)"),
        "x outside the likelihood's range to diagnose": diagnose_case(vae, s["gauss64"], tmp / "diag_range", "binomial:16 likelihood needs [0, 1]"),
        "rank-5 data": t("rank5", "vae", s["rank5"], "5 dimensions"),
        # options
        "--set z_dim=abc": t("z_abc", "vae", message="option z_dim must be a whole number, got 'abc'; fix --set z_dim=VALUE", settings={"z_dim": "abc"}),
        "--lr 0": t("lr0", "vae", message="option lr must be greater than 0, got 0.0; fix --lr", lr=0.0),
        "--clip-norm 0": Case(["train", "vae", "--out", str(tmp / "runs" / "clip0"), *FAST, "--clip-norm", "0"],
                              lambda: api.train("vae", "digits", tmp / "runs" / "clip0", train_config=TrainConfig(epochs=1, clip_norm=0.0)),
                              "option clip_norm must be greater than 0, got 0.0; fix --clip-norm or leave it out", out=tmp / "runs" / "clip0"),
        "sample more than memory holds": Case(["sample", str(vae), "--out", str(tmp / "huge.npy"), "--num", str(10**12)],
                                              lambda: api.sample(vae, tmp / "huge.npy", num=10**12), "of memory but"),
        # labels that are accepted but wrong
        "labels 1..K": t("one_based", "m1", s["one_based"], "no example has class 0"),
        "labels with gaps": t("gaps", "m1", s["gaps"], "no example has class 1"),
        "labels that give every example its own class": t("row_ids", "m1", s["row_ids"], "put 60 examples in 60 classes, 60 of them with a single example"),
        "--labels 0 for m2": t("m2_labels0", "m2", message="--labels 0 hides all of them", labels=0),
        # the Python API checks its arguments as the CLI's parser does
        "load(None)": Case(None, lambda: api.load(None), "must be a path"),
        "train on an array instead of a spec": Case(None, lambda: api.train("vae", np.zeros((10, 4)), tmp / "runs" / "array"), "must be a spec",
                                                     out=tmp / "runs" / "array"),
        "train with labels given as text": Case(None, lambda: api.train("m1", "digits", tmp / "runs" / "text", labels="50"), "labels must be a whole number"),
        "train with a dict for train_config": Case(None, lambda: api.train("vae", "digits", tmp / "runs" / "dict", train_config={"epochs": 1}),
                                                   "train_config must be a ppmodels.TrainConfig"),
        "evaluate(None)": Case(None, lambda: api.evaluate(None), "needs a run folder or a fitted ppmodels model"),
        "score_data of a spec instead of an array": Case(None, lambda: api.score_data(vae, "digits"), "not a numeric array"),
        **portability_cases(tmp, s),
    }


# ----- issue 14, second half: run folders whose inputs changed under them -------------------------------------
def portability_cases(tmp: Path, specs: dict[str, str]) -> dict[str, Case]:
    """A run whose data file was rewritten after training, and a mixture on ``latents:RUN`` whose RUN was retrained."""
    from ppmodels import evaluate

    folder = tmp / "portable"
    folder.mkdir()
    data = folder / "cells.npz"
    shutil.copy(specs["good"].partition(":")[2], data)
    vae, gmm = folder / "vae", folder / "gmm"
    for run, model, spec, options, seed in (("vae", "vae", f"npz:{data}", TINY, 0), ("gmm", "gmm", f"latents:{vae}", {"num_components": 2}, 0),
                                            ("vae", "vae", f"npz:{data}", TINY, 1)):  # the last retrains the VAE under the mixture
        api.train(model, spec, folder / run, train_config=TrainConfig(epochs=1, batch_size=256, seed=seed), model_options=options,
                  progress=False, sample_every=0, overwrite=True)
    changed = copy_run(vae, folder / "changed_data")
    with np.load(data) as f:
        np.savez(data, x=f["x"][::-1], y=f["y"][::-1])  # the same values in another order: a different file
    return {
        "data file changed after training": Case(["evaluate", str(changed), "--iw-samples", "0"], lambda: evaluate(changed, iw_samples=0),
                                                 "changed after"),
        "latents:RUN whose RUN was retrained": Case(["evaluate", str(gmm), "--iw-samples", "0"], lambda: evaluate(gmm, iw_samples=0),
                                                    "was retrained after"),
        "sampling a mixture whose decoder run was retrained": Case(["sample", str(gmm), "--out", str(folder / "s.npy")],
                                                                    lambda: api.load(gmm), "was retrained after"),
    }


def accepted_requests(tmp: Path) -> dict[str, list[list[str]]]:
    """Requests that once failed or were refused wrongly (issue 14); each list of commands must succeed in turn."""
    vae, m1, acc = tmp / "trained" / "vae", tmp / "trained" / "m1", tmp / "accepted"
    acc.mkdir()
    flat = f"npz:{tmp / 'data' / 'flat_digits.npz'}"
    own = copy_run(vae, acc / "own")
    replaced = copy_run(vae, acc / "replaced")
    (acc / "user.npz").write_text("the user's file, to be replaced on request")
    encode = ["encode", str(vae), "--data", "digits", "--out", str(acc / "z.npz")]
    return {
        "flat rows to evaluate": [["evaluate", str(m1), "--data", flat, "--iw-samples", "0", "--out", str(acc / "flat.json")]],
        "flat rows to diagnose": [["diagnose", str(vae), "--data", flat, "--num-data", "50", "--particles", "21", "--no-report", "--out", str(acc / "diag")]],
        "flat rows to encode and score": [["encode", str(vae), "--data", flat, "--out", str(acc / "flat_z.npz")],
                                          ["score", str(vae), "--data", flat, "--out", str(acc / "flat_scores.csv"), "--num-particles", "2",
                                           "--reference-size", "10"]],
        "a command's own output written again": [["evaluate", str(own), "--iw-samples", "0"]] * 2 + [encode] * 2,
        "--overwrite of a user's file outside a run folder": [["encode", str(vae), "--data", "digits", "--out", str(acc / "user.npz"), "--overwrite"]],
        "train --overwrite that succeeds": [["train", "vae", "--out", str(replaced), "--overwrite", *FAST]],
    }


ACCEPTED = ["flat rows to evaluate", "flat rows to diagnose", "flat rows to encode and score", "a command's own output written again",
            "--overwrite of a user's file outside a run folder", "train --overwrite that succeeds"]


@pytest.mark.parametrize("name", ACCEPTED)
def test_accepted(cases, name):
    tmp, _, accepted = cases
    assert sorted(accepted) == sorted(ACCEPTED)
    for command in accepted[name]:
        result = runner.invoke(app, command)
        assert result.exit_code == 0, result.output
    assert not list((tmp / "accepted").glob("*.before-overwrite")) and not list((tmp / "accepted").glob("*.new")), "train --overwrite left a folder beside the run"


def write_pickle_bomb(path: Path, marker: Path) -> None:
    """A torch checkpoint whose unpickling would create ``marker``."""
    import os

    import torch

    class Bomb:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"model": Bomb()}, path)


@pytest.fixture(scope="module")
def cases(tmp_path_factory, request):
    tmp = tmp_path_factory.mktemp("hostile")
    try:
        mnist_dir = request.getfixturevalue("mnist_dir")
    except pytest.skip.Exception:
        mnist_dir = None
    table = build_cases(tmp, mnist_dir)  # trains the runs accepted_requests reuses
    return tmp, table, accepted_requests(tmp)


CASE_NAMES = [
    "nan in data", "inf in data", "x outside [0,1] with bernoulli", "no examples", "wrong feature count for a trained model",
    "nan in data to encode", "x outside [0,1] to encode", "wrong feature count to evaluate", "labels beyond a trained model's classes", "labels beyond num_classes", "labels are numbers stored as text",
    "labels are pickled objects", "labels far beyond the classes used", "labels of one class only", "labels with fractions", "negative labels", "fewer labels than examples",
    "more labels than exist", "fewer labels than classes", "labels asked of unlabeled data", "classifier on unlabeled data",
    "learning rate that diverges", "learning rate that diverges, skipping bad batches",
    "empty npz file", "empty csv file", "csv with a header only", "csv with text in a numeric column", "csv separated by semicolons", "csv label column missing",
    "npz without the x array", "missing npz", "missing csv", "missing mnist file", "truncated npz", "truncated npy",
    "npy with a damaged header", "npz archive named .npy", "csv of blank lines", "predict --out another command's file inside a run folder",
    "truncated csv", "csv row with too few columns", "truncated h5", "truncated mnist gzip", "mnist file that is not gzip", "mnist IDX shorter than its header says",
    "unknown data spec", "unknown model", "weights truncated", "weights corrupt", "weights that are a pickle",
    "weights from another model", "weights from another config", "config.json corrupt", "config.json with a field the model lacks",
    "config.json naming an unknown model", "run folder missing", "checkpoint truncated", "checkpoint corrupt",
    "checkpoint that runs code when unpickled", "checkpoint from another model", "checkpoint from another config",
    "resume without a checkpoint", "resume of a folder that is no run", "resume naming another model", "resume with options it would ignore", "resume with config.json missing keys",
    "output folder exists", "overwrite of a folder that is no run",
    # issue 14, second half
    "data file changed after training", "latents:RUN whose RUN was retrained", "sampling a mixture whose decoder run was retrained",
    # issue 14
    "--overwrite with a learning rate that diverges keeps the old run", "--overwrite while an interrupted one's set-aside run exists",
    "resume of a finished run without last.pt", "evaluate a run that stopped before its first checkpoint", "train --out an existing file",
    "train into a folder that cannot be written", "evaluate --out a run's config.json", "evaluate --out a file of the user's",
    "evaluate --out a .tex file", "encode --out a file of the user's", "encode --out an existing folder", "encode into a folder that cannot be written",
    "sample --out a user's file inside a run folder", "score --out a folder", "diagnose --out an existing file",
    "wrong feature count to evaluate a model without classes", "x outside the likelihood's range to evaluate", "wrong feature count to diagnose",
    "x outside the likelihood's range to diagnose", "rank-5 data", "--set z_dim=abc", "--lr 0", "--clip-norm 0", "sample more than memory holds", "labels 1..K",
    "labels with gaps", "labels that give every example its own class", "--labels 0 for m2", "load(None)", "train on an array instead of a spec", "train with labels given as text",
    "train with a dict for train_config", "evaluate(None)", "score_data of a spec instead of an array",
]


def test_the_table_lists_every_case(cases):
    assert sorted(cases[1]) == sorted(CASE_NAMES)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_hostile_input(cases, name, monkeypatch):
    tmp, table, _ = cases
    case = table[name]
    # MNIST must not be found anywhere but in the folder a case names
    monkeypatch.setenv("PPMODELS_DATA", str(tmp / "no_data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp / "no_cache"))

    before = case.intact.read_bytes() if case.intact is not None else None
    line = None
    if case.cli is not None:
        result = runner.invoke(app, case.cli)
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.output, result.output
        line = lines[0]
        assert line.startswith("error: ") and case.message in line, line
        problem, _, fix = line.partition("; ")
        assert problem and fix, f"the message names no fix: {line}"
        if case.out is not None:
            assert not case.out.exists(), "a failed request left a run folder behind"

    if case.call is not None:
        with pytest.raises(PPModelsError) as info:
            case.call()
        assert isinstance(info.value, case.builtin)
        message = f"error: {info.value}"
        assert message == line if line is not None else case.message in message and "; " in message, message
        assert not (tmp / "pwned").exists(), "a pickle payload ran"
        if case.out is not None:
            assert not case.out.exists(), "a failed request left a run folder behind"
    if case.intact is not None:
        assert case.intact.read_bytes() == before, f"the request changed {case.intact}"
