#!/usr/bin/env bash
# Runs a command with TEST_DATABASE_URL pointing at a throw-away PostgreSQL cluster on a free
# loopback port, then stops and removes the cluster. If TEST_DATABASE_URL is already set, the
# command runs against that server instead.
set -euo pipefail

if [ -n "${TEST_DATABASE_URL:-}" ]; then
  exec "$@"
fi

pgbin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
if [ -z "$pgbin" ] && command -v initdb >/dev/null 2>&1; then pgbin="$(dirname "$(command -v initdb)")"; fi
if [ -z "$pgbin" ] || [ ! -x "$pgbin/initdb" ]; then
  echo "with-postgres: PostgreSQL server binaries (initdb, pg_ctl) not found; install postgresql or set TEST_DATABASE_URL" >&2
  exit 1
fi

dir="$(mktemp -d /tmp/email-manager-pg.XXXXXX)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

# initdb refuses to run as root: run the cluster as the postgres user in a folder it owns.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi

cleanup() {
  as_pg "$pgbin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

as_pg "$pgbin/initdb" -D "$dir/data" -A trust -U postgres --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
as_pg "$pgbin/pg_ctl" -D "$dir/data" -w -l "$dir/server.log" \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 ${PG_EXTRA_OPTS:-}" \
  start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }

echo "with-postgres: throw-away cluster on 127.0.0.1:$port" >&2
TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres" "$@"
