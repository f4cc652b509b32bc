"""BigQuery-dialect SQL over DuckDB tables: parse, resolve tables, bind parameters, run, estimate.

A query is parsed with sqlglot (``read="bigquery"``); ``project.dataset.table``,
``dataset.table`` and bare ``table`` references (bare ones need a default dataset) are mapped to
the DuckDB tables; named (``@name``) and positional (``?``) parameters become typed literals in
the syntax tree; the tree is written as DuckDB SQL and run on a cursor of its own (so threads
may query at once). Only queries (SELECT, WITH, set operations) run: the stand-in is read-only.

The bytes a query processes are estimated as BigQuery bills them: the stored size of every
top-level column of a table the query reads (a STRUCT or JSON column counts whole), each column
once, measured when the table was built (:func:`~uvs_analysis.bqstandin.alllogs.column_bytes`).
The columns read come from sqlglot's scope analysis after qualifying the query and pushing
projections down (so ``SELECT *`` in a CTE costs only what the outer query uses; ``COUNT(*)``
costs nothing).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel, ParseError, SqlglotError
from sqlglot.optimizer.pushdown_projections import pushdown_projections
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import traverse_scope

from uvs_analysis.bqstandin.alllogs import ALLLOGS_SCHEMA, column_bytes
from uvs_analysis.bqstandin.params import Params, bind_parameters, to_query_parameters
from uvs_analysis.errors import BadInputError

__all__ = ["BigQueryEngine", "DryRun", "QueryError", "QueryResult"]

_BQ_TYPES: Final = {
    "VARCHAR": "STRING",
    "BIGINT": "INT64",
    "TIMESTAMPTZ": "TIMESTAMP",
    "BOOLEAN": "BOOL",
    "DOUBLE": "FLOAT64",
    "JSON": "JSON",
}


class QueryError(BadInputError):
    """A query BigQuery would refuse; carries the HTTP status and BigQuery's error reason.

    Attributes:
        status: 400 (``invalidQuery``, ``bytesBilledLimitExceeded``), 404 (``notFound``).
        reason: BigQuery's ``errors[].reason``.
    """

    def __init__(
        self,
        what: str,
        *,
        status: int = 400,
        reason: str = "invalidQuery",
        expected: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.status = status
        self.reason = reason
        super().__init__(what, expected=expected, hint=hint)


@dataclass(frozen=True)
class DryRun:
    """What a query would do without running it.

    Attributes:
        total_bytes_processed: the estimate (see the module docstring).
        schema: the result's Arrow schema (JSON columns as ``pa.json_()``).
        columns: the ``table.column`` names read, sorted.
    """

    total_bytes_processed: int
    schema: pa.Schema
    columns: tuple[str, ...]


@dataclass(frozen=True)
class QueryResult:
    """A query's rows and its bytes estimate."""

    table: pa.Table
    total_bytes_processed: int
    columns: tuple[str, ...]


class BigQueryEngine:
    """Runs BigQuery-dialect SQL against DuckDB tables named like BigQuery tables.

    Args:
        con: the DuckDB connection holding the tables.
        project: the BigQuery project id the tables live in.
        dataset: the dataset id.
        tables: BigQuery table id -> DuckDB table name (default: ``_AllLogs`` -> ``_AllLogs``).
        schemas: BigQuery table id -> its columns as DuckDB types (a dict for a STRUCT,
            ``("LIST", element)`` for an array); tables not named have the ``_AllLogs`` columns.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        project: str,
        dataset: str,
        tables: Mapping[str, str] | None = None,
        schemas: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.con = con
        self.project = project
        self.dataset = dataset
        self.tables = dict(tables or {"_AllLogs": "_AllLogs"})
        self._lock = threading.Lock()
        self.schemas = {bq: (schemas or {}).get(bq, ALLLOGS_SCHEMA) for bq in self.tables}
        self._sizes = {
            bq: {name.lower(): n for name, n in column_bytes(con, duck).items()}
            for bq, duck in self.tables.items()
        }
        self._schema: dict[str, object] = {
            project: {
                dataset: {
                    bq: {name: _bq_type(kind) for name, kind in schema.items()}
                    for bq, schema in self.schemas.items()
                }
            }
        }

    @property
    def table_ids(self) -> tuple[str, ...]:
        """The served tables as ``project.dataset.table``."""
        return tuple(f"{self.project}.{self.dataset}.{name}" for name in self.tables)

    def table_bytes(self, table: str = "_AllLogs") -> int:
        """The stored size of a whole table (all its columns)."""
        return sum(self._sizes[table].values())

    def table_rows(self, table: str = "_AllLogs") -> int:
        """The number of rows of a served table."""
        row = self._fetch(f'SELECT count(*) AS n FROM "{self.tables[table]}"').column(0)
        return int(row[0].as_py())

    def run(
        self, sql: str, params: Params = None, *, default_dataset: str | None = None
    ) -> pa.Table:
        """Run ``sql`` and return its rows (see :meth:`execute`)."""
        return self.execute(sql, params, default_dataset=default_dataset).table

    def execute(
        self,
        sql: str,
        params: Params = None,
        *,
        default_dataset: str | None = None,
        max_bytes_billed: int | None = None,
    ) -> QueryResult:
        """Run ``sql`` with ``params`` and return its rows and bytes estimate.

        Args:
            sql: one BigQuery-dialect query.
            params: a mapping of named values (Python types), or BigQuery ``queryParameters``
                JSON (a list of ``{"name", "parameterType", "parameterValue"}``; without names
                they are positional).
            default_dataset: ``project.dataset`` or ``dataset`` for unqualified table names.
            max_bytes_billed: refuse (``bytesBilledLimitExceeded``) a query whose estimate is
                larger, before running it.

        Raises:
            QueryError: the SQL does not parse, is not a query, names an unknown table or
                parameter, exceeds ``max_bytes_billed``, or fails in DuckDB.
        """
        tree, duck_sql, notes = self._prepare(sql, params, default_dataset)
        columns, total = self._estimate(tree)
        if max_bytes_billed is not None and total > max_bytes_billed:
            raise QueryError(
                f"Query exceeded limit for bytes billed: {max_bytes_billed}. "
                f"{total} or higher required.",
                reason="bytesBilledLimitExceeded",
            )
        table = self._fetch(duck_sql, notes)
        return QueryResult(table, total, columns)

    def dry_run(
        self, sql: str, params: Params = None, *, default_dataset: str | None = None
    ) -> DryRun:
        """Validate ``sql`` and estimate its bytes without reading the rows (args as ``execute``).

        Raises:
            QueryError: as :meth:`execute`.
        """
        tree, duck_sql, notes = self._prepare(sql, params, default_dataset)
        columns, total = self._estimate(tree)
        schema = self._fetch(f"SELECT * FROM ({duck_sql}) AS uvs_dry_run LIMIT 0", notes).schema
        return DryRun(total, schema, columns)

    # Private

    def _prepare(
        self, sql: str, params: Params, default_dataset: str | None
    ) -> tuple[exp.Expr, str, tuple[str, ...]]:
        """The resolved BigQuery tree (for the estimate), the DuckDB SQL and translation notes."""
        tree = _parse(sql)
        bind_parameters(tree, to_query_parameters(params))
        self._resolve_tables(tree, default_dataset)
        duck = tree.copy()
        for table in list(duck.find_all(exp.Table)):
            bq_name = table.meta.get("uvs_table")
            if bq_name is not None:
                alias = table.args.get("alias")
                table.replace(
                    exp.Table(
                        this=exp.to_identifier(self.tables[bq_name], quoted=True),
                        alias=alias.copy() if alias is not None else None,
                    )
                )
        _name_anonymous_columns(duck)
        _group_operands(duck)
        _json_values(duck)
        generator = Dialect.get_or_raise("duckdb").generator(unsupported_level=ErrorLevel.IGNORE)
        try:
            duck_sql = generator.generate(duck)
        except SqlglotError as exc:
            raise QueryError(f"Query cannot be run: {exc}") from exc
        return tree, duck_sql, tuple(generator.unsupported_messages)

    def _resolve_tables(self, tree: exp.Expr, default_dataset: str | None) -> None:
        """Check every table reference and mark ours with their BigQuery table id."""
        ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        default_project, default_ds = self.project, None
        if default_dataset:
            parts = default_dataset.replace(":", ".").split(".")
            default_ds = parts[-1]
            if len(parts) > 1:
                default_project = parts[-2]
        for table in tree.find_all(exp.Table):
            if not isinstance(table.this, exp.Identifier):
                continue  # UNNEST(...) and table functions
            name, dataset, project = table.name, table.db, table.catalog
            if not dataset and not project and name.lower() in ctes:
                continue
            if not dataset:
                if default_ds is None:
                    raise QueryError(
                        f'Table "{name}" must be qualified with a dataset (e.g. dataset.table).'
                    )
                dataset, project = default_ds, project or default_project
            project = project or self.project
            if project != self.project or dataset != self.dataset:
                raise QueryError(
                    f"Not found: Dataset {project}:{dataset} was not found in location US",
                    status=404,
                    reason="notFound",
                    hint=f"this stand-in serves {self.project}.{self.dataset} only",
                )
            if name not in self.tables:
                raise QueryError(
                    f"Not found: Table {project}:{dataset}.{name} was not found in location US",
                    status=404,
                    reason="notFound",
                    hint="served tables: " + ", ".join(self.table_ids),
                )
            table.meta["uvs_table"] = name
            table.set("catalog", exp.to_identifier(project))
            table.set("db", exp.to_identifier(dataset))

    def _estimate(self, tree: exp.Expr) -> tuple[tuple[str, ...], int]:
        """The ``table.column`` names the query reads and their stored bytes."""
        used: set[tuple[str, str]] = set()
        try:
            qualified = pushdown_projections(
                qualify(tree.copy(), schema=self._schema, dialect="bigquery")
            )
            for scope in traverse_scope(qualified):
                for column in scope.columns:
                    source = scope.sources.get(column.table)
                    if isinstance(source, exp.Table) and source.name in self.tables:
                        used.add((source.name, column.name.lower()))
        except SqlglotError:
            used = self._named_columns(tree)
        sizes = self._sizes
        used = {(t, c) for t, c in used if c in sizes[t]}
        total = sum(sizes[t][c] for t, c in used)
        return tuple(sorted(f"{t}.{c}" for t, c in used)), total

    def _named_columns(self, tree: exp.Expr) -> set[tuple[str, str]]:
        """Fallback: every top-level column named anywhere (all of them for a ``*``)."""
        tables = {t.meta["uvs_table"] for t in tree.find_all(exp.Table) if "uvs_table" in t.meta}
        names = {part.name.lower() for col in tree.find_all(exp.Column) for part in col.parts}
        star = any(True for _ in tree.find_all(exp.Star))
        return {(t, c) for t in tables for c in self._sizes[t] if star or c in names}

    def _fetch(self, duck_sql: str, notes: tuple[str, ...] = ()) -> pa.Table:
        with self._lock:
            cursor = self.con.cursor()
        try:
            relation = cursor.sql(duck_sql)
            types = relation.types
            table: pa.Table = relation.to_arrow_table()
        except duckdb.Error as exc:
            message = _duck_message(exc)
            if notes:
                message += (
                    " (not supported by the stand-in's translation: " + "; ".join(notes) + ")"
                )
            raise QueryError(message) from exc
        finally:
            cursor.close()
        return _as_bigquery(table, types)


def _as_bigquery(table: pa.Table, types: list[Any]) -> pa.Table:
    """The result with BigQuery's types: JSON marked, wide integers as int64, enums as text."""
    fields = [
        pa.field(field.name, _arrow_type(field.type, duck), field.nullable)
        for field, duck in zip(table.schema, types, strict=True)
    ]
    schema = pa.schema(fields)
    if schema == table.schema:
        return table
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise QueryError(f"Query error: a result column cannot be returned ({exc})") from exc


def _arrow_type(arrow: pa.DataType, duck: Any) -> pa.DataType:
    kind = str(duck.id)
    if str(duck) == "JSON":
        return pa.json_()
    if kind in ("hugeint", "uhugeint", "ubigint", "uinteger"):
        return pa.int64()
    if kind in ("enum", "uuid"):
        return pa.string()
    if kind == "struct" and pa.types.is_struct(arrow):
        children = dict(duck.children)
        return pa.struct(
            [
                pa.field(f.name, _arrow_type(f.type, children[f.name]), f.nullable)
                for f in arrow.fields
            ]
        )
    if kind == "list" and (pa.types.is_list(arrow) or pa.types.is_large_list(arrow)):
        return pa.list_(_arrow_type(arrow.value_type, duck.children[0][1]))
    return arrow


def _bq_type(kind: Any) -> str:
    if isinstance(kind, Mapping):
        return "STRUCT<" + ", ".join(f"{n} {_bq_type(v)}" for n, v in kind.items()) + ">"
    if isinstance(kind, tuple):  # ("LIST", element)
        return f"ARRAY<{_bq_type(kind[1])}>"
    return _BQ_TYPES[str(kind)]


def _parse(sql: str) -> exp.Expr:
    if not isinstance(sql, str) or not sql.strip():
        raise QueryError("Syntax error: the query is empty", expected="one SELECT statement")
    try:
        trees = [t for t in sqlglot.parse(sql, read="bigquery") if t is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f" at [{first.get('line')}:{first.get('col')}]" if first.get("line") else ""
        detail = first.get("description") or str(exc).splitlines()[0]
        near = str(first.get("highlight") or "").strip()
        near_text = f" near '{near}'" if near else ""
        raise QueryError(f"Syntax error: {detail}{near_text}{where}") from exc
    except SqlglotError as exc:
        raise QueryError(f"Syntax error: {str(exc).splitlines()[0]}") from exc
    if len(trees) != 1:
        raise QueryError(
            f"the request holds {len(trees)} statements; this stand-in runs exactly one query",
            expected="one SELECT statement",
        )
    tree: exp.Expr = trees[0]
    if not isinstance(tree, exp.Query):
        kind = tree.key.upper() if tree.key != "command" else str(tree.this).upper()
        raise QueryError(
            f"{kind} statements are not allowed: the stand-in is read-only",
            expected="a SELECT (or WITH ... SELECT) query",
        )
    return tree


def _name_anonymous_columns(tree: exp.Expr) -> None:
    """Name unaliased result expressions ``f0_``, ``f1_``... as BigQuery does."""
    if not isinstance(tree, exp.Query):
        return
    anonymous = 0
    for node in list(tree.selects):
        if isinstance(node, exp.Alias | exp.Column | exp.Star | exp.Dot):
            continue
        node.replace(exp.alias_(node.copy(), f"f{anonymous}_"))
        anonymous += 1


def _duck_message(exc: duckdb.Error) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return "Query error: " + first.rstrip("!")


def _json_values(tree: exp.Expr) -> None:
    """Keep BigQuery's ``TO_JSON`` a JSON value: sqlglot writes it as DuckDB's ``to_json``
    cast to text (as for ``TO_JSON_STRING``), which a later ``TO_JSON_STRING`` would quote
    again as a string."""
    for node in list(tree.find_all(exp.JSONFormat)):
        if node.args.get("to_json"):
            node.replace(exp.Anonymous(this="to_json", expressions=[node.this.copy()]))


def _group_operands(tree: exp.Expr) -> None:
    """Parenthesize compound operands of ``DIV``: DuckDB writes it as the ``//`` operator,
    which binds tighter than ``+``/``-``, and sqlglot drops the grouping the call implied."""
    for node in list(tree.find_all(exp.IntDiv)):
        for key in ("this", "expression"):
            operand = node.args.get(key)
            if isinstance(operand, exp.Binary):
                node.set(key, exp.Paren(this=operand.copy()))
