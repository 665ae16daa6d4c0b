"""The docs cannot rot: docs/cli.md is what the Typer app generates now, and every code block marked runnable runs.

A fenced block is runnable when its info string is ``python run`` or ``bash run`` (renderers still highlight it
as Python or Bash). The blocks of one page run in order in one fresh folder, Python blocks in one shared
namespace, so a later block may use a run folder or a variable from an earlier one. ``docs/`` is linked into
that folder so that paths such as ``docs/examples/student_t_vae.py`` work as they do from the repository root.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(\w+)[ \t]+run[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
REGENERATE = ".venv/bin/typer ppmodels_cli.main utils docs --name ppmodels --output docs/cli.md"


def runnable_blocks(page: Path) -> list[tuple[str, str]]:
    """``(language, code)`` of each block of ``page`` marked runnable, in order."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(page.read_text())]


def test_cli_md_is_what_the_app_generates(tmp_path):
    generated = tmp_path / "cli.md"
    done = subprocess.run([sys.executable, "-m", "typer", "ppmodels_cli.main", "utils", "docs", "--name", "ppmodels",
                           "--output", str(generated)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (ROOT / "docs" / "cli.md").read_text() == generated.read_text(), f"docs/cli.md is stale; regenerate it: {REGENERATE}"


def test_the_extractor_finds_blocks_and_only_marked_ones(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```python run\nx = 1\n```\n\n```python\nnot run\n```\n\n```bash run\necho hi\n```\n")
    assert runnable_blocks(page) == [("python", "x = 1\n"), ("bash", "echo hi\n")]
    assert {"index.md", "api.md", "vae.md", "m1.md"} <= {p.name for p in PAGES if runnable_blocks(p)}


@pytest.mark.parametrize("page", [p for p in PAGES if runnable_blocks(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_runnable_blocks_run(page, tmp_path, monkeypatch):
    (tmp_path / "docs").symlink_to(ROOT / "docs")
    monkeypatch.chdir(tmp_path)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    namespace: dict = {"__name__": "__docs__"}
    for number, (language, code) in enumerate(runnable_blocks(page), 1):
        where = f"{page.name}, runnable block {number}"
        if language == "python":
            exec(compile(code, where, "exec"), namespace)
        elif language in ("bash", "sh", "console"):
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", code], capture_output=True, text=True, env=env, timeout=300)
            assert done.returncode == 0, f"{where} failed:\n{code}\n{done.stdout}\n{done.stderr}"
        else:
            pytest.fail(f"{where}: cannot run language {language!r}; mark python or bash blocks only")
