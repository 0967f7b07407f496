"""Database helpers for the hot paths."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any, TypeVar

import orjson
from django.db import connection, models


@contextmanager
def binary_cursor() -> Iterator[Any]:
    """A psycopg cursor on Django's connection (same transaction) that binds parameters
    server-side, as binary arrays (``%b``) need; Django's own cursors bind client-side.
    Errors come out as Django's (IntegrityError, OperationalError, ...), like any query's, so
    callers retry them the same way."""
    import psycopg

    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        yield cursor


M = TypeVar("M", bound=models.Model)


def fetch_all(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Rows of one SELECT. On PostgreSQL through :func:`binary_cursor`: the statement is bound
    server-side, so psycopg prepares a statement text it has run 5 times on the connection
    (no parsing and planning after that); Django's cursors bind client-side and never do."""
    if connection.vendor == "postgresql":
        with binary_cursor() as cursor:
            # Results in binary too: psycopg's C loaders read them, where the text timestamps
            # go through the Python loader Django registers (~10% of a batch's Python).
            cursor.execute(sql, params, binary=True)
            return cursor.fetchall()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def in_list(column: str, sql_type: str) -> str:
    """SQL for ``column IN <a list>``, the list bound as ONE parameter (:func:`list_param`):
    ``= ANY(%s::<type>[])`` on PostgreSQL, so the statement's text is the same for any
    number of values (and gets prepared); ``json_each`` on SQLite."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s::{sql_type}[])"
    return f"{column} IN (SELECT value FROM json_each(%s))"


def list_param(values: Iterable[Any]) -> Any:
    """The parameter of an :func:`in_list` condition."""
    if connection.vendor == "postgresql":
        return list(values)
    return json_text(list(values))


@cache
def _select_parts(model: type[models.Model], vendor: str) -> tuple[str, list[str], list[Any]]:
    meta = model._meta
    fields = list(meta.concrete_fields)
    # JSON as text, which JSONField's converter parses (psycopg would parse binary jsonb).
    columns = ", ".join(
        f'"{meta.db_table}"."{field.column}"'
        + ("::text" if vendor == "postgresql" and field.get_internal_type() == "JSONField" else "")
        for field in fields
    )
    converters = []
    for position, field in enumerate(fields):
        col = field.get_col(meta.db_table)
        functions = connection.ops.get_db_converters(col) + field.get_db_converters(connection)
        if functions:
            converters.append((position, functions, col))
    return columns, [field.attname for field in fields], converters


def select_rows(
    model: type[M], where: str, params: Sequence[Any], *, lock: bool = False
) -> list[M]:
    """The instances of ``model`` matching the SQL condition ``where``, in primary key order,
    and with ``lock`` row-locked ``FOR NO KEY UPDATE`` (on PostgreSQL; SQLite's IMMEDIATE
    transactions serialise writers). Raw SQL through :func:`fetch_all` for the per-request
    lookups of the ingestion path: building and compiling a queryset costs ~0.5 ms of Python,
    more than the indexed lookup itself (docs/benchmarks.md). Instances are what the ORM
    would build: every concrete field, with the fields' database converters applied."""
    meta = model._meta
    columns, names, converters = _select_parts(model, connection.vendor)
    sql = f'SELECT {columns} FROM "{meta.db_table}" WHERE {where} ORDER BY "{meta.pk.column}"'
    if lock and connection.features.has_select_for_update:
        sql += " FOR NO KEY UPDATE"
    instances = []
    for row in fetch_all(sql, params):
        values = list(row)
        for position, functions, col in converters:
            for function in functions:
                values[position] = function(values[position], col, connection)
        instances.append(model.from_db(connection.alias, names, values))
    return instances


def json_text(value: Any) -> str:
    """JSON for PostgreSQL: orjson, or the standard library for what orjson refuses (integers
    past 64 bits, which JSONB hands back for numbers such as 1e30)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value)


_ARRAY_TYPES = {
    "AutoField": "bigint",
    "BigAutoField": "bigint",
    "BigIntegerField": "bigint",
    "IntegerField": "bigint",
    "PositiveIntegerField": "bigint",
    "PositiveBigIntegerField": "bigint",
    "SmallIntegerField": "bigint",
    "ForeignKey": "bigint",
    "BooleanField": "boolean",
    "CharField": "text",
    "TextField": "text",
    "JSONField": "text",
    "DateTimeField": "timestamptz",
    "DateField": "date",
    "UUIDField": "uuid",
}


def _column_values(field: Any, rows: Sequence[models.Model], *, add: bool) -> list[Any]:
    """One column of ``rows`` as a list for a binary array parameter."""
    internal = field.get_internal_type()
    values: list[Any] = []
    for row in rows:
        value = field.pre_save(row, add) if add else getattr(row, field.attname)
        if field.is_relation and field.is_cached(row):
            # Assigned before the related row had its pk (inserted in the same batch).
            related = field.get_cached_value(row)
            value = related.pk if related is not None else None
        if internal == "JSONField":
            value = None if value is None else json_text(value)
        values.append(value)
    return values


def rows_insert(model: type[models.Model], rows: Sequence[models.Model]) -> None:
    """Insert ``rows`` in one statement and set their primary keys.

    On PostgreSQL: ``INSERT .. SELECT FROM unnest(<one binary array per column>) RETURNING
    id``; ``bulk_create`` sends every value as text (PERFORMANCE.md: about 4x slower) and
    costs more Python per row. Defaults, ``auto_now_add`` and related objects saved after
    being assigned are handled as ``bulk_create`` does. Elsewhere (SQLite) it is
    ``bulk_create``.
    """
    if not rows:
        return
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(rows)
        return
    meta = model._meta
    fields = [field for field in meta.concrete_fields if not field.primary_key]
    arrays = [_column_values(field, rows, add=True) for field in fields]
    casts = [f"%b::{_ARRAY_TYPES[field.get_internal_type()]}[]" for field in fields]
    sources = [
        f"c{n}::jsonb" if field.get_internal_type() == "JSONField" else f"c{n}"
        for n, field in enumerate(fields)
    ]
    names = ", ".join(f"c{n}" for n in range(len(fields)))
    columns = ", ".join(f'"{field.column}"' for field in fields)
    sql = (
        f'INSERT INTO "{meta.db_table}" ({columns}) '
        f"SELECT {', '.join(sources)} FROM unnest({', '.join(casts)}) AS v({names}) "
        f'RETURNING "{meta.pk.column}"'
    )
    with binary_cursor() as cursor:
        cursor.execute(sql, arrays)
        ids = [row[0] for row in cursor.fetchall()]
    # RETURNING follows the order of unnest's rows (as bulk_create relies on too).
    for row, pk in zip(rows, ids, strict=True):
        row.pk = pk
        row._state.adding = False
        row._state.db = connection.alias


def rows_update(model: type[models.Model], rows: Sequence[models.Model], fields: list[str]) -> None:
    """Write ``fields`` of ``rows`` (each a different value) in one UPDATE.

    On PostgreSQL: ``UPDATE .. FROM unnest(<one binary array per column>)``; Django's
    ``bulk_update`` builds a ``CASE WHEN`` per row and field instead, which costs about a
    second of Python for 100 rows of 10 fields (docs/benchmarks.md). Elsewhere (SQLite) it is
    ``bulk_update``.
    """
    if not rows:
        return
    if connection.vendor != "postgresql":
        model._default_manager.bulk_update(rows, fields)
        return
    meta = model._meta
    columns: list[Any] = [meta.get_field(name) for name in fields]
    arrays: list[list[Any]] = [[row.pk for row in rows]]
    assignments, casts = [], ["%b::bigint[]"]
    for position, field in enumerate(columns, start=1):
        internal = field.get_internal_type()
        arrays.append(_column_values(field, rows, add=False))
        casts.append(f"%b::{_ARRAY_TYPES[internal]}[]")
        source = f"v.c{position}::jsonb" if internal == "JSONField" else f"v.c{position}"
        assignments.append(f'"{field.column}" = {source}')
    names = ", ".join(["id", *(f"c{n}" for n in range(1, len(columns) + 1))])
    sql = (
        f'UPDATE "{meta.db_table}" SET {", ".join(assignments)} '
        f"FROM unnest({', '.join(casts)}) AS v({names}) "
        f'WHERE "{meta.db_table}"."{meta.pk.column}" = v.id'
    )
    with binary_cursor() as cursor:
        cursor.execute(sql, arrays)


def fillfactor_operation(table: str, percent: int) -> Any:
    """A migration operation leaving ``100 - percent`` % of each heap page of ``table`` free
    (PostgreSQL only), so an update that changes no indexed column stays on its page (a HOT
    update: no new index entries, no new page dirtied). For tables updated on every batch."""
    from django.db import migrations

    def forward(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"ALTER TABLE {table} SET (fillfactor = {int(percent)})")

    def backward(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"ALTER TABLE {table} RESET (fillfactor)")

    return migrations.RunPython(forward, backward)
