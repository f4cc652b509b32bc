"""Query parameters: BigQuery ``queryParameters`` JSON (or Python values) -> typed SQL literals.

Parameters are bound in the syntax tree, never pasted into the SQL text: ``@name`` and ``?``
nodes are replaced by literals of the parameter's type (``CAST('...' AS TIMESTAMP)`` etc.),
which sqlglot then writes in DuckDB's dialect. Names match case-insensitively, as in BigQuery.
Supported types: STRING, INT64, FLOAT64, BOOL, NUMERIC, BIGNUMERIC, TIMESTAMP, DATETIME, DATE,
TIME, JSON, BYTES and ARRAYs of them; STRUCT parameters are refused.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, Final

from sqlglot import exp

from uvs_analysis.errors import BadInputError

__all__ = ["Params", "bind_parameters", "to_query_parameters"]

#: Named Python values, or BigQuery ``queryParameters`` JSON, or nothing.
Params = Mapping[str, object] | Sequence[Mapping[str, Any]] | None

_ALIASES: Final = {
    "INTEGER": "INT64",
    "FLOAT": "FLOAT64",
    "BOOLEAN": "BOOL",
    "DECIMAL": "NUMERIC",
    "BIGDECIMAL": "BIGNUMERIC",
}
_CASTS: Final = {
    "INT64": "INT64",
    "FLOAT64": "FLOAT64",
    "NUMERIC": "DECIMAL(38, 9)",
    "BIGNUMERIC": "DECIMAL(38, 18)",
    "TIMESTAMP": "TIMESTAMP",
    "DATETIME": "DATETIME",
    "DATE": "DATE",
    "TIME": "TIME",
    "JSON": "JSON",
    "STRING": "STRING",
    "BOOL": "BOOL",
    "BYTES": "BYTES",
}


def _error(what: str) -> BadInputError:
    from uvs_analysis.bqstandin.engine import QueryError

    return QueryError(what)


def to_query_parameters(params: Params) -> list[dict[str, Any]]:
    """Normalize ``params`` to BigQuery ``queryParameters`` JSON.

    A mapping of Python values is typed by value: bool BOOL, int INT64, float FLOAT64, str
    STRING, Decimal NUMERIC, aware datetime TIMESTAMP, naive datetime DATETIME, date DATE,
    time TIME, bytes BYTES, list/tuple ARRAY (of its first element's type; STRING if empty),
    None a NULL STRING.

    Raises:
        QueryError: a value of a type BigQuery parameters cannot carry.
    """
    if params is None:
        return []
    if isinstance(params, Mapping):
        return [{"name": str(name), **_typed(value)} for name, value in params.items()]
    if isinstance(params, str | bytes):
        raise _error("query parameters must be a mapping or a list of queryParameters")
    return [dict(item) for item in params]


def _typed(value: object) -> dict[str, Any]:
    kind = _kind_of(value)
    if kind == "ARRAY":
        items = list(value)  # type: ignore[call-overload]
        inner = _kind_of(items[0]) if items else "STRING"
        return {
            "parameterType": {"type": "ARRAY", "arrayType": {"type": inner}},
            "parameterValue": {"arrayValues": [{"value": _text(v)} for v in items]},
        }
    return {"parameterType": {"type": kind}, "parameterValue": {"value": _text(value)}}


def _kind_of(value: object) -> str:
    if value is None or isinstance(value, str):
        return "STRING"
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    if isinstance(value, Decimal):
        return "NUMERIC"
    if isinstance(value, datetime):
        return "DATETIME" if value.tzinfo is None else "TIMESTAMP"
    if isinstance(value, date):
        return "DATE"
    if isinstance(value, time):
        return "TIME"
    if isinstance(value, bytes):
        return "BYTES"
    if isinstance(value, list | tuple):
        return "ARRAY"
    raise _error(f"a query parameter of Python type {type(value).__name__} is not supported")


def _text(value: object) -> object:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).isoformat()
    if isinstance(value, date | time | Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise _error(f"a query parameter of Python type {type(value).__name__} is not supported")


def bind_parameters(tree: exp.Expr, params: Sequence[Mapping[str, Any]]) -> None:
    """Replace ``@name`` and ``?`` in ``tree`` (in place) by the parameters' typed literals.

    Raises:
        QueryError: a parameter used in the SQL is not given, or a value does not fit its type.
    """
    named = {str(p["name"]).lower(): p for p in params if p.get("name")}
    positional = [p for p in params if not p.get("name")]
    used = 0
    for node in list(tree.find_all(exp.Parameter, exp.Placeholder, bfs=False)):
        if isinstance(node, exp.Placeholder) and node.this is None:
            if used >= len(positional):
                raise _error(f"Query has more ? placeholders than the {len(positional)} given")
            param = positional[used]
            used += 1
            label = f"positional parameter {used}"
        else:
            name = node.name
            if name.lower() not in named:
                raise _error(f"Query parameter '{name}' not found")
            param = named[name.lower()]
            label = f"parameter @{name}"
        node.replace(_literal(param, label))


def _literal(param: Mapping[str, Any], label: str) -> exp.Expr:
    ptype = param.get("parameterType") or {}
    pvalue = param.get("parameterValue") or {}
    kind = _base(ptype.get("type"), label)
    if kind == "ARRAY":
        inner = ptype.get("arrayType") or {}
        inner_kind = _base(inner.get("type"), label)
        if inner_kind in ("ARRAY", "STRUCT"):
            raise _error(f"{label}: ARRAY<{inner_kind}> parameters are not supported")
        values = pvalue.get("arrayValues")
        if values is None and "arrayValues" not in pvalue and pvalue.get("value") is None:
            return exp.cast(exp.Null(), _array_type(inner_kind), dialect="bigquery")
        items = [_scalar(inner_kind, (v or {}).get("value"), label) for v in values or []]
        array = exp.Array(expressions=items)
        return exp.cast(array, _array_type(inner_kind), dialect="bigquery")
    if kind == "STRUCT":
        raise _error(f"{label}: STRUCT parameters are not supported by the stand-in")
    return _scalar(kind, pvalue.get("value"), label)


def _base(kind: object, label: str) -> str:
    text = str(kind or "").upper()
    text = _ALIASES.get(text, text)
    if text not in _CASTS and text not in ("ARRAY", "STRUCT"):
        raise _error(f"{label}: parameter type {kind!r} is not supported")
    return text


def _array_type(inner: str) -> exp.DataType:
    return exp.DataType.build(f"ARRAY<{_CASTS[inner]}>", dialect="bigquery")


def _scalar(kind: str, value: object, label: str) -> exp.Expr:
    to = exp.DataType.build(_CASTS[kind], dialect="bigquery")
    if value is None:
        return exp.cast(exp.Null(), to, dialect="bigquery")
    try:
        literal = _value_literal(kind, value)
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise _error(f"{label}: {value!r} is not a valid {kind} value ({exc})") from exc
    if kind in ("STRING", "BOOL"):
        return literal
    return exp.cast(literal, to, dialect="bigquery")


def _value_literal(kind: str, value: object) -> exp.Expr:
    text = value if isinstance(value, str) else str(value)
    if kind == "STRING":
        return exp.Literal.string(text)
    if kind == "BOOL":
        if isinstance(value, bool):
            return exp.Boolean(this=value)
        if text.lower() not in ("true", "false"):
            raise ValueError("expected true or false")
        return exp.Boolean(this=text.lower() == "true")
    if kind == "INT64":
        number = int(text)
        if not -(2**63) <= number < 2**63:
            raise ValueError("out of the INT64 range")
        return exp.Literal.number(number)
    if kind == "FLOAT64":
        number_f = float(text)
        if math.isfinite(number_f):
            return exp.Literal.number(repr(number_f))
        return exp.Literal.string(text)
    if kind in ("NUMERIC", "BIGNUMERIC"):
        return exp.Literal.string(str(Decimal(text)))
    if kind == "TIMESTAMP":
        stamp = datetime.fromisoformat(text.strip().replace(" UTC", "+00:00"))
        stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
        return exp.Literal.string(stamp.isoformat(sep=" "))
    if kind == "DATETIME":
        return exp.Literal.string(datetime.fromisoformat(text).isoformat(sep=" "))
    if kind == "DATE":
        return exp.Literal.string(date.fromisoformat(text).isoformat())
    if kind == "TIME":
        return exp.Literal.string(time.fromisoformat(text).isoformat())
    if kind == "BYTES":
        base64.b64decode(text, validate=True)
        decoded: exp.Expr = exp.func("FROM_BASE64", exp.Literal.string(text), dialect="bigquery")
        return decoded
    return exp.Literal.string(text)  # JSON
