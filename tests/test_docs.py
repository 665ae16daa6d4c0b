"""The docs cannot rot: docs/cli.md is what the Typer app generates now, and every code block marked runnable runs.

A fenced block is runnable when its info string is ``python run`` or ``bash run`` (renderers still highlight it
as Python or Bash). The blocks of one page run in order in one fresh folder, Python blocks in one shared
namespace, so a later block may use a run folder or a variable from an earlier one. Runnable Bash blocks hold
``ppmodels`` commands only, one a line (``#`` comments allowed); they run through the Typer app in this process,
as the installed ``ppmodels`` script would run them, which spares a Python start-up per line. ``docs/`` is linked
into the folder so that paths such as ``docs/examples/student_t_vae.py`` work as they do from the repository root.
"""

import re
import shlex
from pathlib import Path

import pytest
from typer.cli import app as typer_cli
from typer.testing import CliRunner

from ppmodels_cli.main import app

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(\w+)[ \t]+run[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
REGENERATE = ".venv/bin/typer ppmodels_cli.main utils docs --name ppmodels --output docs/cli.md"


def runnable_blocks(page: Path) -> list[tuple[str, str]]:
    """``(language, code)`` of each block of ``page`` marked runnable, in order."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(page.read_text())]


def shell_commands(code: str) -> list[list[str]]:
    """The argument lists of the ``ppmodels`` commands of a Bash block (without the leading ``ppmodels``)."""
    commands = []
    for line in code.splitlines():
        args = shlex.split(line, comments=True)
        if not args:
            continue
        if args[0] != "ppmodels":
            raise ValueError(f"runnable bash blocks may hold ppmodels commands only, not {line!r}")
        commands.append(args[1:])
    return commands


def test_cli_md_is_what_the_app_generates(tmp_path):
    generated = tmp_path / "cli.md"
    result = CliRunner().invoke(typer_cli, ["ppmodels_cli.main", "utils", "docs", "--name", "ppmodels", "--output", str(generated)])
    assert result.exit_code == 0, result.output
    assert (ROOT / "docs" / "cli.md").read_text() == generated.read_text(), f"docs/cli.md is stale; regenerate it: {REGENERATE}"


def test_the_extractor_finds_blocks_and_only_marked_ones(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```python run\nx = 1\n```\n\n```python\nnot run\n```\n\n```bash run\nppmodels models  # list\n\n```\n")
    assert runnable_blocks(page) == [("python", "x = 1\n"), ("bash", "ppmodels models  # list\n\n")]
    assert shell_commands("ppmodels sample RUN --out 'a b.png'  # c\n") == [["sample", "RUN", "--out", "a b.png"]]
    with pytest.raises(ValueError, match="ppmodels commands only"):
        shell_commands("rm -rf runs\n")
    assert {"index.md", "api.md", "vae.md", "m1.md"} <= {p.name for p in PAGES if runnable_blocks(p)}


@pytest.mark.parametrize("page", [p for p in PAGES if runnable_blocks(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_runnable_blocks_run(page, tmp_path, monkeypatch):
    (tmp_path / "docs").symlink_to(ROOT / "docs")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for number, (language, code) in enumerate(runnable_blocks(page), 1):
        where = f"{page.name}, runnable block {number}"
        if language == "python":
            exec(compile(code, where, "exec"), namespace)
        elif language == "bash":
            for args in shell_commands(code):
                result = CliRunner().invoke(app, args)
                assert result.exit_code == 0, f"{where} failed: ppmodels {shlex.join(args)}\n{result.output}"
        else:
            pytest.fail(f"{where}: cannot run language {language!r}; mark python or bash blocks only")
