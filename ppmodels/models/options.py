"""The options of a model: every field of its config with its type, default and meaning (``ppmodels models MODEL``).

The meaning of a field comes, first found first, from ``dataclasses.field(metadata={"help": ...})``, from a
``:param NAME:`` entry (or ``:param A, B:`` for several) in the docstring of its config class or of one of the
config's bases, then of the model class; a description runs to the next ``:param`` or the end of its paragraph.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, NamedTuple

from .base import PPModel

PARAM = re.compile(r":param\s+([\w\s,]+?):\s*(.*?)(?=:param\s|\Z)", re.S)
#: filled in from the data, so they are options one rarely sets
FROM_DATA = ("x_shape", "likelihood")


class ModelOption(NamedTuple):
    """One ``--set`` key of a model."""

    name: str
    type: str
    default: Any
    help: str


def documented_params(doc: str | None) -> dict[str, str]:
    """``{name: meaning}`` for the ``:param:`` entries of a docstring, whitespace collapsed."""
    found: dict[str, str] = {}
    for paragraph in re.split(r"\n\s*\n", doc or ""):
        for names, text in PARAM.findall(paragraph):
            for name in names.split(","):
                found.setdefault(name.strip(), " ".join(text.split()))
    return found


def model_options(cls: type[PPModel]) -> list[ModelOption]:
    """Every field of ``cls.Config`` in declaration order, with its default and the meaning its docs give."""
    docs: dict[str, str] = {}
    for owner in [*cls.Config.__mro__, cls]:
        for name, text in documented_params(owner.__doc__).items():
            docs.setdefault(name, text)
    options = []
    for field in dataclasses.fields(cls.Config):
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = None
        kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
        options.append(ModelOption(field.name, kind, default, field.metadata.get("help") or docs.get(field.name, "")))
    return options
