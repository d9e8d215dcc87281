"""The JSON Schemas of every record (``schemas/*.json``): load them and validate documents.

The canonical files are ``<repo>/schemas/``. Installed packages carry a copy under
``engine/devtools/data/schemas/`` (package data; a unit test keeps it byte-identical), which is used
when no source checkout is found next to the package.

The hot path never calls this module: workers decode with msgspec (``engine.core.events``).
It is for tests, tools and consumers that want the contract checked.

One deliberate reading of the schemas: ``integer`` means a JSON number written without
fraction or exponent (``1700000000000``, not ``1.7e12``), and ``number`` must be finite,
which is what the msgspec decoders accept.
"""

from __future__ import annotations

import copy
import json
import math
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError
from jsonschema.validators import extend

from engine.errors import SchemaViolation, UnknownSchema

SCHEMA_NAMES = ("call.v1", "web.v1", "alert.v1", "deadletter.v1", "indicator.v1", "sighting.v1")

_PACKAGE_DIR = Path(__file__).resolve().parent


def schemas_dir(package_dir: Path = _PACKAGE_DIR) -> Path:
    """``<repo>/schemas`` in a source checkout, else the copy shipped inside the package."""
    checkout = package_dir.parents[1]
    canonical = checkout / "schemas"
    if (checkout / "pyproject.toml").is_file() and (canonical / "call.v1.json").is_file():
        return canonical
    return package_dir / "data" / "schemas"


def load_schema(name: str) -> dict[str, Any]:
    """The schema ``name`` (``call.v1``, ``alert.v1``...) as a dict (a fresh copy)."""
    return copy.deepcopy(_load(name))


def validate(name: str, doc: object) -> None:
    """Raise :class:`SchemaViolation` naming the offending field when ``doc`` breaks ``name``."""
    validator = _validator(name)
    errors = list(validator.iter_errors(doc))
    if not errors:
        return
    error = min(errors, key=_error_rank)
    raise SchemaViolation(name, _field_path(error), _reason(error))


def is_valid(name: str, doc: object) -> bool:
    return bool(_validator(name).is_valid(doc))


@cache
def _load(name: str) -> dict[str, Any]:
    if name not in SCHEMA_NAMES:
        raise UnknownSchema(f"unknown schema {name!r}; expected one of {', '.join(SCHEMA_NAMES)}")
    path = schemas_dir() / f"{name}.json"
    try:
        schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UnknownSchema(f"cannot read schema {name!r} from {path}: {exc}") from exc
    return schema


def _is_integer(_checker: object, instance: object) -> bool:
    # a float with an integral value (1.7e12) is not an integer here: msgspec rejects it too
    return isinstance(instance, int) and not isinstance(instance, bool)


def _is_number(_checker: object, instance: object) -> bool:
    if isinstance(instance, bool):
        return False
    return isinstance(instance, int) or (isinstance(instance, float) and math.isfinite(instance))


_ScamwatchValidator = extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine_many(
        {"integer": _is_integer, "number": _is_number}
    ),
)


@cache
def _validator(name: str) -> Any:
    schema = _load(name)
    Draft202012Validator.check_schema(schema)
    return _ScamwatchValidator(schema)


def _error_rank(error: ValidationError) -> tuple[int, int, str]:
    # the deepest error first, so the message names the most precise field
    return (-len(error.absolute_path), 0 if error.validator == "required" else 1, error.message)


def _field_path(error: ValidationError) -> str:
    parts = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [key for key in error.validator_value if key not in error.instance]
        if missing:
            parts.append(missing[0])
    elif error.validator == "anyOf" and error.context and not parts:
        # web.v1's "url or host" rule: name the alternatives ("url/host")
        fields = dict.fromkeys(_first_field(sub) for sub in error.context)
        parts.append("/".join(field for field in fields if field))
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path.lstrip(".") or "record"


def _first_field(error: ValidationError) -> str:
    if error.relative_path:
        return str(error.relative_path[0])
    if error.validator == "required" and isinstance(error.instance, dict):
        return next((str(k) for k in error.validator_value if k not in error.instance), "")
    return ""


def _reason(error: ValidationError) -> str:
    if error.validator == "anyOf" and not error.absolute_path and error.context:
        fields = [f for f in dict.fromkeys(_first_field(sub) for sub in error.context) if f]
        return f"one of {' or '.join(fields)} is required and must not be empty"
    description = error.schema.get("description") if isinstance(error.schema, dict) else None
    if error.validator == "anyOf" and description:
        return f"{_short(repr(error.instance))} is not valid: {description}"
    return _short(error.message)


def _short(text: str, limit: int = 200) -> str:
    # a record-level message would otherwise repeat the whole record
    return text if len(text) <= limit else text[: limit - 1] + "…"
