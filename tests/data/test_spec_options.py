"""The options of a data spec: each source takes the options of its table (``source_options``) and refuses any other
in one line naming the option, the source and what it takes, so that a typo never leaves the run reading other data."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

from ppmodels.data import UNLABELED, known_kinds, load_dataset, parse_spec, source_options
from ppmodels.data.sources import FILE_OPTIONS
from ppmodels.errors import DataError
from ppmodels_cli.main import app

ROOT = Path(__file__).resolve().parents[2]
KINDS = [kind.partition(":")[0] for kind in known_kinds()]
FILES = ("npz", "npy", "csv", "h5", "zarr")
#: a value each option of the file sources' tables can take on the files of ``write``
VALUES = {"x": "x", "y": "y", "likelihood": "gaussian", "classes": "3", "unlabeled": "none", "test_labels": "0.25",
          "lazy": "0", "labels": "y.npy", "label": "label"}


def write(kind: str, folder: Path) -> str:
    """A partly labeled file of ``kind`` (40 rows, 4 features, classes 0..2, every other row unlabeled), as a spec
    without options."""
    rng = np.random.default_rng(0)
    y = np.where(np.arange(40) % 2 == 0, np.arange(40) % 3, UNLABELED)
    x = (rng.normal(size=(40, 4)) + (np.arange(40) % 3)[:, None]).astype(np.float32)
    path = folder / f"d.{kind}"
    if kind == "npz":
        np.savez(path, x=x, y=y)
    elif kind == "npy":
        np.save(path, x)
        np.save(folder / "y.npy", y)
    elif kind == "csv":
        rows = [",".join(f"{v:.4f}" for v in row) + f",{'' if c < 0 else c}" for row, c in zip(x, y)]
        path.write_text("a,b,c,d,label\n" + "\n".join(rows) + "\n")
    elif kind == "h5":
        with h5py.File(path, "w") as f:
            f["x"], f["y"] = x, y
    else:
        root = zarr.open_group(str(path), mode="w")
        root.create_array("x", data=x)
        root.create_array("y", data=y)
    return f"{kind}:{path}"


@pytest.mark.parametrize("kind", FILES)
def test_every_option_in_a_file_source_table_is_accepted_on_its_file(tmp_path, kind):
    options = sorted(source_options(kind))
    dataset = load_dataset(write(kind, tmp_path) + "?" + "&".join(f"{key}={VALUES[key]}" for key in options))
    assert dataset.likelihood == "gaussian" and dataset.num_classes == 3
    # 7, 7 and 6 labels of classes 0, 1, 2: round(0.25 n) = 2 of each to test
    assert dataset.metadata["test_labels"] == 0.25 and (dataset.y[dataset.splits["test"]] != UNLABELED).sum() == 6


@pytest.mark.parametrize("kind, typo, meant", [("npz", "test_label", "test_labels"), ("npy", "label", "labels"),
                                               ("csv", "lable", "label"), ("h5", "lazzy", "lazy"), ("zarr", "classe", "classes")])
def test_a_misspelt_option_of_a_file_source_is_refused_in_one_line(tmp_path, kind, typo, meant):
    spec = f"{write(kind, tmp_path)}?{typo}=1"
    with pytest.raises(DataError) as refused:
        load_dataset(spec)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"unknown option ?{typo} for {kind}:PATH (did you mean {meant}?); {kind}:PATH takes ")
    assert message.endswith(", ".join(sorted(source_options(kind))))


@pytest.mark.parametrize("spec, message", [
    ("digits?likelihod=gaussian", "unknown option ?likelihod for digits (did you mean likelihood?); digits takes likelihood"),
    ("mnist?lazy=0", "unknown option ?lazy for mnist; mnist takes likelihood"),
    ("cube:scene.nc?pacth=5&bnds=1:3", "unknown options ?pacth, ?bnds for cube:PATH (did you mean patch or bands?); cube:PATH takes background, bands"),
    ("mat:scene.mat?gtt=g.mat", "unknown option ?gtt for mat:PATH (did you mean gt?)"),
    ("indian_pines?standardise=none", "unknown option ?standardise for indian_pines (did you mean standardize?)"),
    ("latents:runs/vae?split=test", "unknown option ?split for latents:PATH; latents:PATH takes no options"),
    ("d.npz?x=a&y=b&x=c", "option x is given twice in the data spec 'd.npz[?]x=a&y=b&x=c'; give each option once"),
])
def test_every_other_source_refuses_an_option_it_does_not_take(spec, message):
    # refused from the spec alone, before any file is looked for
    with pytest.raises(DataError, match=re.escape(message) if "[?]" not in message else message):
        parse_spec(spec)


def test_the_built_in_sources_take_their_documented_options():
    assert set(KINDS) >= {"digits", "mnist", *FILES, "cube", "mat", "indian_pines", "latents"}
    for kind in FILES:  # docs/data.md: every file source takes the likelihood hint and the partly labeled options
        assert source_options(kind) >= FILE_OPTIONS
    for kind in KINDS:
        assert source_options(kind) is not None, f"{kind} declares no options, so a typo in one would be ignored"
        if kind != "latents":  # docs/data.md: "every spec also takes ?likelihood="
            assert "likelihood" in source_options(kind)


def test_a_likelihood_option_of_the_built_in_digits_is_used():
    assert load_dataset("digits").likelihood == "binomial:16"
    assert load_dataset("digits?likelihood=gaussian").likelihood == "gaussian"


def spec_options(text: str) -> list[tuple[str, str]]:
    """``(kind, option)`` for each option of each data spec written in ``text`` (``KIND:PATH?a=1&b=2``,
    ``KIND?a=1`` or a path ending in a known suffix), but for an option its line shows refused (``unknown option ?a``)."""
    kinds = "|".join(sorted(KINDS, key=len, reverse=True))
    found = []
    for line in text.splitlines():
        for match in re.finditer(rf"\b(?:({kinds})(?::[^\s?\"'`]*)?|[\w/{{}}.-]+\.(npz|npy|csv|h5|hdf5|zarr|nc|mat))\?([^\s\"'`)]+)", line):
            kind = match.group(1) or parse_spec("x." + match.group(2))[0]
            keys = re.findall(r"(?:^|&)([A-Za-z_]+)=", match.group(3))
            found += [(kind, key) for key in keys if f"unknown option ?{key} " not in line]
    return found


def test_every_option_written_in_the_docs_benchmarks_tests_and_code_is_in_its_source_table():
    files = [ROOT / "README.md", *ROOT.glob("docs/**/*.md"), *ROOT.glob("benchmarks/**/*.py"), *ROOT.glob("benchmarks/**/*.md"),
             *ROOT.glob("ppmodels/**/*.py"), *ROOT.glob("cli/*.py"), *(p for p in ROOT.glob("tests/**/*.py") if p.name != Path(__file__).name)]
    written = {(kind, key, path.relative_to(ROOT).as_posix()) for path in files for kind, key in spec_options(path.read_text())}
    assert len({(k, o) for k, o, _ in written}) >= 20  # the scan finds the specs (csv ?label, cube ?bands, npy ?labels, ...)
    refused = sorted((kind, key, where) for kind, key, where in written if key not in source_options(kind))
    assert not refused


def test_the_cli_refuses_a_misspelt_option_with_one_line_and_no_run_folder(tmp_path):
    spec = write("npz", tmp_path) + "?test_label=0.2"
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "vae", "--data", spec, "--out", str(out), "--epochs", "1", "--quiet"])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == ["error: unknown option ?test_label for npz:PATH (did you mean test_labels?); "
                                                  "npz:PATH takes classes, likelihood, test_labels, unlabeled, x, y"]
    assert "Traceback" not in result.output and not out.exists()
