#!/usr/bin/env bash
# Install the Debian packages that provide the given commands, where missing:
#   scripts/system_packages.sh COMMAND=PACKAGE ...    e.g. buildah=buildah haproxy=haproxy
# Only as root with apt-get (a CI machine, a dev container); elsewhere it says what is missing and
# exits 1, and the tests that need those commands skip with that reason.
set -euo pipefail
missing=()
for pair in "$@"; do
  command="${pair%%=*}"
  package="${pair#*=}"
  # Some commands live in sbin, which is not on every user's PATH.
  if ! command -v "$command" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$command" ] && [ ! -x "/sbin/$command" ]; then
    missing+=("$package")
  fi
done
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system_packages: not root with apt-get; missing: ${missing[*]}" >&2
  exit 1
fi
echo "system_packages: installing ${missing[*]}" >&2
# The package lists may be stale or absent on a fresh machine: update once, then install.
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
