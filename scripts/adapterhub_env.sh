#!/usr/bin/env bash
# Build (once) a separate venv holding the reference library `adapters==1.3.0`.
#
# `adapters` 1.3.0 pins transformers~=4.57.x, which cannot coexist with the
# project's transformers 5, so it lives in its own venv:
#   ${MADX_ADAPTERHUB_VENV:-.cache/adapterhub-venv}   (relative to the repo root)
#
# Idempotent: a stamp file inside the venv records the exact requirements; when it
# matches, no pip work is done. The venv's python path is always the last line
# printed, so callers can do:  PY=$(bash scripts/adapterhub_env.sh | tail -n1)
#
# torch==2.13.0 is installed FIRST and explicitly (a local CPU wheel); any other
# torch spec can pull a multi-GB CUDA build.
#
# Measured first build (2 cores, local PyPI mirror): about 85 s and 1.2 GB (torch 754 MB).
# Facts about the library and its format: docs/adapterhub-format.md.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MADX_ADAPTERHUB_VENV:-.cache/adapterhub-venv}"
case "$VENV" in
  /*) ;;
  *) VENV="$REPO_ROOT/$VENV" ;;
esac
PYTHON_BIN="${MADX_ADAPTERHUB_PYTHON:-python3.11}"
command -v "$PYTHON_BIN" >/dev/null 2>&1 || PYTHON_BIN=python3

TORCH_REQ="torch==2.13.0"
ADAPTERS_REQ="adapters==1.3.0"
# Extra, small runtime needs of the oracle script (safetensors comes with transformers).
EXTRA_REQS=""
STAMP_CONTENT="$(printf 'python=%s\n%s\n%s\n%s\n' "$("$PYTHON_BIN" -c 'import sys;print(".".join(map(str,sys.version_info[:2])))')" "$TORCH_REQ" "$ADAPTERS_REQ" "$EXTRA_REQS")"
STAMP="$VENV/.madx-adapterhub-stamp"
VPY="$VENV/bin/python"

if [[ -x "$VPY" && -f "$STAMP" ]] && [[ "$(cat "$STAMP")" == "$STAMP_CONTENT" ]]; then
  echo "$VPY"
  exit 0
fi

start=$(date +%s)
echo "[adapterhub_env] building venv at $VENV" >&2
rm -f "$STAMP"
if [[ ! -x "$VPY" ]]; then
  "$PYTHON_BIN" -m venv "$VENV"
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
# torch first, on its own, so the resolver never picks a CUDA build for it.
"$VPY" -m pip install --quiet "$TORCH_REQ" >&2
# adapters + its pins; keep torch pinned in the same call so it is never replaced.
"$VPY" -m pip install --quiet "$TORCH_REQ" "$ADAPTERS_REQ" $EXTRA_REQS >&2
"$VPY" -m pip check >&2
printf '%s' "$STAMP_CONTENT" > "$STAMP"
end=$(date +%s)
echo "[adapterhub_env] built in $((end - start)) s; size $(du -sh "$VENV" | cut -f1)" >&2
echo "$VPY"
