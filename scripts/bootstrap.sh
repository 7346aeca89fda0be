#!/usr/bin/env bash
# Create ./.venv and install the project with the given extras (default: test).
# Idempotent: re-installs only when pyproject.toml changed since the last run.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-test}"
py="${PYTHON:-}"
if [ -z "$py" ]; then
  for candidate in python3.11 python3.12 python3.10 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then py="$candidate"; break; fi
  done
fi
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
# Debian packages some tests use (each test is skipped, with its reason, where its tool is absent):
# headless Chromium renders the Swagger page; buildah and debootstrap build and run the container
# image (tests/deploy/test_image.py); HAProxy balances the replicas (tests/deploy/test_replicas.py).
# Best effort: only as root with apt, and never fatal.
if [ "$extras" = "test" ]; then
  scripts/system_packages.sh chromium=chromium buildah=buildah debootstrap=debootstrap haproxy=haproxy \
    || echo "bootstrap: some Debian packages are missing; the tests that need them will be skipped" >&2
fi
stamp=".venv/.sigaware-installed-$extras"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install --quiet -e ".[$extras]"
  echo "$want" > "$stamp"
fi
