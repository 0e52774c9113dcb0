#!/usr/bin/env bash
# Start the unmixlab MLflow tracking server.
#
# Settings come from the environment (see mlflow/server.env.example); extra arguments are
# passed on to `mlflow server` unchanged. With no settings at all it serves
# sqlite:///mlflow.db and ./mlartifacts on 127.0.0.1:5000.
#
#   MLFLOW_BACKEND_STORE_URI   sqlite:///mlflow.db (default), or for a team
#                              postgresql+psycopg2://user:pass@host:5432/mlflow
#   MLFLOW_ARTIFACTS_BUCKET    set: proxied artifacts in s3://$BUCKET/$MLFLOW_ARTIFACTS_PREFIX
#   MLFLOW_ARTIFACTS_PREFIX    key prefix inside the bucket (default: mlartifacts)
#   MLFLOW_ARTIFACTS_DIR       local artifact folder when no bucket is set (default: ./mlartifacts)
#   MLFLOW_HOST, MLFLOW_PORT   bind address and port (default: 127.0.0.1, 5000)
#   MLFLOW_WORKERS             server worker processes (default: 4)
#   MLFLOW_ALLOWED_HOSTS       Host headers to accept, comma separated, fnmatch patterns
#                              (default: MLflow's own, localhost and private IPs)
#   MLFLOW_CORS_ALLOWED_ORIGINS  browser origins allowed to call the API
#   MLFLOW_AUTH                `basic` turns on MLflow's basic-auth app (mlflow[auth]); it
#                              needs MLFLOW_FLASK_SERVER_SECRET_KEY, and on the first start
#                              against an empty user store MLFLOW_AUTH_ADMIN_PASSWORD (12+ chars)
#   MLFLOW_AUTH_CONFIG_PATH    auth settings (default: basic_auth.ini next to this script)
#   MLFLOW_AUTH_DATABASE_URI   overrides the ini's database_uri, so a password in it stays
#                              in the environment
#
# S3 access (MLFLOW_S3_ENDPOINT_URL for MinIO, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or any
# other boto3 credential source) is read by the server from the environment only. Clients
# upload through the server (--serve-artifacts) and need no S3 keys.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() {
    echo "start-server.sh: $*" >&2
    exit 2
}

command -v mlflow >/dev/null || die "mlflow is not on PATH; activate the project environment"

backend="${MLFLOW_BACKEND_STORE_URI:-sqlite:///mlflow.db}"
host="${MLFLOW_HOST:-127.0.0.1}"
port="${MLFLOW_PORT:-5000}"

args=(
    server
    --backend-store-uri "$backend"
    --host "$host"
    --port "$port"
    --workers "${MLFLOW_WORKERS:-4}"
    --serve-artifacts
)

if [[ -n "${MLFLOW_ARTIFACTS_BUCKET:-}" ]]; then
    prefix="${MLFLOW_ARTIFACTS_PREFIX-mlartifacts}"
    destination="s3://${MLFLOW_ARTIFACTS_BUCKET}${prefix:+/$prefix}"
else
    artifacts_dir="${MLFLOW_ARTIFACTS_DIR:-./mlartifacts}"
    mkdir -p "$artifacts_dir"
    destination="$(cd "$artifacts_dir" && pwd)"
fi
args+=(--artifacts-destination "$destination")

if [[ -n "${MLFLOW_ALLOWED_HOSTS:-}" ]]; then
    args+=(--allowed-hosts "$MLFLOW_ALLOWED_HOSTS")
fi
if [[ -n "${MLFLOW_CORS_ALLOWED_ORIGINS:-}" ]]; then
    args+=(--cors-allowed-origins "$MLFLOW_CORS_ALLOWED_ORIGINS")
fi

case "${MLFLOW_AUTH:-none}" in
    basic)
        [[ -n "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" ]] ||
            die "MLFLOW_AUTH=basic needs MLFLOW_FLASK_SERVER_SECRET_KEY (e.g. openssl rand -hex 32)"
        config="${MLFLOW_AUTH_CONFIG_PATH:-$here/basic_auth.ini}"
        [[ -f "$config" ]] || die "auth config $config not found; set MLFLOW_AUTH_CONFIG_PATH"
        if [[ -n "${MLFLOW_AUTH_DATABASE_URI:-}" ]]; then
            # a private copy of the ini with the database from the environment; it lives as
            # long as the server, whose workers read it whenever they start
            rendered="$(umask 077 && mktemp -d "${TMPDIR:-/tmp}/mlflow-auth.XXXXXX")/basic_auth.ini"
            python3 - "$config" "$rendered" <<'PY'
import configparser
import os
import sys

config = configparser.ConfigParser(interpolation=None)
config.read(sys.argv[1])
# MLflow reads the file with %-interpolation: keep a URL-encoded password's % literal
config["mlflow"]["database_uri"] = os.environ["MLFLOW_AUTH_DATABASE_URI"].replace("%", "%%")
with open(sys.argv[2], "w") as rendered:
    config.write(rendered)
PY
            config="$rendered"
        fi
        export MLFLOW_AUTH_CONFIG_PATH="$config"
        args+=(--app-name basic-auth)
        ;;
    none | "") ;;
    *) die "MLFLOW_AUTH must be 'basic' or 'none', not '${MLFLOW_AUTH}'" ;;
esac

echo "MLflow: backend ${backend%%://*}, artifacts ${destination}, http://${host}:${port}" >&2
exec mlflow "${args[@]}" "$@"
