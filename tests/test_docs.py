"""The docs cannot rot: docs/cli.md is what the Typer app generates now, and every shell and Python block runs.

Every fenced ``bash`` or ``python`` block of README.md and docs/ carries a marker after its language (renderers
still highlight it as Bash or Python):

- ``run``: runs in the default suite (small epochs, digits data: seconds);
- ``run slow``: runs only with ``--runslow`` (full MNIST, real recipes of minutes); a block that names
  ``../shared/data/mnist`` skips, with the reason, when those files are absent;
- ``setup``: only README's first block (``bash scripts/demo.sh``, ``bash scripts/test.sh``), which CI runs itself.

The blocks of one page run in order in one fresh folder, Python blocks in one shared namespace, so a later block
may use a run folder or a variable from an earlier one; a ``run`` block never depends on a ``run slow`` one (the
default suite runs the ``run`` blocks alone, ``--runslow`` runs all of them in order). Bash blocks hold ``ppmodels``
commands only, one a line (``#`` comments and ``\\`` continuations allowed); they run through the Typer app in this
process, as the installed ``ppmodels`` script would run them, which spares a Python start-up per line. The folder
stands where the checkout stands: ``docs/`` is linked into it and ``../shared`` beside it, so that paths such as
``docs/examples/student_t_vae.py`` and ``--data-dir ../shared/data/mnist`` work as they do from the repository root.
"""

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer.main
from typer.cli import app as typer_cli
from typer.testing import CliRunner

from ppmodels_cli.main import app

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(\w*)[ \t]*([^\n`]*?)[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
RUNNABLE = {"bash", "python"}
MARKERS = {"run", "run slow"}
SETUP = (ROOT / "README.md", 1)  # README's first block: the scripts CI runs (bash scripts/demo.sh, scripts/test.sh)
MNIST_DIR = "../shared/data/mnist"
REGENERATE = ".venv/bin/typer ppmodels_cli.main utils docs --name ppmodels --output docs/cli.md"
# pages whose `run` blocks train for long (README 25 s, hyperspectral 19 s on 2 cores): they run under --runslow; by
# default their commands are parsed (test_commands_of_slow_pages_parse), and tests/cli and tests/test_predict.py run
# the same commands on smaller settings
SLOW_PAGES = {"README.md", "docs/hyperspectral.md"}


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language, its marker (the rest of the info string), its first line and its code."""

    language: str
    marker: str
    line: int
    code: str


def code_blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page``, in order."""
    text = page.read_text()
    return [Block(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1, m.group(3)) for m in FENCE.finditer(text)]


def runnable_blocks(page: Path, slow: bool = False) -> list[Block]:
    """The blocks of ``page`` marked ``run`` (and ``run slow`` when ``slow``), in order."""
    markers = MARKERS if slow else {"run"}
    return [b for b in code_blocks(page) if b.language in RUNNABLE and b.marker in markers]


def shell_commands(code: str) -> list[list[str]]:
    """The argument lists of the ``ppmodels`` commands of a Bash block (without the leading ``ppmodels``)."""
    commands = []
    for line in code.replace("\\\n", " ").splitlines():
        args = shlex.split(line, comments=True)
        if not args:
            continue
        if args[0] != "ppmodels":
            raise ValueError(f"runnable bash blocks may hold ppmodels commands only, not {line!r}")
        commands.append(args[1:])
    return commands


def needs_mnist(block: Block) -> bool:
    return MNIST_DIR in block.code or re.search(r"--data[ =]mnist\b|--style-from[ =]mnist\b", block.code) is not None


def rel(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_cli_md_is_what_the_app_generates(tmp_path):
    generated = tmp_path / "cli.md"
    result = CliRunner().invoke(typer_cli, ["ppmodels_cli.main", "utils", "docs", "--name", "ppmodels", "--output", str(generated)])
    assert result.exit_code == 0, result.output
    assert (ROOT / "docs" / "cli.md").read_text() == generated.read_text(), f"docs/cli.md is stale; regenerate it: {REGENERATE}"


def test_the_extractor_finds_blocks_and_only_marked_ones(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```python run\nx = 1\n```\n\n```python\nnot run\n```\n\n```bash run slow\nppmodels models\n```\n\n"
                    "```bash run\nppmodels models  # list\n\n```\n")
    assert [(b.language, b.marker, b.line) for b in code_blocks(page)] == [
        ("python", "run", 1), ("python", "", 5), ("bash", "run slow", 9), ("bash", "run", 13)]
    assert [b.code for b in runnable_blocks(page)] == ["x = 1\n", "ppmodels models  # list\n\n"]
    assert [b.marker for b in runnable_blocks(page, slow=True)] == ["run", "run slow", "run"]
    assert shell_commands("ppmodels sample RUN --out 'a b.png'  # c\n") == [["sample", "RUN", "--out", "a b.png"]]
    assert shell_commands("ppmodels train m2 \\\n    --epochs 3\n") == [["train", "m2", "--epochs", "3"]]
    with pytest.raises(ValueError, match="ppmodels commands only"):
        shell_commands("rm -rf runs\n")
    assert {"README.md", "index.md", "api.md", "vae.md", "m1.md"} <= {p.name for p in PAGES if runnable_blocks(p)}


def test_every_shell_and_python_block_is_marked():
    unmarked = []
    for page in PAGES:
        for number, block in enumerate(code_blocks(page), 1):
            shell_or_python = block.language in RUNNABLE | {"sh", "shell", "zsh", "py", "python3"}
            if shell_or_python and (block.language not in RUNNABLE or block.marker not in MARKERS) and (page, number) != SETUP:
                unmarked.append(f"{rel(page)}:{block.line}: ```{block.language} {block.marker}".rstrip())
    assert not unmarked, ("write shell and Python blocks as ```bash or ```python marked `run` (default suite) or "
                          "`run slow` (--runslow) and make them run as printed (see tests/test_docs.py):\n" + "\n".join(unmarked))


COMMAND = re.compile(r"^(\$ )?(ppmodels|torchrun|srun|python)\b", re.M)
NOT_RUN = re.compile(r"<!-- not run: \S.*-->\s*$")


def test_every_unrun_command_block_says_why():
    """A ```text or ```console block that shows commands (a transcript, a torchrun launch over several machines) is
    not run; the line above it says why, in a comment ``<!-- not run: REASON -->``. docs/cli.md is generated and
    checked against the app instead."""
    silent = []
    for page in PAGES:
        if page == ROOT / "docs" / "cli.md":
            continue
        text = page.read_text()
        for block in code_blocks(page):
            if block.language in RUNNABLE or not COMMAND.search(block.code):
                continue
            above = [line for line in text.splitlines()[: block.line - 1] if line.strip()]
            if not above or not NOT_RUN.match(above[-1].strip()):
                silent.append(f"{rel(page)}:{block.line}: ```{block.language}")
    assert not silent, "run these blocks (```bash run) or say above each why not (<!-- not run: REASON -->):\n" + "\n".join(silent)


def test_readme_setup_block_names_the_scripts_ci_runs():
    page, number = SETUP
    block = code_blocks(page)[number - 1]
    assert (block.language, block.marker) == ("bash", "setup")
    scripts = [shlex.split(line, comments=True) for line in block.code.splitlines()]
    assert scripts and all(args[0] == "bash" and (ROOT / args[1]).is_file() for args in scripts if args), block.code


def test_mnist_blocks_are_slow_and_use_the_shared_folder():
    wrong = []
    for page in PAGES:
        for block in runnable_blocks(page, slow=True):
            if needs_mnist(block) and block.marker != "run slow":
                wrong.append(f"{rel(page)}:{block.line}: a block on MNIST must be `run slow`")
            if block.language == "bash" and needs_mnist(block):
                for args in shell_commands(block.code):
                    if "mnist" in args and f"--data-dir={MNIST_DIR}" not in args and MNIST_DIR not in args:
                        wrong.append(f"{rel(page)}:{block.line}: pass --data-dir {MNIST_DIR}: ppmodels {shlex.join(args)}")
    assert not wrong, "\n".join(wrong)


def run_page(page: Path, tmp_path: Path, monkeypatch, request, slow: bool) -> None:
    blocks = runnable_blocks(page, slow=slow)
    if any(needs_mnist(b) for b in blocks):
        request.getfixturevalue("mnist_dir")  # skips, saying where the files were looked for
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "docs").symlink_to(ROOT / "docs")
    if SHARED.is_dir():
        (tmp_path / "shared").symlink_to(SHARED)
    monkeypatch.chdir(checkout)
    namespace: dict = {"__name__": "__docs__"}
    for block in blocks:
        where = f"{rel(page)}:{block.line} ({block.language} {block.marker})"
        if block.language == "python":
            exec(compile(block.code, where, "exec"), namespace)
        else:
            for args in shell_commands(block.code):
                result = CliRunner().invoke(app, args)
                assert result.exit_code == 0, f"{where} failed: ppmodels {shlex.join(args)}\n{result.output}"


@pytest.mark.parametrize("page", [pytest.param(p, marks=[pytest.mark.slow] if rel(p) in SLOW_PAGES else [])
                                  for p in PAGES if runnable_blocks(p)], ids=rel)
def test_runnable_blocks_run(page, tmp_path, monkeypatch, request):
    run_page(page, tmp_path, monkeypatch, request, slow=False)


def test_commands_of_slow_pages_parse():
    """Every ``ppmodels`` command of the SLOW_PAGES parses: the command, its options and their values' types."""
    group = typer.main.get_command(app)
    commands = [args for page in PAGES if rel(page) in SLOW_PAGES for block in runnable_blocks(page, slow=True)
                if block.language == "bash" for args in shell_commands(block.code)]
    assert len(commands) > 10
    for args in commands:
        command = group.get_command(None, args[0])
        assert command is not None, f"no command ppmodels {args[0]}"
        with command.make_context(args[0], list(args[1:])) as ctx:
            assert ctx.params, shlex.join(args)


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if len(runnable_blocks(p, slow=True)) > len(runnable_blocks(p))], ids=rel)
def test_slow_blocks_run(page, tmp_path, monkeypatch, request):
    """Every runnable block of the page, ``run slow`` ones included, in order."""
    run_page(page, tmp_path, monkeypatch, request, slow=True)


def test_readme_python_block_runs_on_its_own(tmp_path, monkeypatch):
    """A reader pastes README's Python snippet alone into an empty folder: it needs no run folder and no variable from
    the shell block above it."""
    blocks = [b for b in runnable_blocks(ROOT / "README.md") if b.language == "python"]
    assert blocks, "README.md has a Python example"
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block.code, f"README.md:{block.line}", "exec"), {"__name__": "__docs__"})
