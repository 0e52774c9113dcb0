#!/usr/bin/env bash
# Set up a fresh machine for unmixlab: system packages (ffmpeg; PostgreSQL for the
# integration tests), a Python 3.11-3.13 virtual environment in .venv, the project and its
# extras, with the tested torch/torchaudio of constraints.txt.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="${1:-test,kubeflow,auth,dashboard}"  # pip extras to install

need_apt=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || need_apt+=(ffmpeg)
if [[ "$extras" == *test* ]] && ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need_apt+=(postgresql)
fi
if ((${#need_apt[@]})); then
  echo "==> installing system packages: ${need_apt[*]}"
  sudo_cmd=""; [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
"$python" -c 'import sys; assert (3, 11) <= sys.version_info[:2] <= (3, 13), sys.version' \
  || { echo "unmixlab needs Python 3.11, 3.12 or 3.13 (set PYTHON=/path/to/python3.1x)"; exit 1; }

if [[ ! -x .venv/bin/python ]]; then
  echo "==> creating .venv"
  "$python" -m venv .venv
fi
stamp=.venv/.unmixlab-installed-$extras
if [[ ! -f $stamp || pyproject.toml -nt $stamp || constraints.txt -nt $stamp ]]; then
  echo "==> installing unmixlab[$extras] into .venv (torch is large: a few minutes the first time)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[$extras]"
  # the reference implementation, for compatibility tests and benchmarks (its deps are ours)
  .venv/bin/python -m pip install -q --no-deps "openunmix==1.3.0"
  touch "$stamp"
fi
echo "==> ready: . .venv/bin/activate"
