#!/usr/bin/env bash
# Start a local PostgreSQL server for the multi-process Optuna study tests (tests/test_storage.py).
#
# Idempotent: installs Debian's postgresql only when it is missing, creates a cluster only when
# there is none, starts it only when it is down, and creates the role and database only once.
# Result: a server on 127.0.0.1:5432 with role/password/database cptopt/cptopt/cptopt, i.e.
#   CPTOPT_TEST_POSTGRES_URL=postgresql://cptopt:cptopt@127.0.0.1:5432/cptopt
set -euo pipefail

PORT=5432
ROLE=cptopt
PASSWORD=cptopt
DATABASE=cptopt

if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || ! command -v pg_ctlcluster >/dev/null; then
  echo "start-postgres: installing postgresql (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
fi

VERSION="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"

if ! pg_lsclusters -h | awk '{print $1, $2}' | grep -qx "$VERSION main"; then
  echo "start-postgres: creating cluster $VERSION/main on port $PORT"
  pg_createcluster --port "$PORT" "$VERSION" main >/dev/null
fi

CLUSTER_PORT="$(pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" {print $3}')"
if [ "$CLUSTER_PORT" != "$PORT" ]; then
  echo "start-postgres: cluster $VERSION/main uses port $CLUSTER_PORT, expected $PORT" >&2
  exit 1
fi

STATUS="$(pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" {print $4}')"
if [ "$STATUS" != "online" ]; then
  echo "start-postgres: starting cluster $VERSION/main"
  pg_ctlcluster "$VERSION" main start
fi

for _ in $(seq 1 60); do
  if pg_isready -q -h 127.0.0.1 -p "$PORT"; then
    break
  fi
  sleep 0.5
done
pg_isready -h 127.0.0.1 -p "$PORT" >/dev/null

as_postgres() {
  if [ "$(id -un)" = postgres ]; then
    "$@"
  elif command -v runuser >/dev/null; then
    runuser -u postgres -- "$@"
  else
    su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
  fi
}

psql_admin() {
  (cd / && as_postgres psql -p "$PORT" -v ON_ERROR_STOP=1 -qtAc "$1")
}

if [ "$(psql_admin "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != "1" ]; then
  psql_admin "CREATE ROLE $ROLE LOGIN PASSWORD '$PASSWORD'"
fi
if [ "$(psql_admin "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" != "1" ]; then
  psql_admin "CREATE DATABASE $DATABASE OWNER $ROLE"
fi

PGPASSWORD="$PASSWORD" psql -h 127.0.0.1 -p "$PORT" -U "$ROLE" -d "$DATABASE" -qtAc "SELECT 1" >/dev/null
echo "start-postgres: ready at postgresql://$ROLE:***@127.0.0.1:$PORT/$DATABASE"
