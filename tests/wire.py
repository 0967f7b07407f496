"""Statements a test's database connection sends to PostgreSQL, counted at the wire (libpq's
protocol trace), so raw psycopg cursors (the binary inserts) are counted too."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.db import connection


@contextmanager
def wire_statements() -> Iterator[list[str]]:
    """Statements the client sends to PostgreSQL inside the block (Query or Execute messages)."""
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
            for line in handle:
                parts = line.split("\t")
                if (
                    len(parts) >= 3
                    and parts[0] == "F"
                    and parts[2].split(" ")[0] in {"Query", "Parse"}
                ):
                    statements.append(parts[3][:80] if len(parts) > 3 else parts[2])
        os.unlink(path)
