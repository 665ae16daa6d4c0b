"""How options are declared: each config (a model's ``Config``, :class:`~ppmodels.TrainConfig`) is a pydantic
dataclass whose fields carry their type, default, bounds and meaning in one ``Field``; the CLI's ``--set``, ``ppmodels
models NAME``, the Typer help of ``ppmodels train`` and the docs' option tables all read them from there.

A field is declared as::

    z_dim: int = Field(10, ge=1, description="latent size.")
    hidden: IntList = Field(default_factory=lambda: [256, 256], description="hidden layer sizes.")
    net: Literal["mlp", "conv"] = Field("mlp", description="...")

Rules between fields go in one ``@model_validator(mode="after")`` per class that raises :class:`ConfigError` with
its own message; the validators of the bases run first. Whatever pydantic refuses becomes one :class:`ConfigError`
line naming the option as the user sets it (the class's ``option_flag``), also from the Python API.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import numbers
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BeforeValidator, ConfigDict, Field, StrictInt, ValidationError
from pydantic.dataclasses import dataclass as pydantic_dataclass
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .errors import ConfigError

#: unknown keys, text for numbers, true for 1, NaN and infinity are refused; assignments are checked too
STRICT = ConfigDict(extra="forbid", strict=True, validate_assignment=True, allow_inf_nan=False)


def _python_int(value: Any) -> Any:
    return int(value) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value


#: a list of positive whole numbers; a tuple and numpy integers are taken too (``x_shape=array.shape[1:]``), bools,
#: floats and text are not
IntList = Annotated[list[Annotated[StrictInt, BeforeValidator(_python_int), Field(ge=1)]], Field(strict=False)]

__all__ = ["Field", "IntList", "STRICT", "bounds_in_words", "bounds_of", "build_config", "config_dataclass", "default_of",
           "option_fields", "shown", "type_name"]

_WANTED = {"int_type": "a whole number", "int_parsing": "a whole number", "int_from_float": "a whole number",
           "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
           "bool_type": "true or false", "bool_parsing": "true or false", "string_type": "text", "list_type": "a list"}
_BOUNDS = {"greater_than": ("gt", "greater than"), "greater_than_equal": ("ge", "at least"),
           "less_than": ("lt", "less than"), "less_than_equal": ("le", "at most")}


def config_dataclass(cls: type) -> type:
    """``cls`` as a strict pydantic dataclass (:data:`STRICT`) that raises :class:`ConfigError`, never pydantic's
    ``ValidationError``, when built (``cls(...)``, ``dataclasses.replace``) or assigned to. A plain
    ``@dataclasses.dataclass`` subclass of a config can be passed through this too (models do it for their
    ``Config``)."""
    for field in dataclasses.fields(cls) if "__dataclass_fields__" in vars(cls) else ():
        if field.name in vars(cls).get("__annotations__", {}) and field.default_factory is not dataclasses.MISSING:
            setattr(cls, field.name, Field(default_factory=field.default_factory))  # plain dataclasses keep no attribute for these
    cls = pydantic_dataclass(cls, config=STRICT)
    init, setattr_ = cls.__init__, cls.__setattr__

    @functools.wraps(init)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except ValidationError as exc:
            given = dict(zip(option_fields(type(self)), args)) | kwargs
            raise config_error(type(self), exc, given) from None
        legacy = getattr(self, "validate", None)
        if callable(legacy):  # a plugin's config written for the old API checks itself in validate(): still called
            legacy()

    @functools.wraps(setattr_)
    def __setattr__(self, name: str, value: Any) -> None:
        old = self.__dict__.get(name, PydanticUndefined)
        try:
            setattr_(self, name, value)
        except ValidationError as exc:
            if old is not PydanticUndefined:  # pydantic has stored the value before a rule between fields refused it
                object.__setattr__(self, name, old)
            raise config_error(type(self), exc, {name: value}) from None

    cls.__init__, cls.__setattr__ = __init__, __setattr__
    return cls


def build_config(cls: type, config: Any = None, **values: Any) -> Any:
    """``config`` (an instance of ``cls``; ``None``: ``cls``'s defaults) with ``values`` replacing its fields, checked."""
    if config is None:
        return cls(**values)
    if not isinstance(config, cls):
        raise ConfigError(f"config must be a {cls.__name__}, got {type(config).__name__}; e.g. {cls.__name__}(...) or keyword options")
    return dataclasses.replace(config, **values) if values else config


def is_config_dataclass(cls: type) -> bool:
    """Whether ``cls`` itself (not only a base) went through :func:`config_dataclass`."""
    return "__pydantic_validator__" in vars(cls)


def option_fields(cls: type) -> dict[str, FieldInfo]:
    """Every field of a config class, in declaration order: type (``.annotation``), default, bounds and
    ``.description``."""
    return dict(cls.__pydantic_fields__)


def default_of(field: FieldInfo) -> Any:
    return field.get_default(call_default_factory=True)


def type_name(annotation: Any) -> str:
    """``int``, ``float | None``, ``list[int]``, or the choices of a ``Literal``: ``mlp | conv``."""
    if get_origin(annotation) is Annotated:
        return type_name(get_args(annotation)[0])
    if get_origin(annotation) is Literal:
        return " | ".join(str(a) for a in get_args(annotation))
    if get_origin(annotation) in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in get_args(annotation))
    if get_origin(annotation) is list:
        return f"list[{type_name(get_args(annotation)[0])}]"
    return "None" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


def bounds_of(field: FieldInfo) -> str:
    """The bounds a field declares, e.g. ``>= 1`` or ``> 0, < 1`` (empty when none)."""
    signs = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    return ", ".join(f"{sign} {_number(getattr(m, key))}" for m in field.metadata for key, sign in signs.items() if hasattr(m, key))


def bounds_in_words(field: FieldInfo) -> str:
    """The bounds a field declares as the error messages say them: ``greater than 0 and less than 1``."""
    return " and ".join(f"{words} {_number(getattr(m, key))}" for m in field.metadata for key, words in _BOUNDS.values()
                        if getattr(m, key, None) is not None)


def flag(cls: type, name: str) -> str:
    """How a user sets option ``name`` of config class ``cls``: ``--set z_dim=VALUE``, ``--lr``."""
    return getattr(cls, "option_flag", "--set {name}=VALUE").format(name=name, dashed=name.replace("_", "-"))


def config_error(cls: type, exc: ValidationError, given: dict[str, Any]) -> ConfigError:
    """The first thing pydantic refused, as one line: the option and its value, what it must be, how to fix it."""
    error = exc.errors(include_url=False)[0]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, ConfigError):  # a rule between fields said it in its own words
        return cause
    if cause is not None:
        return ConfigError(str(cause))
    loc, kind = error["loc"], error["type"]
    fields = option_fields(cls)
    name = str(loc[0]) if loc else ""
    if kind in ("unexpected_keyword_argument", "unexpected_positional_argument") or name not in fields:
        unknown = name or repr(error["input"])
        return ConfigError(f"option {unknown} does not apply to {cls.__name__}; it takes {', '.join(fields)}")
    field = fields[name]
    value = given.get(name, error["input"])
    wanted = _wanted(kind, error, field)
    if len(loc) > 1 and isinstance(loc[1], int):  # one item of a list
        wanted = f"a list of whole numbers, each {wanted}" if kind in _BOUNDS else f"a list of {_plural(wanted)}"
    default = default_of(field)
    fix = flag(cls, name) + (" or leave it out" if default is None else f" (default: {shown(default)})")
    return ConfigError(f"option {name} must be {wanted}, got {value!r}; fix {fix}")


def _wanted(kind: str, error: dict, field: FieldInfo) -> str:
    if kind in _BOUNDS:  # every bound of the field said at once: "greater than 0 and less than 1"
        key, words = _BOUNDS[kind]
        if not any(hasattr(m, key) for m in field.metadata):  # the bound of a list's items
            return f"{words} {_number(error['ctx'][key])}"
        return bounds_in_words(field)
    if kind == "too_short":
        return f"a list of at least {error['ctx']['min_length']} item(s)"
    if kind == "literal_error":
        choices = next((get_args(a) for a in _members(field.annotation) if get_origin(a) is Literal), ())
        return "one of " + ", ".join(map(str, choices))
    if kind == "list_type":
        example = default_of(field) or [500, 500]
        return f"a list such as {json.dumps(example).replace(' ', '')}"
    wanted = _WANTED.get(kind, error["msg"][0].lower() + error["msg"][1:])
    return wanted + (" or null" if type(None) in _members(field.annotation) else "")


def _number(bound: Any) -> Any:
    return int(bound) if isinstance(bound, float) and bound.is_integer() else bound


def _members(annotation: Any) -> tuple:
    return get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)


def _plural(wanted: str) -> str:
    return {"a whole number": "whole numbers", "a number": "numbers"}.get(wanted, wanted)


def shown(value: Any) -> str:
    """A value as ``--set`` takes it: text as it is, anything else as JSON (``null``, ``true``, ``[256, 256]``)."""
    return value if isinstance(value, str) and value else json.dumps(value)

