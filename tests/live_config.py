"""Settings files for live-source tests: TOML written from dicts, as an operator would write them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path


def toml_value(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)  # strings, numbers, booleans: JSON spells them as TOML does


def toml(config: Mapping[str, object]) -> str:
    return "".join(f"{key} = {toml_value(value)}\n" for key, value in config.items())


def write_config(
    path: Path,
    *,
    routes: Sequence[Mapping[str, object]],
    upstreams: Mapping[str, Mapping[str, object]],
    **scalars: object,
) -> Path:
    """``path`` holding the scalars, ``live_routes`` and one ``[upstreams.NAME]`` table per upstream."""
    text = toml(scalars) + toml({"live_routes": list(routes)})
    text += "".join(f"[upstreams.{name}]\n" + toml(table) for name, table in upstreams.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
