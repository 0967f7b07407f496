#!/usr/bin/env bash
# PushApp benchmarks (GitHub issue 8): bash bench/run.sh [--quick] [--profile]
#
#   --quick    20,000 profiles / 200,000 events (+ a 100,000-event whale), short phases: < 3 min
#   (default)  1,000,000 profiles / 10,000,000 events (+ a 1,000,000-event whale): < 30 min
#   --profile  also py-spy the gunicorn workers during ingestion and /v1/track (bench/results/<run>/)
#   --only=a,b run only these phases (copy, ingestion, naive, track, timeline, admin)
#
# PostgreSQL: the bench's own cluster (var/bench-pg, made with the machine's PostgreSQL 15
# initdb, started on a free port of 127.0.0.1 for the run and stopped at its end), so that
# it can have the memory a production server has without restarting the machine's shared
# server. Settings, each passed on the command line below:
#   shared_buffers           25% of RAM, at most 8GB (6GB here): the default 128MB is a test
#                            server's; with it every random page of the 1.5 GB of hot indexes
#                            goes through the OS page cache, and what this VM keeps in that
#                            cache varies from run to run (docs/benchmarks.md);
#   max_wal_size 16GB        a run writes 3 to 5 GB of WAL: no checkpoint starts inside it
#                            (the run begins with one, below), where 8GB let one start
#                            mid-run, whose writes stalled commits by up to 0.3 s;
#   checkpoint_timeout, wal_compression: as below;
#   autovacuum off           the run vacuums what it wrote at its end, outside every
#                            measurement, as the shared server's setting did.
# BENCH_PG_PORT=5432 uses the shared server instead (e.g. where no initdb is installed); the
# settings that server lacks are then set for the run, only reloadable ones (ALTER SYSTEM +
# pg_reload_conf(), never a restart), and put back as they were when the run ends:
#   max_wal_size >= 8GB      the 11M-event load writes ~15 GB of WAL, and at the default 1GB a
#                            checkpoint every few seconds slows it and puts 50 ms spikes into
#                            request latencies (PERFORMANCE.md);
#   checkpoint_timeout 15min no time-driven checkpoint inside a measurement window;
#   wal_compression lz4      full-page images compressed: about half the WAL of a batch.
# It works in its own database (pushapp_bench, pushapp_bench_quick, or BENCH_DATABASE), which
# it creates, migrates and fills (bench/dataset.py, reused when its marker says it already has
# the requested size). Servers (gunicorn, Celery, a throwaway redis-server) run on free ports
# of 127.0.0.1 and are stopped at the end. Needs redis-server installed.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
started=$(date +%s)

mode=full
for arg in "$@"; do
  case "$arg" in
    --quick) mode=quick ;;
    --profile|--only=*) ;;
    *) echo "usage: bash bench/run.sh [--quick] [--profile] [--only=copy,ingestion,naive,track,timeline,admin]" >&2; exit 2 ;;
  esac
done

# -- the bench's own PostgreSQL cluster --------------------------------------------------------
PG_BIN=${BENCH_PG_BIN:-/usr/lib/postgresql/15/bin}
own_cluster=0
restore=()  # statements putting the shared server's settings back
as_postgres() {  # initdb and the server refuse to run as root
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
cleanup() {
  if [ ${#restore[@]} -gt 0 ]; then
    for statement in "${restore[@]}"; do $PG -c "$statement"; done
    $PG -Atc "SELECT pg_reload_conf()" >/dev/null
    echo "[bench] PostgreSQL settings restored"
  fi
  if [ "$own_cluster" = 1 ]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$cluster/data" -m fast -w stop >/dev/null && echo "[bench] the bench's PostgreSQL cluster stopped"
  fi
}
trap cleanup EXIT
if [ -z "${BENCH_PG_PORT:-}" ]; then
  if [ ! -x "$PG_BIN/initdb" ]; then
    echo "[bench] no PostgreSQL server binaries in $PG_BIN: set BENCH_PG_BIN, or BENCH_PG_PORT=5432 for the shared server" >&2
    exit 2
  fi
  cluster=$ROOT/var/bench-pg
  mkdir -p "$cluster"
  if [ "$(id -u)" = 0 ]; then chown postgres "$cluster"; fi
  if [ ! -f "$cluster/data/PG_VERSION" ]; then
    echo "[bench] creating the bench's PostgreSQL cluster in $cluster/data"
    as_postgres "$PG_BIN/initdb" -D "$cluster/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  ram_mb=$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
  buffers_mb=$(( ram_mb / 4 < 8192 ? ram_mb / 4 : 8192 ))
  if as_postgres "$PG_BIN/pg_ctl" -D "$cluster/data" status >/dev/null 2>&1; then
    echo "[bench] the bench's cluster in $cluster/data is already running (started by hand?): stop it first" >&2
    exit 2
  fi
  BENCH_PG_PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  own_cluster=1
  as_postgres "$PG_BIN/pg_ctl" -D "$cluster/data" -l "$cluster/server.log" -w -t 120 -o "\
    -p $BENCH_PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories='' \
    -c shared_buffers=${buffers_mb}MB -c max_wal_size=16GB -c checkpoint_timeout=15min \
    -c wal_compression=lz4 -c autovacuum=off -c max_connections=100 \
    -c shared_preload_libraries=pg_stat_statements" start >/dev/null
  echo "[bench] PostgreSQL: the bench's own cluster on 127.0.0.1:$BENCH_PG_PORT, shared_buffers ${buffers_mb}MB"
fi
PG_PORT=$BENCH_PG_PORT
PG="psql -X -q -h 127.0.0.1 -p $PG_PORT -U postgres"
if [ "$mode" = quick ]; then db=${BENCH_DATABASE:-pushapp_bench_quick}; else db=${BENCH_DATABASE:-pushapp_bench}; fi
case "$db" in pushapp_bench*) ;; *) echo "BENCH_DATABASE must start with pushapp_bench" >&2; exit 2 ;; esac

# BENCH_DATABASE_OPTIONS: a query string for the servers' DATABASE_URL, to try connection
# settings, e.g. BENCH_DATABASE_OPTIONS='options=-c%20jit%3Doff'.
export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$db${BENCH_DATABASE_OPTIONS:+?$BENCH_DATABASE_OPTIONS}"
export DJANGO_SETTINGS_MODULE=bench.settings
export DEBUG=0 SECURE_SSL_REDIRECT=0 SESSION_COOKIE_SECURE=0 CSRF_COOKIE_SECURE=0
export ALLOWED_HOSTS="127.0.0.1,localhost,testserver"
export SECRET_KEY=${SECRET_KEY:-bench-only-secret-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}
export CONN_MAX_AGE=600 LOG_LEVEL=WARNING
unset REDIS_URL  # in-process measurements run Celery tasks eagerly; the servers get their own

# -- PostgreSQL settings: raise only what is too low, restore on exit -------------------------
set_for_run() {  # name, value: ALTER SYSTEM for this run, remembering how to put it back
  local name=$1 value=$2 sourcefile
  sourcefile=$($PG -Atc "SELECT coalesce(sourcefile, '') FROM pg_settings WHERE name = '$name'")
  if [[ "$sourcefile" == *postgresql.auto.conf ]]; then
    restore+=("ALTER SYSTEM SET $name = '$($PG -Atc "SHOW $name")'")
  else
    restore+=("ALTER SYSTEM RESET $name")
  fi
  echo "[bench] PostgreSQL: $name $($PG -Atc "SHOW $name") -> $value for this run (reloadable; restored at the end)"
  $PG -c "ALTER SYSTEM SET $name = '$value'"
  tuned=1
}
tune() {  # name, minimum in the setting's unit, value to set
  local current
  current=$($PG -Atc "SELECT setting::bigint FROM pg_settings WHERE name = '$1'")
  if [ "$current" -lt "$2" ]; then set_for_run "$1" "$3"; fi
}
tune_to() {  # name, value: set it when it differs (for settings that are not numbers)
  if [ "$($PG -Atc "SHOW $1")" != "$2" ]; then set_for_run "$1" "$2"; fi
}
tuned=0
tune max_wal_size 8192 8GB           # MB
tune checkpoint_timeout 900 15min    # s
tune_to wal_compression lz4          # full-page images compressed: ~half the WAL of a batch
if [ "$tuned" = 1 ]; then $PG -Atc "SELECT pg_reload_conf()" >/dev/null; sleep 1; fi

# -- database, schema, dataset ---------------------------------------------------------------
if ! $PG -Atc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
  echo "[bench] creating database $db"
  createdb -h 127.0.0.1 -p "$PG_PORT" -U postgres "$db"
fi
"$PY" manage.py migrate --noinput -v 0
if [ "$mode" = quick ]; then
  "$PY" bench/dataset.py --quick
else
  "$PY" bench/dataset.py
fi

# -- the measurements --------------------------------------------------------------------------
# Every run starts right after a checkpoint (the dataset build's WAL otherwise keeps one going
# into the first phases), so each run sees the same point of the checkpoint cycle.
$PG -c CHECKPOINT
"$PY" bench/run.py "$@"
echo "[bench] $mode run finished in $(( $(date +%s) - started )) s"
