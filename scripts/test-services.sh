#!/usr/bin/env bash
# Make sure the test suite's PostgreSQL and Redis answer: start them where they are installed
# but stopped, and fail with a clear message naming what is missing otherwise.
set -euo pipefail
database_url=${1:-postgres://postgres@127.0.0.1:5432/pushapp}
redis_url=${2:-redis://127.0.0.1:6379/0}

pg_host=$(python3 -c 'import sys,urllib.parse as u;p=u.urlsplit(sys.argv[1]);print(p.hostname or "127.0.0.1")' "$database_url")
pg_port=$(python3 -c 'import sys,urllib.parse as u;p=u.urlsplit(sys.argv[1]);print(p.port or 5432)' "$database_url")
pg_user=$(python3 -c 'import sys,urllib.parse as u;p=u.urlsplit(sys.argv[1]);print(p.username or "postgres")' "$database_url")
redis_host=$(python3 -c 'import sys,urllib.parse as u;p=u.urlsplit(sys.argv[1]);print(p.hostname or "127.0.0.1")' "$redis_url")
redis_port=$(python3 -c 'import sys,urllib.parse as u;p=u.urlsplit(sys.argv[1]);print(p.port or 6379)' "$redis_url")

pg_ready() { pg_isready -q -h "$pg_host" -p "$pg_port" -U "$pg_user" 2>/dev/null; }
redis_ready() { redis-cli -h "$redis_host" -p "$redis_port" ping 2>/dev/null | grep -q PONG; }

if ! command -v pg_isready >/dev/null; then
  echo "make test needs PostgreSQL: pg_isready not found (install postgresql, or set TEST_DATABASE_URL)" >&2
  exit 1
fi
if ! pg_ready; then
  if ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "PostgreSQL is installed but not answering on $pg_host:$pg_port: starting it"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | tail -n 1)" main start || true
    for _ in $(seq 1 30); do pg_ready && break; sleep 1; done
  fi
  pg_ready || { echo "PostgreSQL is not reachable at $pg_host:$pg_port (TEST_DATABASE_URL=$database_url)" >&2; exit 1; }
fi

if ! command -v redis-cli >/dev/null; then
  echo "make test needs Redis: redis-cli not found (install redis-server, or set TEST_REDIS_URL)" >&2
  exit 1
fi
if ! redis_ready; then
  if command -v redis-server >/dev/null && [ "$redis_host" = "127.0.0.1" ]; then
    echo "Redis is installed but not answering on $redis_host:$redis_port: starting it"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$redis_port" --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    for _ in $(seq 1 20); do redis_ready && break; sleep 0.5; done
  fi
  redis_ready || { echo "Redis is not reachable at $redis_host:$redis_port (TEST_REDIS_URL=$redis_url)" >&2; exit 1; }
fi
echo "services: PostgreSQL $pg_host:$pg_port and Redis $redis_host:$redis_port are up"
