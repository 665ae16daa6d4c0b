"""The import graph points one way: no module imports a higher layer, at module level or inside a function.

Layers, lowest first (see ppmodels/__init__.py): foundations, data, infer, models, runs, analysis, commands, the
public package, the CLI. Inside a layer imports are free, but no cycle may form.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOUNDATIONS = ["ppmodels.errors", "ppmodels.config", "ppmodels.version", "ppmodels.files", "ppmodels.metrics", "ppmodels.registry", "ppmodels.plugins",
               "ppmodels.nets", "ppmodels.corruption", "ppmodels.plots"]
LAYERS = [*FOUNDATIONS, "ppmodels.data", "ppmodels.infer", "ppmodels.models", "ppmodels.runs", "ppmodels.analysis",
          "ppmodels.commands", "ppmodels", "ppmodels_cli"]
# foundations may import each other only downwards in this order; the rest is one layer per package
RANK = {name: i for i, name in enumerate(LAYERS)}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "cli":
        parts[0] = "ppmodels_cli"
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    if module == "ppmodels.__main__":  # `python -m ppmodels` (what torchrun starts) is an entry point: the CLI's layer
        return "ppmodels_cli"
    best = max((name for name in LAYERS if module == name or module.startswith(name + ".")), key=len)
    return best


def imports_of(path: Path) -> set[str]:
    """Every ppmodels module ``path`` imports, at any depth of its code (function-local imports too)."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [] if node.module else [a.name for a in node.names]
            else:
                target, names = node.module or "", []
            targets = [f"{target}.{n}" for n in names] or [target]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        found.update(t for t in targets if t.split(".")[0] in ("ppmodels", "ppmodels_cli"))
    return found


def graph() -> dict[str, set[str]]:
    files = [*(ROOT / "ppmodels").rglob("*.py"), *(ROOT / "cli").rglob("*.py")]
    return {module_name(f): imports_of(f) for f in files}


def test_no_module_imports_a_higher_layer():
    upward = []
    for module, targets in graph().items():
        for target in targets:
            if RANK[layer_of(target)] > RANK[layer_of(module)]:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports that point up the layers:\n" + "\n".join(sorted(upward))


def test_no_import_cycle():
    edges = graph()
    known = set(edges)
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in edges.get(node, ()):
            target = target if target in known else target.rpartition(".")[0]  # `from pkg import name` of a symbol
            if target not in known or target == node:
                continue
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("bad", ["from ..runs import load", "from ppmodels.commands.train import train"])
def test_the_check_catches_an_upward_import(tmp_path, bad, monkeypatch):
    """A model file that imported the run folder or a command would be reported."""
    fake = ROOT / "ppmodels" / "models" / "vae.py"
    source = fake.read_text() + f"\n\ndef _probe():\n    {bad}\n"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: source if self == fake else Path.read_bytes(self).decode())
    with pytest.raises(AssertionError, match="ppmodels.models.vae -> ppmodels.(runs|commands)"):
        test_no_module_imports_a_higher_layer()
