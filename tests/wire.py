"""Statements a test's database connection sends to PostgreSQL, counted at the wire (libpq's
protocol trace), so raw psycopg cursors (the binary inserts) are counted too."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import psycopg
from django.db import connection


@contextmanager
def wire_statements() -> Iterator[list[str]]:
    """Statements the client runs on PostgreSQL inside the block: one per Query message (the
    simple protocol) and one per Execute (the extended one, where a prepared statement is
    executed again without a new Parse). Each is listed by the start of its text."""
    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    statements: list[str] = []
    with tempfile.NamedTemporaryFile("w+", delete=False) as trace:
        path = trace.name
    fd = os.open(path, os.O_WRONLY)
    try:
        pgconn.trace(fd)
        pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE)
        yield statements
    finally:
        pgconn.untrace()
        os.close(fd)
        with open(path, encoding="utf-8", errors="replace") as handle:
            statements.extend(_statements(handle))
        os.unlink(path)


_QUOTED = re.compile(r'\s*"((?:[^"]|"")*)"')


def _statements(trace: Iterable[str]) -> Iterator[str]:
    texts: dict[str, str] = {}  # prepared statement name -> text ("" is the unnamed one)
    bound = ""
    for line in trace:
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 3 or parts[0] != "F":
            continue
        kind, fields = parts[2].split(" ")[0], parts[3] if len(parts) > 3 else ""
        if kind == "Query":
            yield fields[:80]
        elif kind == "Parse" and (name := _QUOTED.match(fields)):
            texts[name.group(1)] = fields[name.end() :][:80]
        elif kind == "Bind":
            portal = _QUOTED.match(fields)
            statement = _QUOTED.match(fields, portal.end()) if portal else None
            bound = texts.get(statement.group(1), "?") if statement else "?"
        elif kind == "Execute":
            yield bound
