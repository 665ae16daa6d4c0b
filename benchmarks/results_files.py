"""Reading the benchmarks' results files (the JSON they write to ``benchmarks/results/``) with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path


def read_results(path: str | Path, keys: tuple[str, ...]) -> dict:
    """The results file at ``path``, a JSON object holding ``keys``; raises ``ValueError`` with one line when it cannot
    be read or is another kind of file (each benchmark turns that into its own error exit)."""
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read results file {path}: {error}") from None
    if not isinstance(result, dict) or not set(keys) <= set(result):
        raise ValueError(f"{path} is not a results file of this benchmark (it has no {' and '.join(keys)})")
    return result
