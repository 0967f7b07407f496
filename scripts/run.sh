#!/usr/bin/env bash
# `make run`: migrate, create the demo (manage.py demo_setup) and serve on 127.0.0.1:$PORT.
#
# Embedded default: no DATABASE_URL -> SQLite at var/pushapp.sqlite3 (or $SQLITE_PATH); no
# REDIS_URL -> Celery tasks run in-process. With REDIS_URL a Celery worker and beat run beside
# the dev server. Ctrl-C (SIGINT) or SIGTERM stops all of them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV="${VENV:-.venv}"
PYTHON="$VENV/bin/python"
if [[ ! -x "$PYTHON" ]]; then
    echo "run.sh: $PYTHON is missing; \`make run\` creates the virtualenv first" >&2
    exit 1
fi

mkdir -p var
export DEBUG="${DEBUG:-1}"
export PYTHONUNBUFFERED=1
runserver_flags=()
case "${DEBUG,,}" in
    1 | true | yes | on) ;;
    *)
        # A production-like local run: plain HTTP on 127.0.0.1 with the dev secret, so turn
        # off what needs TLS (each stays overridable) and let runserver serve static files.
        export PUSHAPP_ALLOW_DEV_SECRET="${PUSHAPP_ALLOW_DEV_SECRET:-1}"
        export ALLOWED_HOSTS="${ALLOWED_HOSTS:-127.0.0.1,localhost}"
        export SECURE_SSL_REDIRECT="${SECURE_SSL_REDIRECT:-0}"
        export SESSION_COOKIE_SECURE="${SESSION_COOKIE_SECURE:-0}"
        export CSRF_COOKIE_SECURE="${CSRF_COOKIE_SECURE:-0}"
        runserver_flags+=(--insecure)
        ;;
esac

pids=() # the background processes started here

descendants() {
    local pid child
    for pid in "$@"; do
        for child in $(pgrep -P "$pid" 2>/dev/null || true); do
            echo "$child"
            descendants "$child"
        done
    done
}

running() { # running PID: alive and not a zombie
    local state
    state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [[ -n "$state" && "$state" != Z* ]]
}

stop_all() {
    local status="$1" pid left
    trap - INT TERM EXIT
    if ((${#pids[@]})); then
        # Note the children's own children (runserver's reloaded server, Celery's pool) now:
        # once their parent exits they are reparented and cannot be found from here.
        local all=("${pids[@]}")
        mapfile -t -O "${#all[@]}" all < <(descendants "${pids[@]}")
        echo "run.sh: stopping ${pids[*]}" >&2
        kill -TERM "${pids[@]}" 2>/dev/null || true
        for _ in $(seq 200); do # up to 20 s for a warm shutdown
            left=()
            for pid in "${all[@]}"; do
                if running "$pid"; then left+=("$pid"); fi
            done
            ((${#left[@]})) || break
            sleep 0.1
        done
        if ((${#left[@]})); then
            echo "run.sh: killing ${left[*]}" >&2
            kill -KILL "${left[@]}" 2>/dev/null || true
        fi
        wait 2>/dev/null || true
    fi
    exit "$status"
}
trap 'stop_all 130' INT
trap 'stop_all 143' TERM
trap 'stop_all $?' EXIT

"$PYTHON" manage.py migrate --noinput
"$PYTHON" manage.py demo_setup

if [[ -n "${REDIS_URL:-}" ]]; then
    "$PYTHON" -m celery -A pushapp worker --loglevel=INFO --concurrency=2 &
    pids+=("$!")
    "$PYTHON" -m celery -A pushapp beat --loglevel=INFO --schedule=var/celerybeat-schedule &
    pids+=("$!")
fi
"$PYTHON" manage.py runserver "${runserver_flags[@]}" "127.0.0.1:${PORT:-8000}" &
pids+=("$!")

# Returns when one of them exits (the others are then stopped) or when a signal arrives (the
# trap stops them all).
status=0
wait -n || status=$?
stop_all "$status"
