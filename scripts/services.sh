#!/usr/bin/env bash
# PostgreSQL (127.0.0.1:5432, user postgres, database test, trust auth) and Redis (127.0.0.1:6379) for the test
# suite. A server that already answers is reused; otherwise one is started, after installing it from Debian's
# packages when it is missing and the user may (root). Idempotent: a second run finds them answering.
#
# The PostgreSQL cluster is kep's own (initdb), not the system's: nothing in /etc is changed. As root it lives in
# /var/lib/postgresql/kep-test and runs as the postgres user; otherwise in .kep/services/postgres.
# With KEP_REQUIRE_SERVICES=1 a service that cannot be had is an error; otherwise a warning (its tests skip).
set -euo pipefail
cd "$(dirname "$0")/.."

PG_PORT=5432
REDIS_PORT=6379
STATE=.kep/services
mkdir -p "$STATE"
failed=()

answers() {  # answers PORT: something accepts TCP connections on 127.0.0.1:PORT
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

wait_for() {  # wait_for NAME PORT SECONDS LOG
  local deadline=$((SECONDS + $3))
  until answers "$2"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$1 did not answer on 127.0.0.1:$2 within $3 s; its log: $4" >&2
      tail -n 20 "$4" >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.2
  done
}

pg_bindir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then
    echo "$dir"
  elif command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v initdb)"
  fi
}

start_postgres() {
  local bin data log owner run
  bin=$(pg_bindir)
  if [ -z "$bin" ]; then
    scripts/apt-install.sh postgresql || return 1
    bin=$(pg_bindir)
  fi
  if [ "$(id -u)" = 0 ]; then
    # initdb refuses to run as root: the cluster belongs to the postgres user, in a directory it can reach.
    owner=postgres
    data=/var/lib/postgresql/kep-test
    run=(runuser -u postgres --)
  else
    owner=$(id -un)
    data=$PWD/$STATE/postgres
    run=()
  fi
  log=$data.log
  if [ ! -f "$data/PG_VERSION" ]; then
    mkdir -p "$data"
    chown "$owner" "$data"
    "${run[@]}" "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --no-instructions >/dev/null
  fi
  # A postmaster.pid left by a killed server names a process that is gone or, after a reboot, another one.
  local pid
  pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != postgres ]; then
    rm -f "$data/postmaster.pid"
  fi
  touch "$log" && chown "$owner" "$log"
  echo "starting PostgreSQL ($data) on 127.0.0.1:$PG_PORT"
  "${run[@]}" "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 start -o \
    "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $data -c max_connections=200 \
     -c fsync=off -c synchronous_commit=off -c full_page_writes=off" >/dev/null || {
    tail -n 20 "$log" >&2
    return 1
  }
  wait_for PostgreSQL "$PG_PORT" 30 "$log"
}

ensure_test_database() {
  local bin psql=psql
  bin=$(pg_bindir)
  [ -n "$bin" ] && [ -x "$bin/psql" ] && psql=$bin/psql
  local sql="SELECT 1 FROM pg_database WHERE datname = 'test'"
  if [ "$("$psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -tAc "$sql" 2>/dev/null)" != 1 ]; then
    "$psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qc "CREATE DATABASE test" >/dev/null
  fi
}

start_redis() {
  if ! command -v redis-server >/dev/null 2>&1; then
    scripts/apt-install.sh redis-server || return 1
    # Debian's package may start its own server on 6379 when it can; that one is as good.
    answers "$REDIS_PORT" && return 0
  fi
  local dir=$PWD/$STATE/redis
  mkdir -p "$dir"
  echo "starting Redis on 127.0.0.1:$REDIS_PORT"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --dir "$dir" --logfile "$dir/redis.log" --pidfile "$dir/redis.pid"
  wait_for Redis "$REDIS_PORT" 30 "$dir/redis.log"
}

if answers "$PG_PORT" || start_postgres; then
  ensure_test_database || echo "warning: could not create the database 'test' on 127.0.0.1:$PG_PORT" >&2
else
  failed+=("PostgreSQL")
fi
answers "$REDIS_PORT" || start_redis || failed+=("Redis")

if [ ${#failed[@]} -gt 0 ]; then
  if [ "${KEP_REQUIRE_SERVICES:-}" = 1 ]; then
    echo "error: ${failed[*]} could not be started, and KEP_REQUIRE_SERVICES=1" >&2
    exit 1
  fi
  echo "warning: ${failed[*]} not available; the tests that need them will skip" >&2
fi
