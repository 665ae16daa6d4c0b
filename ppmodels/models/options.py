"""The options of a model: every field of its config with its type, default and meaning (``ppmodels models MODEL``),
and the options table of its docs page (``docs/models/NAME.md``), both read from the fields' declarations
(:mod:`ppmodels.config`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..config import bounds_of, default_of, option_fields, shown, type_name
from .base import PPModel

#: filled in from the data, so they are options one rarely sets
FROM_DATA = ("x_shape", "likelihood")
#: the markers around the generated table of a model's docs page
TABLE_START = "<!-- options table: generated from {name}'s config by `python -m ppmodels.models.options --write`; edit the fields, not this table -->"
TABLE_END = "<!-- end of options table -->"


def from_data(cls: type[PPModel], name: str) -> bool:
    """Whether option ``name`` of ``cls`` is filled in from the data when not given (a model with one likelihood
    family always has that one)."""
    return name in FROM_DATA and (name != "likelihood" or len(cls.Config.likelihoods) > 1)


class ModelOption(NamedTuple):
    """One ``--set`` key of a model."""

    name: str
    type: str
    default: Any
    help: str
    #: the bounds its values keep, e.g. ``>= 1`` (empty when none)
    bounds: str = ""


def model_options(cls: type[PPModel]) -> list[ModelOption]:
    """Every field of ``cls.Config`` in declaration order, with its type, default and description."""
    return [ModelOption(name, type_name(field.annotation), default_of(field), " ".join((field.description or "").split()), bounds_of(field))
            for name, field in option_fields(cls.Config).items()]


def options_table(cls: type[PPModel]) -> str:
    """The Markdown table of ``cls``'s options, between its markers, as docs/models/NAME.md holds it."""
    rows = [TABLE_START.format(name=cls.name), "", "| option | type | default | meaning |", "| --- | --- | --- | --- |"]
    for option in model_options(cls):
        default = "from the data" if from_data(cls, option.name) else f"`{shown(option.default)}`"
        meaning = option.help.replace("|", "\\|").replace("``", "`")
        kind = option.type.replace("|", "or") + (f", {option.bounds}" if option.bounds else "")
        rows.append(f"| `{option.name}` | {kind} | {default} | {meaning} |")
    return "\n".join([*rows, "", TABLE_END])


def with_table(page: str, cls: type[PPModel]) -> str:
    """``page`` (a model's docs page) with its options table replaced by the one its config gives now."""
    start, end = TABLE_START.format(name=cls.name), TABLE_END
    if start not in page or end not in page:
        raise ValueError(f"the docs page of {cls.name} has no options table markers; put {start!r} ... {end!r} in it")
    head, rest = page.split(start, 1)
    return head + options_table(cls) + rest.split(end, 1)[1]


def main(argv: list[str] | None = None) -> int:
    """``python -m ppmodels.models.options --write [DOCS_DIR]``: rewrite the options table of every docs/models/NAME.md
    of a registered model; without ``--write``, list the pages whose table is stale (exit code 1 if any)."""
    import argparse
    from pathlib import Path

    from . import list_models

    parser = argparse.ArgumentParser(prog="python -m ppmodels.models.options")
    parser.add_argument("docs", nargs="?", default="docs/models", type=Path)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    stale = []
    for name, cls in list_models().items():
        page = args.docs / f"{name}.md"
        if not page.is_file():
            continue
        text = page.read_text()
        if TABLE_START.format(name=name) not in text:
            print(f"{page} has no options table; put {TABLE_START.format(name=name)!r} and {TABLE_END!r} where it goes")
            continue
        new = with_table(text, cls)
        if new != text:
            stale.append(str(page))
            if args.write:
                page.write_text(new)
    print(("rewrote " if args.write else "stale: ") + (", ".join(stale) or "nothing"))
    return 1 if stale and not args.write else 0


if __name__ == "__main__":
    raise SystemExit(main())
