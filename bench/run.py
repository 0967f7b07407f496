"""The benchmark harness (bench/run.sh calls it once the dataset is in place).

Phases, in this order, on the dataset of bench/dataset.py:
1. servers: a throwaway redis-server, gunicorn (3 sync workers, bench.settings) and a Celery
   worker (2 processes), all on 127.0.0.1;
2. COPY: raw PostgreSQL COPY of rows like the ingested ones into events_event (the physical
   limit of one connection), deleted afterwards;
3. ingestion: /v1/batch of 100 Segment messages from 8 closed-loop clients, while three
   guests (10, 1,000 and 100,000 events, made with COPY) log in with /v1/identify and their
   merges are polled to done; web and Celery memory and the CPU of every party are sampled;
4. the naive DRF baseline (bench/naive_view.py) with the same clients, rows deleted after;
5. /v1/track at a fixed rate (open loop);
6. in-process: timeline_page() for the whale and the typical profile, first and deep pages;
   the admin's profile list and change pages; statements per request;
7. targets, printed and written to bench/results/.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

from bench import loadgen  # noqa: E402
from bench.loadgen import Http, MessageMaker, Pools, basic_auth  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = 1024


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- configuration -------------------------------------------------------------------------------


def config(quick: bool) -> dict[str, Any]:
    return {
        "mode": "quick" if quick else "full",
        "clients": 8,
        "batch_size": 100,
        "warmup_seconds": 3 if quick else 5,
        "ingest_seconds": 15 if quick else 60,
        "naive_seconds": 5 if quick else 20,
        # SDK-shaped batches (information, no target): 10 devices x 10 messages a request.
        "sdk_seconds": 10 if quick else 30,
        "sdk_per_device": 10,
        "track_rate": 200,
        "track_seconds": 10 if quick else 30,
        "copy_rows": 50_000 if quick else 200_000,
        "merge_sizes": [10, 1_000, 100_000],
        "merge_start_after": 2.0,
        "timeline_iterations": 100 if quick else 300,
        "timeline_deep_pages": 50,
        "admin_iterations": 5 if quick else 10,
        # The issue's setting; BENCH_GUNICORN_WORKERS tries another (docs/benchmarks.md).
        "gunicorn_workers": int(os.environ.get("BENCH_GUNICORN_WORKERS", "3")),
        "celery_concurrency": 2,
    }


# -- processes -----------------------------------------------------------------------------------


def children_of(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                kids.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return kids


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM in kB."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0


def child_ticks(pid: int) -> int:
    """CPU of the reaped children of ``pid`` (cutime + cstime)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return int(fields[13]) + int(fields[14])
    except (OSError, IndexError, ValueError):
        return 0


def parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def machine_ticks() -> tuple[int, int]:
    with open("/proc/stat") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


class Servers:
    """redis-server, gunicorn and a Celery worker, started and stopped by pid/process group."""

    def __init__(self, *, database_url: str, cfg: dict[str, Any], run_dir: Path) -> None:
        from tests.processes import ThrowawayRedis, free_port

        self.cfg, self.run_dir = cfg, run_dir
        self.redis = ThrowawayRedis(port=free_port())
        self.port = free_port()
        self.database_url = database_url
        self.gunicorn: subprocess.Popen[bytes] | None = None
        self.celery: Any = None
        self.env: dict[str, str] = {}

    def start(self) -> None:
        from tests.processes import CeleryProcess, wait_for_http

        self.redis.start()
        self.env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis.url,
            "CONN_MAX_AGE": "600",
            "DEBUG": "0",
            "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-only-secret-" + uuid.uuid4().hex,
            "SECURE_SSL_REDIRECT": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "LOG_LEVEL": "WARNING",
        }
        log_path = self.run_dir / "gunicorn.log"
        self.gunicorn = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "pushapp.wsgi:application",
                "--env",
                "DJANGO_SETTINGS_MODULE=bench.settings",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.cfg["gunicorn_workers"]),
                "--timeout",
                "120",
                "--error-logfile",
                str(log_path),
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_http(f"http://127.0.0.1:{self.port}/healthz", process=self.gunicorn)
        self.celery = CeleryProcess(
            self.env, beat=False, concurrency=self.cfg["celery_concurrency"]
        )
        self.celery.log_path = str(self.run_dir / "celery.log")
        self.celery.start()

    def web_pids(self) -> dict[str, list[int]]:
        assert self.gunicorn is not None
        return {"master": [self.gunicorn.pid], "workers": children_of(self.gunicorn.pid)}

    def celery_pids(self) -> dict[str, list[int]]:
        main = self.celery.process.pid if self.celery and self.celery.process else None
        if main is None:
            return {"main": [], "pool": []}
        return {"main": [main], "pool": children_of(main)}

    def stop(self) -> None:
        if self.gunicorn is not None and self.gunicorn.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.gunicorn.pid, signal.SIGTERM)
            try:
                self.gunicorn.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.gunicorn.pid, signal.SIGKILL)
                self.gunicorn.wait(timeout=10)
        if self.celery is not None:
            self.celery.kill()
        self.redis.stop()


class Sampler(threading.Thread):
    """Samples the RSS of the web and Celery processes every half second."""

    def __init__(self, servers: Servers) -> None:
        super().__init__(daemon=True)
        self.servers = servers
        self.stop_event = threading.Event()
        self.max_rss: dict[int, int] = {}
        self.role: dict[int, str] = {}

    def run(self) -> None:
        while not self.stop_event.is_set():
            for role, pids in self._pids().items():
                for pid in pids:
                    rss = proc_status(pid).get("VmRSS", 0)
                    self.role[pid] = role
                    self.max_rss[pid] = max(self.max_rss.get(pid, 0), rss)
            self.stop_event.wait(0.5)

    def _pids(self) -> dict[str, list[int]]:
        web, celery = self.servers.web_pids(), self.servers.celery_pids()
        return {
            "web master": web["master"],
            "web worker": web["workers"],
            "celery main": celery["main"],
            "celery pool": celery["pool"],
        }

    def peaks(self) -> dict[str, Any]:
        """Per role: the peak (VmHWM, the kernel's high-water mark) of its biggest process."""
        out: dict[str, Any] = {}
        for role, pids in self._pids().items():
            hwm = [proc_status(pid).get("VmHWM", 0) for pid in pids]
            sampled = [self.max_rss.get(pid, 0) for pid in pids]
            out[role] = {
                "processes": len(pids),
                "peak_mb": round(max(hwm, default=0) / PAGE_KB, 1),
                "sampled_max_rss_mb": round(max(sampled, default=0) / PAGE_KB, 1),
            }
        return out


class CpuWindow:
    """CPU used by each party over a window, in % of one core."""

    def __init__(self, servers: Servers, database: str) -> None:
        self.servers, self.database = servers, database

    def _pg_pids(self) -> dict[str, list[int]]:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid, datname, backend_type FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
            )
            rows = cursor.fetchall()
        out: dict[str, list[int]] = {
            "postgres (bench db)": [],
            "postgres (other dbs)": [],
            "postgres (background)": [],
        }
        for pid, datname, backend_type in rows:
            if datname == self.database:
                out["postgres (bench db)"].append(pid)
            elif datname:
                out["postgres (other dbs)"].append(pid)
            elif backend_type in ("checkpointer", "background writer", "walwriter"):
                out["postgres (background)"].append(pid)
        return out

    def snapshot(self) -> dict[str, Any]:
        web, celery = self.servers.web_pids(), self.servers.celery_pids()
        pg = self._pg_pids()
        groups = {
            "gunicorn": web["master"] + web["workers"],
            "celery": celery["main"] + celery["pool"],
            **pg,
        }
        ticks = {name: {pid: cpu_ticks(pid) for pid in pids} for name, pids in groups.items()}
        # All of PostgreSQL, parallel workers and closed backends included: the postmaster's
        # live children plus what it reaped (cutime/cstime).
        postmaster = next(
            (parent_of(pid) for pids in pg.values() for pid in pids if parent_of(pid)), None
        )
        pg_all = 0
        if postmaster:
            pg_all = child_ticks(postmaster) + sum(
                cpu_ticks(pid) for pid in children_of(postmaster)
            )
        times = os.times()
        return {
            "at": time.monotonic(),
            "groups": ticks,
            "pg_all": pg_all,
            "self": times.user + times.system,
            "machine": machine_ticks(),
        }

    @staticmethod
    def usage(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
        seconds = after["at"] - before["at"]
        out: dict[str, float] = {}
        for name, pids in after["groups"].items():
            old = before["groups"].get(name, {})
            used = sum(t - old.get(pid, 0) for pid, t in pids.items())
            out[name] = round(100.0 * used / CLK_TCK / seconds, 1)
        out["postgres (all processes, incl. parallel workers)"] = round(
            100.0 * (after["pg_all"] - before["pg_all"]) / CLK_TCK / seconds, 1
        )
        out["load generator (this process)"] = round(
            100.0 * (after["self"] - before["self"]) / seconds, 1
        )
        busy = after["machine"][0] - before["machine"][0]
        total = after["machine"][1] - before["machine"][1]
        out["machine busy (% of 2 cores x 100)"] = round(
            100.0 * busy / max(total, 1) * (os.cpu_count() or 2), 1
        )
        known = sum(
            out[k]
            for k in (
                "gunicorn",
                "celery",
                "postgres (all processes, incl. parallel workers)",
                "load generator (this process)",
            )
        )
        out["other (other engineers' jobs, kernel, redis)"] = round(
            out["machine busy (% of 2 cores x 100)"] - known, 1
        )
        return out


# -- data helpers --------------------------------------------------------------------------------


def psycopg_conninfo() -> str:
    from bench.dataset import conninfo_from_settings

    return conninfo_from_settings()


def load_pools(marker: dict[str, Any]) -> Pools:
    from django.db import connection

    info = marker["info"]
    log("loading id pools from the dataset")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM profiles_device WHERE app_id = %s", [info["app_id"]])
        devices = cursor.fetchone()[0]
        fraction = min(1.0, 250_000 / max(devices, 1))
        cursor.execute(
            "SELECT d.device_id, p.user_id, p.kind, d.id, p.id FROM profiles_device d "
            "JOIN profiles_profile p ON p.id = d.profile_id "
            "WHERE d.app_id = %s AND p.merged_into_id IS NULL AND p.id > 2 "
            "AND (p.user_id IS NULL OR p.user_id NOT LIKE 'bench-%%') AND random() < %s",
            [info["app_id"], fraction],
        )
        rows = cursor.fetchall()
        cursor.execute(
            "SELECT device_id FROM profiles_device WHERE profile_id = %s ORDER BY id LIMIT 1",
            [info["whale_profile_id"]],
        )
        whale_device = cursor.fetchone()
    identified = [(r[0], r[1]) for r in rows if r[2] == "identified"]
    guests = [r[0] for r in rows if r[2] == "guest"]
    user_ids = sorted({r[1] for r in rows if r[2] == "identified"})
    random.Random(1).shuffle(user_ids)
    return Pools(
        identified=identified,
        guests=guests,
        user_ids=user_ids,
        whale=(whale_device[0], info["whale_user_id"]) if whale_device else None,
        profile_ids=[r[4] for r in rows if r[2] == "identified"],
        device_ids=[r[3] for r in rows if r[2] == "identified"],
    )


def copy_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def event_copy_rows(
    pools: Pools, app_id: int, n: int, *, seed: int = 99
) -> tuple[list[str], list[str]]:
    """Rows like the ones ingestion writes (same JSON shapes), as COPY text chunks."""
    import orjson

    maker = MessageMaker(pools, seed=seed, client=0, clients=1)
    chunks: list[str] = []
    ids: list[str] = []
    parts: list[str] = []
    now = datetime.now(UTC)
    received = now.isoformat()
    for i in range(n):
        message = maker._base("track" if i % 2 else "screen", now)
        maker._payload(message)
        k = maker.rng.randrange(len(pools.profile_ids))
        name = message.get("event") or message.get("name", "")
        parts.append(
            f"{app_id}\t{pools.profile_ids[k]}\t{pools.device_ids[k]}\t{1_000_000 + k}\t"
            f"{message['type']}\t{name}\t{copy_escape(orjson.dumps(message['properties']).decode())}\t"
            f"{copy_escape(orjson.dumps(message['context']).decode())}\t{message['timestamp']}\t"
            f"{received}\t{message['messageId']}\tsdk\n"
        )
        ids.append(message["messageId"])
        if len(parts) == 2000:
            chunks.append("".join(parts))
            parts = []
    if parts:
        chunks.append("".join(parts))
    return chunks, ids


def delete_events(app_id: int, message_ids: list[str]) -> float:
    import psycopg

    started = time.monotonic()
    with psycopg.connect(psycopg_conninfo(), autocommit=True) as conn:
        for start in range(0, len(message_ids), 50_000):
            conn.execute(
                "DELETE FROM events_event WHERE app_id = %s AND message_id = ANY(%s)",
                [app_id, message_ids[start : start + 50_000]],
            )
    return time.monotonic() - started


WRITE_TABLES = (
    "events_event",
    "profiles_profile",
    "profiles_device",
    "sessions_timeline_session",
    "sessions_timeline_profiledailyactivity",
    "profiles_devicebinding",
    "profiles_profilemerge",
)


def write_counters() -> dict[str, Any]:
    """Rows inserted / updated / HOT-updated per table so far, and the WAL position."""
    import psycopg

    time.sleep(1.2)  # backends flush their table statistics at most once a second
    with psycopg.connect(psycopg_conninfo(), autocommit=True) as conn:
        tables = {
            name: [ins, upd, hot]
            for name, ins, upd, hot in conn.execute(
                "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                "WHERE relname = ANY(%s)",
                [list(WRITE_TABLES)],
            )
        }
        (lsn,) = conn.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"
        ).fetchone()  # type: ignore[misc]
    return {"tables": tables, "wal": int(lsn)}


def write_amplification(before: dict[str, Any], after: dict[str, Any], per: int) -> dict[str, Any]:
    """Rows written in each table and WAL bytes, per ``per`` (events stored, rows copied).
    Includes whatever else ran meanwhile (the merges during ingestion)."""
    per = max(per, 1)
    out: dict[str, Any] = {"wal_bytes_per_event": round((after["wal"] - before["wal"]) / per)}
    for name, (ins, upd, hot) in after["tables"].items():
        ins0, upd0, hot0 = before["tables"].get(name, [0, 0, 0])
        if ins - ins0 or upd - upd0:
            out[name] = {
                "inserted": round((ins - ins0) / per, 3),
                "updated": round((upd - upd0) / per, 3),
                "hot_share": round((hot - hot0) / (upd - upd0), 2) if upd - upd0 else None,
            }
    return out


class StatementProfile:
    """PostgreSQL's own time per statement over a window (``pg_stat_statements``, which the
    bench's cluster preloads): where the database's share of a request goes. Absent (None)
    when the server does not have the extension loaded (``BENCH_PG_PORT`` servers)."""

    def __init__(self) -> None:
        import psycopg

        with psycopg.connect(psycopg_conninfo(), autocommit=True) as conn:
            loaded = conn.execute(
                "SELECT 'pg_stat_statements' = ANY(string_to_array("
                "current_setting('shared_preload_libraries'), ', '))"
            ).fetchone()
            self.enabled = bool(loaded and loaded[0])
            if self.enabled:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def reset(self) -> None:
        if self.enabled:
            import psycopg

            with psycopg.connect(psycopg_conninfo(), autocommit=True) as conn:
                conn.execute("SELECT pg_stat_statements_reset()")

    def top(self, *, per: int, limit: int = 14) -> dict[str, Any] | None:
        """The statements of the window by total time, in ms per ``per`` (events, requests)."""
        if not self.enabled:
            return None
        import psycopg

        per = max(per, 1)
        with psycopg.connect(psycopg_conninfo(), autocommit=True) as conn:
            rows = conn.execute(
                "SELECT query, calls, total_exec_time + total_plan_time, rows, "
                "shared_blks_dirtied, wal_bytes, wal_fpi "
                "FROM pg_stat_statements WHERE dbid = "
                "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND query NOT LIKE '%%pg_stat_statements%%' ORDER BY 3 DESC"
            ).fetchall()
        total = sum(row[2] for row in rows) or 1.0
        return {
            "total_ms_per": round(total / per, 4),
            "statements": [
                {
                    "sql": " ".join(query.split())[:160],
                    "calls_per": round(calls / per, 3),
                    "ms_per": round(ms / per, 4),
                    "share": round(ms / total, 3),
                    "mean_ms": round(ms / max(calls, 1), 3),
                    "rows_per_call": round(n / max(calls, 1), 1),
                    "blocks_dirtied_per": round(dirtied / per, 3),
                    "wal_bytes_per": round(int(wal) / per),
                    "full_page_images_per": round(fpi / per, 3),
                }
                for query, calls, ms, n, dirtied, wal, fpi in rows[:limit]
            ],
        }


def measure_copy(pools: Pools, app_id: int, rows: int, repeats: int = 3) -> dict[str, Any]:
    """``repeats`` COPYs of ``rows / repeats`` rows each (one transaction each); the median
    rate is the figure (PERFORMANCE.md's method), the rows are deleted afterwards."""
    import psycopg

    columns = (
        "app_id, profile_id, device_id, session_id, type, name, properties, context, "
        "timestamp, received_at, message_id, source"
    )
    per_run = rows // repeats
    rates, all_ids = [], []
    writes_before = write_counters()
    for n in range(repeats):
        chunks, ids = event_copy_rows(pools, app_id, per_run, seed=100 + n)
        all_ids += ids
        with psycopg.connect(psycopg_conninfo()) as conn:
            started = time.monotonic()
            with (
                conn.cursor() as cursor,
                cursor.copy(f"COPY events_event ({columns}) FROM STDIN") as copy,
            ):
                for chunk in chunks:
                    copy.write(chunk)
            conn.commit()
            rates.append(per_run / (time.monotonic() - started))
    writes = write_amplification(writes_before, write_counters(), per_run * repeats)
    deleted_in = delete_events(app_id, all_ids)
    return {
        "rows": per_run * repeats,
        "runs_rows_per_s": [round(r) for r in rates],
        "rows_per_s": round(statistics.median(rates)),
        "how": f"COPY text, one connection, {repeats} transactions of {per_run:,} rows, "
        "all indexes in place, median",
        "delete_seconds": round(deleted_in, 1),
        "writes_per_row": writes,
    }


def copy_profile(
    conn: Any,
    *,
    app_id: int,
    user_id: str | None,
    n_events: int,
    span_days: float,
    session_len: int = 20,
) -> dict[str, Any]:
    """A profile with one device and ``n_events`` events in sessions, written with COPY and
    consistent (counters, sessions, daily activity), for the merge measurements."""
    import orjson

    from bench.dataset import event_kinds

    now = time.time() - 3600
    cur = conn.cursor()

    def nextvals(table: str, k: int) -> list[int]:
        cur.execute(
            f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, %s)",
            [k],
        )
        return [row[0] for row in cur.fetchall()]

    n_sessions = max(1, (n_events + session_len - 1) // session_len)
    sizes = [session_len] * (n_events // session_len)
    if n_events % session_len:
        sizes.append(n_events % session_len)
    step = 10.0
    span = span_days * 86400.0
    gap = max(span / n_sessions, (session_len * step) + 40 * 60)
    starts = [now - span + k * gap for k in range(n_sessions)]
    profile_id = nextvals("profiles_profile", 1)[0]
    device_pk = nextvals("profiles_device", 1)[0]
    session_ids = nextvals("sessions_timeline_session", n_sessions)
    anonymous_id = str(uuid.uuid4())
    fmt = lambda t: datetime.fromtimestamp(t, UTC).isoformat()  # noqa: E731
    first = starts[0]
    last = starts[-1] + (sizes[-1] - 1) * step
    kind = "identified" if user_id else "guest"
    attributes = orjson.dumps({"email": f"{user_id}@example.com"} if user_id else {}).decode()
    with cur.copy(
        "COPY profiles_profile (id, app_id, public_id, user_id, kind, attributes, attribute_times, "
        "first_seen_at, last_seen_at, event_count, session_count, created_at, updated_at) FROM STDIN"
    ) as copy:
        copy.write_row(
            (
                profile_id,
                app_id,
                uuid.uuid4(),
                user_id,
                kind,
                attributes,
                "{}",
                fmt(first),
                fmt(last),
                n_events,
                n_sessions,
                fmt(first),
                fmt(last),
            )
        )
    with cur.copy(
        "COPY profiles_device (id, app_id, device_id, profile_id, binding_changed_at, platform, "
        "os_name, os_version, model, manufacturer, app_version, app_build, sdk_name, sdk_version, "
        "locale, timezone, attributes, first_seen_at, last_seen_at, created_at, updated_at) FROM STDIN"
    ) as copy:
        copy.write_row(
            (
                device_pk,
                app_id,
                anonymous_id,
                profile_id,
                fmt(first),
                "ios",
                "iOS",
                "17.4",
                "iPhone15,2",
                "Apple",
                "4.2.1",
                "421",
                "analytics-ios",
                "4.1.8",
                "fr-FR",
                "Europe/Paris",
                "{}",
                fmt(first),
                fmt(last),
                fmt(first),
                fmt(last),
            )
        )
    with cur.copy(
        "COPY profiles_devicebinding (app_id, device_id, profile_id, bound_at, reason, created_at) FROM STDIN"
    ) as copy:
        copy.write_row((app_id, device_pk, profile_id, fmt(first), "first_seen", fmt(first)))
    context = orjson.dumps(loadgen.CONTEXTS[0]).decode()
    daily: dict[str, int] = {}
    session_rows = []
    with cur.copy(
        "COPY events_event (app_id, profile_id, device_id, session_id, type, name, properties, "
        "context, timestamp, received_at, message_id, source) FROM STDIN"
    ) as copy:
        buffer = io.StringIO()
        for sid, start, size in zip(session_ids, starts, sizes, strict=True):
            kinds = event_kinds(size, False, sid)
            screens = 0
            for j, (etype, name, _variant) in enumerate(kinds):
                t = start + j * step
                stamp = fmt(t)
                daily[stamp[:10]] = daily.get(stamp[:10], 0) + 1
                screens += etype == "screen"
                buffer.write(
                    f"{app_id}\t{profile_id}\t{device_pk}\t{sid}\t{etype}\t{name}\t"
                    f'{{"n": {j}, "path": "/bench/{sid}"}}\t{context}\t{stamp}\t{fmt(t + 1)}\t'
                    f"{uuid.uuid4()}\tsdk\n"
                )
            session_rows.append((sid, start, size, screens))
            if buffer.tell() > 1 << 20:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
        copy.write(buffer.getvalue())
    with cur.copy(
        "COPY sessions_timeline_session (id, app_id, profile_id, device_id, started_at, "
        "last_event_at, event_count, screen_count, app_version, created_at) FROM STDIN"
    ) as copy:
        for sid, start, size, screens in session_rows:
            copy.write_row(
                (
                    sid,
                    app_id,
                    profile_id,
                    device_pk,
                    fmt(start),
                    fmt(start + (size - 1) * step),
                    size,
                    screens,
                    "4.2.1",
                    fmt(start),
                )
            )
    with cur.copy(
        "COPY sessions_timeline_profiledailyactivity (profile_id, day, events) FROM STDIN"
    ) as copy:
        for day, count in daily.items():
            copy.write_row((profile_id, day, count))
    return {
        "profile_id": profile_id,
        "anonymous_id": anonymous_id,
        "user_id": user_id,
        "events": n_events,
    }


def make_merge_pairs(app_id: int, sizes: list[int], run_tag: str) -> list[dict[str, Any]]:
    import psycopg

    pairs = []
    with psycopg.connect(psycopg_conninfo()) as conn:
        for size in sizes:
            started = time.monotonic()
            target = copy_profile(
                conn,
                app_id=app_id,
                user_id=f"bench-target-{run_tag}-{size}",
                n_events=50,
                span_days=30,
            )
            guest = copy_profile(
                conn, app_id=app_id, user_id=None, n_events=size, span_days=min(90, 1 + size / 500)
            )
            conn.commit()
            pairs.append(
                {
                    "size": size,
                    "guest": guest,
                    "target": target,
                    "copy_seconds": round(time.monotonic() - started, 1),
                }
            )
        conn.execute("ANALYZE profiles_profile")
    return pairs


def drop_profiles(profile_ids: list[int]) -> None:
    import psycopg

    if not profile_ids:
        return
    with psycopg.connect(psycopg_conninfo()) as conn:
        ids = list(profile_ids)
        conn.execute(
            "DELETE FROM profiles_profilemerge WHERE source_id = ANY(%s) OR target_id = ANY(%s)",
            [ids, ids],
        )
        conn.execute(
            "DELETE FROM sessions_timeline_profiledailyactivity WHERE profile_id = ANY(%s)", [ids]
        )
        conn.execute("DELETE FROM events_event WHERE profile_id = ANY(%s)", [ids])
        conn.execute("DELETE FROM sessions_timeline_session WHERE profile_id = ANY(%s)", [ids])
        conn.execute(
            "DELETE FROM profiles_devicebinding WHERE profile_id = ANY(%s) OR device_id IN (SELECT id FROM profiles_device WHERE profile_id = ANY(%s))",
            [ids, ids],
        )
        conn.execute("DELETE FROM profiles_profilealias WHERE profile_id = ANY(%s)", [ids])
        conn.execute("DELETE FROM profiles_device WHERE profile_id = ANY(%s)", [ids])
        conn.execute("UPDATE profiles_profile SET merged_into_id = NULL WHERE id = ANY(%s)", [ids])
        conn.execute("DELETE FROM profiles_profile WHERE id = ANY(%s)", [ids])
        conn.commit()


def run_merges(
    pairs: list[dict[str, Any]],
    *,
    port: int,
    write_key: str,
    start_at: float,
    out: list[dict[str, Any]],
    timeout: float,
) -> None:
    import psycopg

    http = Http(port, headers=basic_auth(write_key))
    delay = start_at - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    with psycopg.connect(psycopg_conninfo(), autocommit=True) as conn:
        for pair in pairs:
            guest, target = pair["guest"], pair["target"]
            body = json.dumps(
                {
                    "anonymousId": guest["anonymous_id"],
                    "userId": target["user_id"],
                    "traits": {"plan": "pro"},
                    "timestamp": datetime.now(UTC).isoformat(),
                    "messageId": str(uuid.uuid4()),
                }
            ).encode()
            sent = time.monotonic()
            result: dict[str, Any] = {"size": pair["size"], "sent_at": sent}
            try:
                status, _ = http.post("/v1/identify", body)
            except Exception as error:
                status = 0
                result["error"] = repr(error)
            result["identify_status"] = status
            result["identify_ms"] = round((time.monotonic() - sent) * 1000, 1)
            row = None
            while time.monotonic() - sent < timeout and status == 200:
                row = conn.execute(
                    "SELECT status, extract(epoch from started_at - created_at), "
                    "extract(epoch from finished_at - started_at), counts FROM profiles_profilemerge "
                    "WHERE source_id = %s ORDER BY id DESC LIMIT 1",
                    [guest["profile_id"]],
                ).fetchone()
                if row is not None and row[0] in ("done", "failed"):
                    break
                time.sleep(0.05)
            result["done_at"] = time.monotonic()
            result["seconds_to_done"] = round(result["done_at"] - sent, 2)
            if row is not None:
                result["status"] = row[0]
                result["queue_wait_s"] = round(float(row[1] or 0), 2)
                result["run_s"] = round(float(row[2] or 0), 2) if row[2] is not None else None
                result["moved_events"] = (row[3] or {}).get("events")
            else:
                result["status"] = "not found"
            if result["status"] != "done":
                result["seconds_to_done"] = None
            left = conn.execute(
                "SELECT count(*) FROM events_event WHERE profile_id = %s", [guest["profile_id"]]
            ).fetchone()
            moved = left[0] if left else None
            result["events_left_on_guest"] = moved
            out.append(result)


MAINTAINED_TABLES = [
    "events_event",
    "sessions_timeline_session",
    "sessions_timeline_profiledailyactivity",
    "profiles_device",
    "profiles_devicebinding",
    "profiles_profile",
    "profiles_profilemerge",
]


def analyze_before_run() -> float:
    """The shared server runs with autovacuum off: refresh the planner's statistics (earlier
    runs added rows), as autovacuum would in production."""
    import psycopg

    started = time.monotonic()
    with psycopg.connect(psycopg_conninfo(), autocommit=True) as conn:
        for table in MAINTAINED_TABLES:
            conn.execute(f"ANALYZE {table}")
    return round(time.monotonic() - started, 1)


def prewarm() -> dict[str, Any]:
    """Read the hot relations (every index of the bulk tables, and the heaps of all but the
    events) with pg_prewarm: into shared_buffers when they fit in 3/4 of it (the bench's own
    cluster), else into the OS page cache, so a run does not depend on what earlier work left
    in either. The events heap (9 GB at full size) is left to the warm-up and to the
    measurements' own repetitions."""
    import psycopg

    started = time.monotonic()
    pages, mode = 0, "read"
    try:
        with psycopg.connect(psycopg_conninfo(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
            rows = conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
                "JOIN pg_class t ON t.oid = i.indrelid WHERE t.relname = ANY(%s) "
                "UNION ALL SELECT unnest(%s::text[])",
                [MAINTAINED_TABLES, [t for t in MAINTAINED_TABLES if t != "events_event"]],
            ).fetchall()
            relations = [relname for (relname,) in rows]
            size, buffers = conn.execute(  # type: ignore[misc]
                "SELECT sum(pg_relation_size(r::regclass)), "
                "(SELECT setting::bigint * 8192 FROM pg_settings WHERE name = 'shared_buffers') "
                "FROM unnest(%s::text[]) AS r",
                [relations],
            ).fetchone()
            mode = "buffer" if size * 4 <= buffers * 3 else "read"
            for relname in relations:
                row = conn.execute(
                    "SELECT pg_prewarm(%s::regclass, %s)", [relname, mode]
                ).fetchone()
                pages += int(row[0]) if row else 0
    except psycopg.Error as error:
        log(f"prewarm skipped: {error}")
    seconds = round(time.monotonic() - started, 1)
    where = "shared_buffers" if mode == "buffer" else "the page cache"
    log(f"prewarmed {pages * 8 // 1024:,} MB into {where} in {seconds} s")
    return {"mb": pages * 8 // 1024, "seconds": seconds, "into": where}


def settle() -> float:
    """Between phases: the kernel's write-back of what the previous phase wrote (the COPY
    measurement and its DELETE write ~1 GB), so that a phase does not pay for the one before
    it. No CHECKPOINT: it would start every phase at the beginning of a checkpoint cycle,
    where every first write of a page is a full-page image (16 kB of WAL per stored event
    instead of 6 kB, measured), the worst case rather than the steady state. Returns the
    seconds it took."""
    started = time.monotonic()
    os.sync()
    return round(time.monotonic() - started, 1)


def vacuum_after_run() -> dict[str, float]:
    """Clear what the run deleted and updated (COPY and naive rows, merges), outside every
    measurement, so the next run starts from a vacuumed dataset."""
    import psycopg

    out = {}
    with psycopg.connect(psycopg_conninfo(), autocommit=True) as conn:
        for table in MAINTAINED_TABLES:
            started = time.monotonic()
            conn.execute(f"VACUUM (ANALYZE) {table}")
            out[table] = round(time.monotonic() - started, 1)
    log(f"VACUUM ANALYZE after the run: {sum(out.values()):.0f} s")
    return out


def merge_backlog() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM profiles_profilemerge WHERE status IN ('pending', 'running')"
        )
        return int(cursor.fetchone()[0])


# -- phases --------------------------------------------------------------------------------------


def ingest_request(makers: list[MessageMaker], size: int, per_device: int = 1):
    def request(client: int, http: Http) -> tuple[int, int, int]:
        import orjson

        status, body = http.post("/v1/batch", makers[client].batch(size, per_device=per_device))
        if status == 200:
            data = orjson.loads(body)
            return status, int(data.get("accepted", 0)), int(data.get("rejected", 0))
        return status, 0, 0

    return request


def start_py_spy(
    servers: Servers, run_dir: Path, phase: str, seconds: float
) -> subprocess.Popen[bytes] | None:
    """py-spy the web workers for ``seconds`` (--profile), into pyspy-<phase>-web.txt."""
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        log("--profile: py-spy is not in the venv (pip install -e '.[dev]'); not profiling")
        return None
    if servers.gunicorn is None:
        return None
    return subprocess.Popen(
        [
            str(py_spy),
            "record",
            "--pid",
            str(servers.gunicorn.pid),
            "--subprocesses",
            "--rate",
            "50",
            "--duration",
            str(int(seconds)),
            "--format",
            "raw",
            "--nonblocking",
            "-o",
            str(run_dir / f"pyspy-{phase}-web.txt"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def phase_ingestion(
    servers: Servers,
    pools: Pools,
    marker: dict[str, Any],
    cfg: dict[str, Any],
    pairs: list[dict[str, Any]],
    database: str,
    profile: bool,
    run_dir: Path,
) -> dict[str, Any]:
    info = marker["info"]
    headers = basic_auth(info["write_key"])
    makers = [
        MessageMaker(pools, seed=int(time.time()), client=n, clients=cfg["clients"])
        for n in range(cfg["clients"])
    ]
    sampler = Sampler(servers)
    sampler.start()
    cpu = CpuWindow(servers, database)
    merges: list[dict[str, Any]] = []
    start = time.monotonic()
    merge_thread = threading.Thread(
        target=run_merges,
        kwargs={
            "pairs": pairs,
            "port": servers.port,
            "write_key": info["write_key"],
            "start_at": start + cfg["merge_start_after"],
            "out": merges,
            "timeout": 180.0,
        },
        daemon=True,
    )
    spy = start_py_spy(servers, run_dir, "ingestion", cfg["ingest_seconds"]) if profile else None
    writes_before = write_counters()
    statements = StatementProfile()
    statements.reset()
    before = cpu.snapshot()
    merge_thread.start()
    result = loadgen.closed_loop(
        clients=cfg["clients"],
        seconds=cfg["ingest_seconds"],
        request=ingest_request(makers, cfg["batch_size"]),
        make_http=lambda: Http(servers.port, headers=headers),
    )
    after = cpu.snapshot()
    end = time.monotonic()
    memory = sampler.peaks()
    backlog_at_end = merge_backlog()
    summary = result.summary()
    summary["cpu_percent_of_one_core"] = CpuWindow.usage(before, after)
    summary["writes_per_event"] = write_amplification(
        writes_before, write_counters(), summary["events"]
    )
    summary["postgresql_time_per_event"] = statements.top(per=summary["events"])
    summary["message_mix"] = {k: sum(m.counts[k] for m in makers) for k in makers[0].counts}
    summary["merge_backlog_at_end"] = backlog_at_end
    log(
        f"ingestion: {summary['events_per_s']:,.0f} events/s, p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms, errors {summary['errors']}"
    )
    merge_thread.join(timeout=240)
    for merge in merges:
        sent, done = merge.pop("sent_at"), merge.pop("done_at")
        merge["overlap_with_ingestion"] = round(
            max(0.0, min(done, end) - sent) / max(done - sent, 1e-9), 2
        )
    drain_started = time.monotonic()
    while merge_backlog() and time.monotonic() - drain_started < 120:
        time.sleep(0.5)
    summary["merge_backlog_drained_s"] = round(time.monotonic() - drain_started, 1)
    summary["merge_backlog_left"] = merge_backlog()
    if spy is not None:
        spy.wait(timeout=60)
    sampler.stop_event.set()
    return {"ingestion": summary, "merges": merges, "memory": memory}


def phase_sdk_shaped(
    servers: Servers, pools: Pools, marker: dict[str, Any], cfg: dict[str, Any], database: str
) -> dict[str, Any]:
    """/v1/batch as SDKs send it: each request holds a few devices with several messages
    each, so a profile, device and session are written once for many events. Information
    beside the issue's mix (one message per device), which is the worst case."""
    headers = basic_auth(marker["info"]["write_key"])
    makers = [
        MessageMaker(pools, seed=int(time.time()) + 17, client=n, clients=cfg["clients"])
        for n in range(cfg["clients"])
    ]
    cpu = CpuWindow(servers, database)
    before = cpu.snapshot()
    result = loadgen.closed_loop(
        clients=cfg["clients"],
        seconds=cfg["sdk_seconds"],
        request=ingest_request(makers, cfg["batch_size"], cfg["sdk_per_device"]),
        make_http=lambda: Http(servers.port, headers=headers),
    )
    summary = result.summary()
    summary["cpu_percent_of_one_core"] = CpuWindow.usage(before, cpu.snapshot())
    summary["message_mix"] = {k: sum(m.counts[k] for m in makers) for k in makers[0].counts}
    log(
        f"SDK-shaped ingestion: {summary['events_per_s']:,.0f} events/s, p50 {summary['p50_ms']} ms"
    )
    return summary


def phase_naive(
    servers: Servers, pools: Pools, marker: dict[str, Any], cfg: dict[str, Any]
) -> dict[str, Any]:
    app_id = marker["info"]["app_id"]
    makers = [
        MessageMaker(pools, seed=7, client=n, clients=cfg["clients"]) for n in range(cfg["clients"])
    ]
    created: list[str] = []
    lock = threading.Lock()

    def request(client: int, http: Http) -> tuple[int, int, int]:
        body, ids = makers[client].naive_events(cfg["batch_size"], app_id)
        status, _ = http.post("/bench/naive-events", body)
        if status == 201:
            with lock:
                created.extend(ids)
            return status, len(ids), 0
        return status, 0, 0

    result = loadgen.closed_loop(
        clients=cfg["clients"],
        seconds=cfg["naive_seconds"],
        request=request,
        make_http=lambda: Http(servers.port),
    )
    summary = result.summary()
    summary["delete_seconds"] = round(delete_events(app_id, created), 1)
    log(f"naive DRF: {summary['events_per_s']:,.0f} events/s, p50 {summary['p50_ms']} ms")
    return summary


def phase_track(
    servers: Servers,
    pools: Pools,
    marker: dict[str, Any],
    cfg: dict[str, Any],
    database: str,
    profile: bool,
    run_dir: Path,
) -> dict[str, Any]:
    headers = basic_auth(marker["info"]["write_key"])
    local = threading.local()

    def request(http: Http) -> int:
        maker = getattr(local, "maker", None)
        if maker is None:
            maker = local.maker = MessageMaker(
                pools, seed=random.randrange(10**6), client=0, clients=1, login_share=0.0
            )
        status, _ = http.post("/v1/track", maker.track())
        return status

    spy = start_py_spy(servers, run_dir, "track", cfg["track_seconds"]) if profile else None
    cpu = CpuWindow(servers, database)
    statements = StatementProfile()
    statements.reset()
    before = cpu.snapshot()
    result = loadgen.open_loop(
        rate=cfg["track_rate"],
        seconds=cfg["track_seconds"],
        request=request,
        make_http=lambda: Http(servers.port, headers=headers),
    )
    summary = result.summary()
    summary["cpu_percent_of_one_core"] = CpuWindow.usage(before, cpu.snapshot())
    summary["postgresql_time_per_request"] = statements.top(per=summary["requests"])
    if spy is not None:
        spy.wait(timeout=60)
    log(
        f"/v1/track at {cfg['track_rate']}/s: p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms"
    )
    return summary


def timings(fn: Any, iterations: int, max_seconds: float = 20.0) -> dict[str, Any]:
    """``iterations`` timed calls after a first (cold) one, stopping early after
    ``max_seconds`` (a slow page must not eat the run's time budget)."""
    return timings_interleaved({"only": fn}, iterations, max_seconds)["only"]


def timings_interleaved(
    fns: dict[str, Any], iterations: int, max_seconds: float = 20.0
) -> dict[str, dict[str, Any]]:
    """:func:`timings` of several calls taken in turns, so that a compared pair (the whale's
    and the typical profile's page) sees the same moments of a shared machine."""
    values: dict[str, list[float]] = {name: [] for name in fns}
    first: dict[str, float] = {}
    deadline = time.monotonic() + max_seconds * len(fns)
    for n in range(iterations + 1):
        if n > 5 and time.monotonic() > deadline:
            break
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            elapsed = time.perf_counter() - started
            if n == 0:
                first[name] = elapsed
            else:
                values[name].append(elapsed)
    out = {}
    for name, series in values.items():
        series.sort()
        out[name] = {
            "iterations": len(series),
            "first_ms": round(first.get(name, 0) * 1000, 2),
            "p50_ms": round(loadgen.percentile(series, 50) * 1000, 3),
            "p95_ms": round(loadgen.percentile(series, 95) * 1000, 3),
            "max_ms": round(series[-1] * 1000, 3) if series else 0,
        }
    return out


def count_queries(fn: Any) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        fn()
    slowest = sorted(
        captured.captured_queries, key=lambda q: float(q.get("time") or 0), reverse=True
    )[:3]
    return {
        "queries": len(captured.captured_queries),
        "slowest": [
            {"ms": round(float(q["time"]) * 1000, 1), "sql": q["sql"][:300]} for q in slowest
        ],
    }


def phase_timeline(marker: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any]:
    from profiles.models import Profile
    from sessions_timeline.models import Session
    from sessions_timeline.selectors import Cursor, timeline_page

    info = marker["info"]
    out: dict[str, Any] = {}
    pair = {
        "whale": Profile.objects.get(pk=info["whale_profile_id"]),
        "typical": Profile.objects.get(pk=info["typical_profile_id"]),
    }
    # The compared figure (first page, whale / typical) is timed in turns.
    first_pages = timings_interleaved(
        {
            label: (lambda p=profile: timeline_page(profile=p, limit=20))
            for label, profile in pair.items()
        },
        cfg["timeline_iterations"],
    )
    for label, profile in pair.items():
        entry: dict[str, Any] = {"events": profile.event_count, "sessions": profile.session_count}
        entry["first_page"] = first_pages[label]
        cursor = None
        depth = 0
        follow_started = time.perf_counter()
        for _ in range(cfg["timeline_deep_pages"]):
            page = timeline_page(profile=profile, cursor=cursor, limit=20)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
            depth += 1
        entry["follow_cursors_ms_per_page"] = round(
            (time.perf_counter() - follow_started) * 1000 / max(depth, 1), 3
        )
        entry["deep_page"] = {
            "depth": depth,
            **timings(
                lambda p=profile, c=cursor: timeline_page(profile=p, cursor=c, limit=20),
                cfg["timeline_iterations"],
            ),
        }
        starts = list(
            Session.objects.filter(profile=profile)
            .order_by("started_at")
            .values_list("started_at", flat=True)
        )
        if starts:
            median = Cursor(at=starts[len(starts) // 2], kind="session", pk=2**62).encode()
            entry["median_history_page"] = timings(
                lambda p=profile, c=median: timeline_page(profile=p, cursor=c, limit=20),
                cfg["timeline_iterations"],
            )
        entry["queries_first_page"] = count_queries(
            lambda p=profile: timeline_page(profile=p, limit=20)
        )
        out[label] = entry
        log(
            f"timeline {label}: first p95 {entry['first_page']['p95_ms']} ms, page {depth} p95 {entry['deep_page']['p95_ms']} ms"
        )
    return out


def phase_admin(marker: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse

    info = marker["info"]
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(
        username="bench-admin",
        defaults={"is_staff": True, "is_superuser": True, "email": "bench@example.com"},
    )
    if not (user.is_staff and user.is_superuser):
        user.is_staff = user.is_superuser = True
        user.save()
    client = Client()
    client.force_login(user)
    staff_client = Client()
    try:
        from profiles.models import App, AppMembership

        staff, _ = user_model.objects.get_or_create(
            username="bench-staff", defaults={"is_staff": True, "email": "staff@example.com"}
        )
        AppMembership.objects.get_or_create(
            app=App.objects.get(pk=info["app_id"]), user=staff, defaults={"role": "admin"}
        )
        staff_client.force_login(staff)
    except Exception as error:  # the admin's membership model may change: report, go on
        log(f"admin: no app-scoped staff user ({type(error).__name__}: {error})")
    clients = {"staff profile list": staff_client}
    pages = {
        "profile list": reverse("admin:profiles_profile_changelist"),
        "staff profile list": reverse("admin:profiles_profile_changelist"),
        "whale profile page": reverse(
            "admin:profiles_profile_change", args=[info["whale_profile_id"]]
        ),
        "typical profile page": reverse(
            "admin:profiles_profile_change", args=[info["typical_profile_id"]]
        ),
    }
    out: dict[str, Any] = {}
    for label, url in pages.items():
        entry: dict[str, Any] = {"url": url}
        browser = clients.get(label, client)
        try:
            response = browser.get(url)
            entry["status"] = response.status_code
            entry["bytes"] = len(response.content)
            if response.status_code == 200:
                entry.update(
                    timings(lambda u=url, b=browser: b.get(u), cfg["admin_iterations"], 60.0)
                )
                entry.update(count_queries(lambda u=url, b=browser: b.get(u)))
        except Exception as error:  # the admin is being rebuilt: report, do not stop the run
            entry["status"] = "error"
            entry["error"] = f"{type(error).__name__}: {error}"[:500]
        out[label] = entry
        log(
            f"admin {label}: {entry.get('status')} p50 {entry.get('p50_ms')} ms, {entry.get('queries')} queries"
        )
    return out


def phase_statements(pools: Pools, marker: dict[str, Any]) -> dict[str, Any]:
    """SQL statements per request, in-process: PushApp's /v1/batch (counted at the wire, as
    most of its statements go through psycopg cursors that Django's capture never sees) and
    the naive view."""
    from django.test import Client

    info = marker["info"]
    maker = MessageMaker(pools, seed=5, client=0, clients=1, new_share=0.05, login_share=0.0)
    client = Client()
    auth = basic_auth(info["write_key"])["Authorization"]
    from tests.wire import wire_statements

    body = maker.batch(100)
    with wire_statements() as wire:
        batch = count_queries(
            lambda: client.post(
                "/v1/batch", body, content_type="application/json", HTTP_AUTHORIZATION=auth
            )
        )
    naive_body, ids = maker.naive_events(100, info["app_id"])
    naive = count_queries(
        lambda: client.post("/bench/naive-events", naive_body, content_type="application/json")
    )
    delete_events(info["app_id"], ids)
    return {
        "pushapp_batch_100": len(wire),
        "pushapp_batch_100_django": batch["queries"],
        "naive_batch_100": naive["queries"],
        "pushapp_batch_slowest": batch["slowest"],
    }


# -- targets and reports -------------------------------------------------------------------------


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(name: str, value: Any, unit: str, target: str, ok: bool | None, note: str = "") -> None:
        rows.append(
            {
                "figure": name,
                "value": value,
                "unit": unit,
                "target": target,
                "pass": ok,
                "note": note,
            }
        )

    ing, copy, naive = (
        results.get("ingestion", {}),
        results.get("copy", {}),
        results.get("naive", {}),
    )
    eps = ing.get("events_per_s", 0)
    copy_rate = copy.get("rows_per_s", 0)
    if ing:
        add(
            "ingestion /v1/batch (100 msgs, 8 clients)",
            eps,
            "events/s",
            "-",
            None,
            f"p50 {ing.get('p50_ms')} ms, p99 {ing.get('p99_ms')} ms, errors {ing.get('errors')}",
        )
    if copy:
        add(
            "raw COPY into events_event (1 connection)",
            copy_rate,
            "rows/s",
            "-",
            None,
            f"PushApp = {eps / copy_rate:.3f} x COPY" if ing else "",
        )
    if ing and copy_rate:
        ratio = round(eps / copy_rate, 3)
        add("ingestion / COPY", ratio, "x", ">= 0.30", ratio >= 0.30)
    sdk = results.get("sdk", {})
    if sdk:
        sdk_eps = sdk.get("events_per_s", 0)
        cpu = sdk.get("cpu_percent_of_one_core", {})
        busy = cpu.get("machine busy (% of 2 cores x 100)", 0)
        per = results["meta"]["config"]["sdk_per_device"]
        devices = results["meta"]["config"]["batch_size"] // per
        add(
            f"ingestion, SDK-shaped batches ({devices} devices x {per} msgs)",
            sdk_eps,
            "events/s",
            "-",
            None,
            (f"{sdk_eps / copy_rate:.3f} x COPY; " if copy_rate else "")
            + f"p50 {sdk.get('p50_ms')} ms, p99 {sdk.get('p99_ms')} ms, errors {sdk.get('errors')}"
            + (f"; {busy * 10 / sdk_eps:.2f} ms of the box's CPU per event" if sdk_eps else ""),
        )
    if naive:
        naive_eps = naive.get("events_per_s", 0)
        add(
            "naive DRF ModelSerializer (same clients)",
            naive_eps,
            "events/s",
            "-",
            None,
            (f"PushApp = {eps / naive_eps:.1f} x naive; " if naive_eps and ing else "")
            + f"p50 {naive.get('p50_ms')} ms, p99 {naive.get('p99_ms')} ms",
        )
    if ing:
        add(
            "ingestion p50 / p99 request latency",
            f"{ing.get('p50_ms')} / {ing.get('p99_ms')}",
            "ms",
            "-",
            None,
        )
        add(
            "ingestion errors (non-2xx + failed requests)",
            ing.get("errors"),
            "requests",
            "0",
            ing.get("errors") == 0,
            f"rejected items {ing.get('rejected_items')}",
        )
    track = results.get("track", {})
    if track:
        rate = track.get("rate_target")
        add(f"/v1/track p50 at {rate}/s (open loop)", track.get("p50_ms"), "ms", "-", None)
        add(
            f"/v1/track p99 at {rate}/s (open loop)",
            track.get("p99_ms"),
            "ms",
            "<= 20",
            (track.get("p99_ms") or 1e9) <= 20 and track.get("errors") == 0,
            f"served {track.get('requests_per_s')} req/s, {track.get('statuses')}",
        )
    tl = results.get("timeline", {})
    whale, typical = tl.get("whale", {}), tl.get("typical", {})
    if whale and typical:
        w, t = whale["first_page"], typical["first_page"]
        add(
            "timeline first page, whale p50 / p95",
            f"{w['p50_ms']} / {w['p95_ms']}",
            "ms",
            "p95 <= 10",
            w["p95_ms"] <= 10,
            f"{whale['events']:,} events, {whale['sessions']:,} sessions",
        )
        add(
            "timeline first page, typical p50 / p95",
            f"{t['p50_ms']} / {t['p95_ms']}",
            "ms",
            "-",
            None,
            f"{typical['events']:,} events, {typical['sessions']:,} sessions",
        )
        ratio = round(w["p95_ms"] / t["p95_ms"], 2) if t["p95_ms"] else None
        add(
            "timeline first page p95 whale / typical",
            ratio,
            "x",
            "<= 1.5",
            ratio is not None and ratio <= 1.5,
        )
        wd, td = whale["deep_page"], typical["deep_page"]
        add(
            f"timeline deep page, whale (page {wd['depth']}) p50 / p95",
            f"{wd['p50_ms']} / {wd['p95_ms']}",
            "ms",
            "-",
            None,
        )
        add(
            f"timeline deep page, typical (page {td['depth']}) p50 / p95",
            f"{td['p50_ms']} / {td['p95_ms']}",
            "ms",
            "-",
            None,
        )
        if "median_history_page" in whale:
            m = whale["median_history_page"]
            add(
                "timeline page at the whale's median history p50 / p95",
                f"{m['p50_ms']} / {m['p95_ms']}",
                "ms",
                "-",
                None,
            )
    for merge in results.get("merges", []):
        size = merge["size"]
        target = "<= 10" if size == 100_000 else "-"
        ok = None
        if size == 100_000:
            ok = merge.get("seconds_to_done") is not None and merge["seconds_to_done"] <= 10
        add(
            f"merge of a {size:,}-event guest, while ingesting",
            merge.get("seconds_to_done"),
            "s",
            target,
            ok,
            f"identify request {merge.get('identify_ms')} ms, queued {merge.get('queue_wait_s')} s, "
            f"ran {merge.get('run_s')} s, overlap with ingestion {merge.get('overlap_with_ingestion')}, "
            f"status {merge.get('status')}",
        )
    admin = results.get("admin", {})
    names = {
        "profile list": "profile list, superuser (all apps)",
        "staff profile list": "profile list, staff of the app",
    }
    for label, limit in (
        ("profile list", 300),
        ("staff profile list", 300),
        ("whale profile page", 150),
        ("typical profile page", None),
    ):
        if label not in admin:
            continue
        entry = admin[label]
        good = entry.get("status") == 200
        value = entry.get("p50_ms") if good else f"status {entry.get('status')}"
        ok = None
        if limit is not None:
            ok = good and (entry.get("p50_ms") or 1e9) <= limit
        add(
            f"admin {names.get(label, label)} (p50)",
            value,
            "ms",
            f"<= {limit}" if limit else "-",
            ok,
            f"p95 {entry.get('p95_ms')} ms, {entry.get('queries')} queries"
            if good
            else entry.get("error", ""),
        )
    memory = results.get("memory", {})
    for role, label in (
        ("web worker", "web worker peak RSS"),
        ("celery pool", "Celery worker peak RSS"),
    ):
        if role not in memory:
            continue
        peak = memory[role].get("peak_mb")
        add(
            label,
            peak,
            "MB",
            "<= 250",
            peak is not None and peak <= 250,
            "during ingestion (VmHWM)",
        )
    return rows


def markdown(results: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    meta = results["meta"]
    lines = [
        f"# PushApp benchmarks: {meta['mode']} run",
        "",
        f"- date: {meta['date']}  commit: `{meta['commit']}`  command: `{meta['command']}`",
        f"- dataset: {meta['dataset']}",
        f"- machine: {meta['machine']}",
        f"- noise: {meta['noise']}",
        f"- uncommitted changes measured: {', '.join(meta.get('uncommitted_files') or []) or 'none'}",
        "",
        "| figure | value | unit | target | result | note |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        verdict = "" if row["pass"] is None else ("PASS" if row["pass"] else "MISS")
        value = (
            f"{row['value']:,}"
            if isinstance(row["value"], int | float) and not isinstance(row["value"], bool)
            else row["value"]
        )
        lines.append(
            f"| {row['figure']} | {value} | {row['unit']} | {row['target']} | {verdict} | {row['note']} |"
        )
    ing = results.get("ingestion", {})
    if ing:
        lines += ["", "CPU during ingestion (% of one core):", ""]
        for name, value in ing.get("cpu_percent_of_one_core", {}).items():
            lines.append(f"- {name}: {value}")
        lines += [
            "",
            "Rows written and WAL per stored event during ingestion (merges included) and per COPYed row:",
            "",
        ]
        for label, writes in (
            ("ingestion", ing.get("writes_per_event")),
            ("COPY", results.get("copy", {}).get("writes_per_row")),
        ):
            if writes:
                lines.append(f"- {label}: {json.dumps(writes)}")
        lines += [
            "",
            f"Message mix: {ing.get('message_mix')}; merge backlog at the end of ingestion: {ing.get('merge_backlog_at_end')}, drained in {ing.get('merge_backlog_drained_s')} s",
        ]
    for label, profile in (
        ("stored event during ingestion", ing.get("postgresql_time_per_event")),
        ("/v1/track request", results.get("track", {}).get("postgresql_time_per_request")),
    ):
        if profile:
            lines += [
                "",
                f"PostgreSQL's time per {label} (pg_stat_statements, execution and planning, "
                f"waits included): {profile['total_ms_per']} ms in all; the top statements:",
                "",
                "| ms per | share | calls per | mean ms | rows a call | blocks dirtied per | WAL bytes per | full-page images per | statement |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
            for q in profile["statements"]:
                sql = q["sql"].replace("|", "\\|")
                lines.append(
                    f"| {q['ms_per']} | {q['share']:.0%} | {q['calls_per']} | {q['mean_ms']} | "
                    f"{q['rows_per_call']} | {q['blocks_dirtied_per']} | {q['wal_bytes_per']} | "
                    f"{q['full_page_images_per']} | `{sql}` |"
                )
    if "statements" in results:
        st = results["statements"]
        lines += [
            "",
            f"SQL statements per request of 100 messages, in-process: PushApp /v1/batch "
            f"{st['pushapp_batch_100']} at the wire ({st.get('pushapp_batch_100_django')} of them "
            f"through Django's cursor, the rest through psycopg cursors bound server-side), naive "
            f"DRF {st['naive_batch_100']}. Slowest of PushApp's statements through Django's cursor:",
            "",
        ]
        for q in st.get("pushapp_batch_slowest", []):
            lines.append(f"- {q['ms']} ms: `{q['sql'][:140]}`")
    return "\n".join(lines) + "\n"


def print_table(rows: list[dict[str, Any]]) -> None:
    width = max(len(r["figure"]) for r in rows)
    print()
    print(f"{'figure':<{width}}  {'value':>14} {'unit':<9} {'target':<10} result")
    print("-" * (width + 50))
    for row in rows:
        verdict = "" if row["pass"] is None else ("PASS" if row["pass"] else "MISS")
        value = row["value"]
        text = (
            f"{value:,}"
            if isinstance(value, int | float) and not isinstance(value, bool)
            else str(value)
        )
        print(
            f"{row['figure']:<{width}}  {text:>14} {row['unit']:<9} {row['target']:<10} {verdict}"
        )
        if row["note"]:
            print(f"{'':<{width}}    {row['note']}")
    print()


def git_uncommitted() -> list[str]:
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout
        return [line[3:] for line in out.splitlines() if line.strip()]
    except OSError:
        return []


def git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return commit + ("+uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def noise_report(database: str) -> str:
    from django.db import connection

    load = os.getloadavg()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT datname, count(*) FROM pg_stat_activity WHERE datname IS NOT NULL AND datname <> %s "
            "AND state = 'active' AND pid <> pg_backend_pid() GROUP BY 1",
            [database],
        )
        active = cursor.fetchall()
    return f"load average {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}; active queries on other databases: {dict(active) or 'none'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the web workers during ingestion and /v1/track",
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated phases (copy,ingestion,sdk,naive,track,timeline,admin)",
    )
    parser.add_argument("--results", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    cfg = config(args.quick)
    only = set(filter(None, args.only.split(",")))

    def wanted(phase: str) -> bool:
        return not only or phase in only

    import django

    django.setup()
    from django.db import connection

    database = connection.settings_dict["NAME"]
    if not str(database).startswith("pushapp_bench"):
        print(f"refusing to benchmark {database!r}: not a pushapp_bench database", file=sys.stderr)
        return 2
    import psycopg

    from bench.dataset import marker_read

    with psycopg.connect(psycopg_conninfo(), autocommit=True) as conn:
        marker = marker_read(conn.cursor())
    if not marker or marker["state"] != "complete":
        print(
            "no complete dataset: run bench/dataset.py first (bench/run.sh does)", file=sys.stderr
        )
        return 2
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path(args.results) / f"{stamp}-{cfg['mode']}"
    run_dir.mkdir(parents=True, exist_ok=True)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT reltuples::bigint FROM pg_class WHERE relname = 'events_event'), "
            "(SELECT reltuples::bigint FROM pg_class WHERE relname = 'profiles_profile'), "
            "current_setting('shared_buffers'), current_setting('max_wal_size'), "
            "current_setting('checkpoint_timeout'), current_setting('autovacuum'), "
            "current_setting('synchronous_commit')"
        )
        events_now, profiles_now, shared_buffers, max_wal, cp_timeout, autovacuum, sync = (
            cursor.fetchone()
        )
    info = marker["info"]
    results: dict[str, Any] = {
        "meta": {
            "mode": cfg["mode"],
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": git_commit(),
            "command": " ".join(
                ["bash bench/run.sh", *(argv if argv is not None else sys.argv[1:])]
            ),
            "dataset": (
                f"{database}: ~{profiles_now:,} profiles, ~{events_now:,} events (built with "
                f"{info['profiles']:,} profiles, {info['events']:,} events incl. a whale of "
                f"{marker['params']['whale_events']:,}; {info['built_at']})"
            ),
            "machine": (
                f"{os.cpu_count()} cores; PostgreSQL shared_buffers {shared_buffers}, max_wal_size {max_wal}, "
                f"checkpoint_timeout {cp_timeout}, autovacuum {autovacuum}, synchronous_commit {sync}"
            ),
            "noise": noise_report(database),
            "uncommitted_files": git_uncommitted(),
            "config": cfg,
        }
    }
    log(f"{cfg['mode']} run into {run_dir}; {results['meta']['dataset']}")
    results["meta"]["analyze_seconds"] = analyze_before_run()
    results["meta"]["prewarm"] = prewarm()
    pools = load_pools(marker)
    # The pools are ~250,000 tuples that live for the whole run: out of the collector's full
    # passes, which otherwise stall the load generator's sender threads (and so the latencies
    # it measures) for ~50 ms now and then.
    gc.freeze()
    log(f"pools: {len(pools.identified):,} identified devices, {len(pools.guests):,} guest devices")
    run_tag = uuid.uuid4().hex[:8]
    bench_profiles: list[int] = []
    servers = Servers(database_url=os.environ["DATABASE_URL"], cfg=cfg, run_dir=run_dir)
    try:
        if any(wanted(phase) for phase in ("copy", "ingestion", "sdk", "naive", "track")):
            log("starting redis, gunicorn and the Celery worker")
            servers.start()
            headers = basic_auth(info["write_key"])
            warm = [
                MessageMaker(pools, seed=3, client=n, clients=cfg["clients"], login_share=0.0)
                for n in range(cfg["clients"])
            ]
            loadgen.closed_loop(
                clients=cfg["clients"],
                seconds=cfg["warmup_seconds"],
                request=ingest_request(warm, cfg["batch_size"]),
                make_http=lambda: Http(servers.port, headers=headers),
            )
            if wanted("copy"):
                log(f"settled in {settle()} s (sync)")
                log(f"COPY of {cfg['copy_rows']:,} rows")
                results["copy"] = measure_copy(pools, info["app_id"], cfg["copy_rows"])
                log(f"COPY: {results['copy']['rows_per_s']:,} rows/s")
                log(f"settled after the COPY phase in {settle()} s (sync)")
            if wanted("ingestion"):
                pairs = make_merge_pairs(info["app_id"], cfg["merge_sizes"], run_tag)
                for pair in pairs:
                    bench_profiles += [pair["guest"]["profile_id"], pair["target"]["profile_id"]]
                log(
                    f"merge guests made with COPY: {[(p['size'], p['copy_seconds']) for p in pairs]}"
                )
                log(f"settled in {settle()} s (sync)")
                log(
                    f"ingestion: {cfg['clients']} clients x {cfg['ingest_seconds']} s, merges from +{cfg['merge_start_after']} s"
                )
                results.update(
                    phase_ingestion(
                        servers, pools, marker, cfg, pairs, database, args.profile, run_dir
                    )
                )
                for merge in results["merges"]:
                    log(
                        f"merge {merge['size']:,}: {merge.get('seconds_to_done')} s (status {merge.get('status')})"
                    )
            if wanted("sdk"):
                log(f"settled in {settle()} s (sync)")
                results["sdk"] = phase_sdk_shaped(servers, pools, marker, cfg, database)
            if wanted("naive"):
                log(f"settled in {settle()} s (sync)")
                results["naive"] = phase_naive(servers, pools, marker, cfg)
            if wanted("track"):
                log(f"settled in {settle()} s (sync)")
                results["track"] = phase_track(
                    servers, pools, marker, cfg, database, args.profile, run_dir
                )
    finally:
        servers.stop()
    if wanted("timeline"):
        results["timeline"] = phase_timeline(marker, cfg)
    if wanted("admin"):
        results["admin"] = phase_admin(marker, cfg)
        results["statements"] = phase_statements(pools, marker)
    drop_profiles(bench_profiles)
    results["maintenance"] = vacuum_after_run()
    rows = evaluate(results)
    results["targets"] = rows
    print_table(rows)
    (run_dir / "result.json").write_text(json.dumps(results, indent=2, default=str))
    report = markdown(results, rows)
    (run_dir / "result.md").write_text(report)
    if not only:  # a partial run does not replace the latest complete one
        (Path(args.results) / f"latest-{cfg['mode']}.md").write_text(report)
        (Path(args.results) / f"latest-{cfg['mode']}.json").write_text(
            json.dumps(results, indent=2, default=str)
        )
    log(f"results: {run_dir / 'result.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
