"""BigQuery's REST encoding of results: Arrow schemas -> ``schema.fields``, rows -> ``{f: [{v}]}``.

Values go out as BigQuery sends them: INTEGER, FLOAT, NUMERIC as strings, BOOLEAN as
``"true"``/``"false"``, TIMESTAMP as int64 microseconds (``useInt64Timestamp``), an ISO 8601
string (``timestampOutputFormat=ISO8601_STRING``) or else float seconds, DATETIME/DATE/TIME
in ISO form, BYTES base64, JSON as its text, RECORD as ``{"f": [...]}``, REPEATED as
``[{"v": ...}]`` and NULL as ``null``.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final

import orjson
import pyarrow as pa

__all__ = ["TimestampFormat", "encode_rows", "schema_fields"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)
_Encoder = Callable[[Any], Any]


@dataclass(frozen=True)
class TimestampFormat:
    """How TIMESTAMP values are written (``formatOptions`` of the request)."""

    int64: bool = True
    iso: bool = False


def schema_fields(schema: pa.Schema) -> list[dict[str, Any]]:
    """BigQuery ``TableFieldSchema`` JSON of an Arrow result schema.

    Raises:
        ValueError: a column type BigQuery cannot return (an array of arrays).
    """
    return [_field(field.name, field.type) for field in schema]


def _field(name: str, arrow: pa.DataType, mode: str = "NULLABLE") -> dict[str, Any]:
    if pa.types.is_list(arrow) or pa.types.is_large_list(arrow) or pa.types.is_map(arrow):
        if mode == "REPEATED":
            raise ValueError(f"column {name!r} is an array of arrays, which BigQuery cannot return")
        inner = _map_entry(arrow) if pa.types.is_map(arrow) else arrow.value_type
        return _field(name, inner, "REPEATED")
    if pa.types.is_struct(arrow):
        return {
            "name": name,
            "type": "RECORD",
            "mode": mode,
            "fields": [_field(f.name, f.type) for f in arrow.fields],
        }
    return {"name": name, "type": _scalar_type(arrow), "mode": mode}


def _map_entry(arrow: pa.MapType) -> pa.DataType:
    return pa.struct([pa.field("key", arrow.key_type), pa.field("value", arrow.item_type)])


def _scalar_type(arrow: pa.DataType) -> str:
    if isinstance(arrow, pa.JsonType):
        return "JSON"
    if pa.types.is_boolean(arrow):
        return "BOOLEAN"
    if pa.types.is_integer(arrow) or pa.types.is_null(arrow):
        return "INTEGER"
    if pa.types.is_floating(arrow):
        return "FLOAT"
    if pa.types.is_decimal(arrow):
        return (
            "NUMERIC" if arrow.scale <= 9 and arrow.precision - arrow.scale <= 29 else "BIGNUMERIC"
        )
    if pa.types.is_timestamp(arrow):
        return "TIMESTAMP" if arrow.tz else "DATETIME"
    if pa.types.is_date(arrow):
        return "DATE"
    if pa.types.is_time(arrow):
        return "TIME"
    if pa.types.is_binary(arrow) or pa.types.is_large_binary(arrow):
        return "BYTES"
    if pa.types.is_interval(arrow) or pa.types.is_duration(arrow):
        return "INTERVAL"
    return "STRING"


def encode_rows(
    table: pa.Table, fields: list[dict[str, Any]], timestamps: TimestampFormat = TimestampFormat()
) -> Iterator[bytes]:
    """Each row of ``table`` as the JSON bytes of one ``{"f": [{"v": ...}, ...]}`` object."""
    encoders = [_encoder(field, timestamps) for field in fields]
    dumps = orjson.dumps
    for batch in table.to_batches(max_chunksize=4096):
        for row in zip(*(column.to_pylist() for column in batch.columns), strict=True):
            yield dumps(
                {"f": [{"v": enc(value)} for enc, value in zip(encoders, row, strict=True)]}
            )


def _encoder(field: dict[str, Any], timestamps: TimestampFormat) -> _Encoder:
    kind = field["type"]
    if kind == "RECORD":
        subs = [_encoder(sub, timestamps) for sub in field["fields"]]
        names = [sub["name"] for sub in field["fields"]]

        def record(value: Any) -> Any:
            if isinstance(value, tuple):  # a MAP entry: (key, value)
                value = dict(zip(names, value, strict=True))
            return {"f": [{"v": enc(value.get(n))} for enc, n in zip(subs, names, strict=True)]}

        scalar: _Encoder = record
    elif kind == "TIMESTAMP":
        scalar = _timestamp_encoder(timestamps)
    else:
        scalar = _SCALARS.get(kind, _text)

    def nullable(value: Any) -> Any:
        return None if value is None else scalar(value)

    if field.get("mode") == "REPEATED":

        def repeated(value: Any) -> Any:
            if value is None:
                return []
            return [{"v": nullable(item)} for item in value]

        return repeated
    return nullable


def _timestamp_encoder(timestamps: TimestampFormat) -> _Encoder:
    def micros(value: datetime) -> int:
        return (value - _EPOCH) // _US

    if timestamps.iso:
        return lambda v: v.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if timestamps.int64:
        return lambda v: str(micros(v))
    return lambda v: f"{micros(v) / 1_000_000:.6f}"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(float(value))


def _numeric(value: Decimal) -> str:
    text = format(value.normalize(), "f") if value == value.to_integral() else format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _datetime(value: datetime) -> str:
    return value.replace(tzinfo=None).isoformat(timespec="microseconds")


def _date(value: date) -> str:
    return value.isoformat()


def _time(value: time) -> str:
    return value.isoformat(timespec="microseconds" if value.microsecond else "seconds")


def _bytes(value: bytes) -> str:
    return base64.b64encode(value).decode()


def _interval(value: Any) -> str:
    """BigQuery's canonical interval text ``Y-M D H:M:S[.F]``."""
    if isinstance(value, timedelta):
        months, days, nanos = 0, value.days, (value.seconds * 10**6 + value.microseconds) * 1000
    else:
        months, days, nanos = value.months, value.days, value.nanoseconds
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    seconds, frac = divmod(nanos, 10**9)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    years, month = divmod(abs(months), 12)
    msign = "-" if months < 0 else ""
    fraction = f".{frac:09d}".rstrip("0") if frac else ""
    return f"{msign}{years}-{month} {days} {sign}{hours}:{minutes}:{secs}{fraction}"


_SCALARS: Final[dict[str, _Encoder]] = {
    "INTEGER": lambda v: str(int(v)),
    "FLOAT": _float,
    "BOOLEAN": lambda v: "true" if v else "false",
    "NUMERIC": _numeric,
    "BIGNUMERIC": _numeric,
    "DATETIME": _datetime,
    "DATE": _date,
    "TIME": _time,
    "BYTES": _bytes,
    "INTERVAL": _interval,
    "JSON": _text,
    "STRING": _text,
}
