#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests and local trials, no docker, no system service.
#
#   scripts/postgres-test-server.sh start DIR [PORT]   # create DIR, start, make databases
#   scripts/postgres-test-server.sh stop DIR           # stop it and delete DIR
#
# The cluster listens on 127.0.0.1:PORT (default 54329) and on a unix socket in DIR; user
# `unmixlab` with password $PGPASSWORD (default `unmixlab`) owns the databases `mlflow` and
# `optuna`. `start` ends by printing the settings to export. As root, the server runs as the
# `postgres` system user (PostgreSQL refuses root): DIR must then sit where that user can
# reach it (e.g. under /tmp). Exit code 3: no PostgreSQL binaries (`apt-get install postgresql`).
set -euo pipefail

usage() { echo "usage: $0 start DIR [PORT] | stop DIR" >&2; exit 2; }
[[ $# -ge 2 ]] || usage
action=$1
dir=$2
port=${3:-54329}
password=${PGPASSWORD:-unmixlab}

bindir() {  # the folder holding matching initdb and pg_ctl
  local initdb
  if initdb=$(command -v initdb); then
    dirname "$(readlink -f "$initdb")"
    return
  fi
  initdb=$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)
  [[ -n $initdb ]] || { echo "no PostgreSQL binaries (initdb) found; apt-get install postgresql" >&2; exit 3; }
  dirname "$initdb"
}

as_owner=()  # prefix that runs a command as the cluster's owner
if [[ $(id -u) -eq 0 ]]; then
  id postgres >/dev/null 2>&1 || { echo "running as root needs the 'postgres' system user" >&2; exit 1; }
  as_owner=(runuser -u postgres --)
fi

case $action in
  start)
    bin=$(bindir)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [[ ! -e $dir/data ]] || { echo "$dir/data exists: stop that cluster first" >&2; exit 1; }
    [[ ${#as_owner[@]} -eq 0 ]] || chown postgres: "$dir"
    "${as_owner[@]}" test -w "$dir" -a -x "$dir" ||
      { echo "the postgres user cannot write $dir: pick a folder it can reach (e.g. under /tmp)" >&2; exit 1; }
    cd "$dir"  # the owner may not be able to read the caller's working directory
    "${as_owner[@]}" mkdir -p "$dir/socket"
    "${as_owner[@]}" sh -c 'umask 077 && cat > "$1"' sh "$dir/password" <<<"$password"
    "${as_owner[@]}" "$bin/initdb" -D "$dir/data" -U unmixlab --pwfile="$dir/password" \
      --auth-host=scram-sha-256 --auth-local=trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
    rm -f "$dir/password"
    # a throwaway cluster: durability off, for speed
    "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start -o \
      "-p $port -k $dir/socket -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      >/dev/null || { tail -n 20 "$dir/postgres.log" >&2; exit 1; }
    for database in mlflow optuna; do
      "${as_owner[@]}" "$bin/psql" -h "$dir/socket" -p "$port" -U unmixlab -d postgres -q \
        -c "CREATE DATABASE $database"
    done
    echo "export PGPASSWORD=$password"
    echo "export MLFLOW_BACKEND_STORE_URI=postgresql+psycopg2://unmixlab@127.0.0.1:$port/mlflow"
    echo "export UNMIXLAB_TUNE_STORAGE=postgresql+psycopg2://unmixlab@127.0.0.1:$port/optuna"
    ;;
  stop)
    if [[ -f $dir/data/postmaster.pid ]]; then
      cd "$dir"
      "${as_owner[@]}" "$(bindir)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    fi
    rm -rf "$dir"
    ;;
  *) usage ;;
esac
