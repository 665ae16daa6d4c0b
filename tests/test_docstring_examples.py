"""Every ``Example::`` block of a docstring in ppmodels/ runs, as printed, in the default suite.

The blocks are found with ``ast`` in module, class and function docstrings. A block runs in a fresh folder, in a
namespace holding its module's globals, ``ppmodels`` and the public names of ``ppmodels`` and ``ppmodels.models``
(``load_dataset``, ``prepare_data``, ``TrainConfig``, ``VAE``, ...), so a block may use them without importing
them; anything else (data, run folders) it makes itself. A block whose every line is a ``ppmodels`` command runs
through the Typer app, as the shell blocks of docs/ do (``tests/test_docs.py``). Examples use small settings
(digits, a few epochs, tiny networks) so that all of them take seconds.
"""

from __future__ import annotations

import ast
import importlib
import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import ppmodels
import ppmodels.models
from ppmodels import registry
from ppmodels_cli.main import app
from tests.test_docs import shell_commands

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ppmodels"


@dataclass(frozen=True)
class Example:
    module: str
    owner: str  # the module, class or function whose docstring holds the block
    line: int
    code: str

    @property
    def id(self) -> str:
        return f"{self.module}:{self.owner}"


def example_blocks(docstring: str) -> list[str]:
    """The indented blocks that follow each ``Example::`` line of ``docstring``, dedented."""
    lines, blocks = docstring.splitlines(), []
    for i, line in enumerate(lines):
        if line.strip() != "Example::":
            continue
        indent = len(line) - len(line.lstrip())
        body = []
        for following in lines[i + 1:]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            body.append(following)
        blocks.append(textwrap.dedent("\n".join(body)).strip("\n") + "\n")
    return blocks


def examples_of(path: Path) -> list[Example]:
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    tree = ast.parse(path.read_text())
    found = []
    for node in [tree, *ast.walk(tree)]:
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        docstring = ast.get_docstring(node, clean=False)
        if docstring and "Example::" in docstring:
            owner = getattr(node, "name", "<module>")
            line = node.body[0].lineno
            if node is tree and found and found[0].owner == "<module>":
                continue  # ast.walk yields the module again
            found += [Example(module, owner, line, code) for code in example_blocks(docstring)]
    return found


EXAMPLES = [example for path in sorted(PACKAGE.rglob("*.py")) for example in examples_of(path)]


def public(module) -> dict:
    return {name: getattr(module, name) for name in getattr(module, "__all__", []) if name != "diagnose"}


def is_shell(code: str) -> bool:
    lines = [line for line in code.replace("\\\n", " ").splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return bool(lines) and all(line.lstrip().startswith("ppmodels ") for line in lines)


def test_examples_are_found():
    owners = {e.id for e in EXAMPLES}
    assert {"ppmodels.models.vae:VAE", "ppmodels.models.ppca:PPCA", "ppmodels.infer.trainer:fit", "ppmodels.data.cubes:<module>"} <= owners
    assert all(example.code.strip() for example in EXAMPLES), "an Example:: line with no indented code after it"
    assert example_blocks("Do.\n\n    Example::\n\n        a = 1\n          b = 2\n\n        c = 3\n\n    After.\n") == ["a = 1\n  b = 2\n\nc = 3\n"]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.id)
def test_docstring_example_runs(example, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # an example may register a model of its own
    where = f"{example.module.replace('.', '/')}.py:{example.line} ({example.owner} Example::)"
    if is_shell(example.code):
        for args in shell_commands(example.code):
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 0, f"{where} failed: ppmodels {shlex.join(args)}\n{result.output}"
        return
    module = importlib.import_module(example.module)
    namespace = {**public(ppmodels), **public(ppmodels.models), "ppmodels": ppmodels, "np": np, "torch": torch, **vars(module)}
    exec(compile(example.code, where, "exec"), namespace)
