"""The few TOML values a policy file holds, written by hand (tomllib reads; the standard library has no writer)."""

from __future__ import annotations

TomlValue = str | int | bool | list[str] | list[dict[str, "TomlValue"]]


def toml_value(value: TomlValue) -> str:
    """Emit one value of our schema (strings, ints, bools, lists of strings, lists of inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _toml_string(value)
    return "[" + ", ".join(_toml_item(v) for v in value) + "]"


def _toml_item(value: str | dict[str, TomlValue]) -> str:
    if isinstance(value, str):
        return _toml_string(value)
    return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'
