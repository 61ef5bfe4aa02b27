#!/usr/bin/env bash
# Local stand-ins for the two base images of Dockerfile.example, so that
# the file users copy is built as written on a machine that can pull no
# image (tests/e2e/example_image.rs passes them as RUST_IMAGE and
# PYTHON_IMAGE build arguments):
#
#   cinit-standin/rust:1-slim-bookworm   for rust:1-slim-bookworm
#   cinit-standin/python:3.12-slim       for python:3.12-slim
#
# Both are Debian bookworm root file systems made by mmdebstrap from the
# machine's apt sources, imported with `docker import`:
#
# * rust: minbase + gcc + libc6-dev (build scripts link with cc, as in the
#   official image) + this machine's own rustup toolchain (rustc, cargo,
#   the host std and the x86_64/aarch64 musl targets; no docs, no sources),
#   laid out as the official image has it: RUSTUP_HOME=/usr/local/rustup,
#   CARGO_HOME=/usr/local/cargo, rustup as cargo/rustc/rustdoc. Copying it
#   downloads nothing, and `rustup target add` of an installed target is a
#   no-op without a network.
# * python: minbase + python3 + python3-venv, with a virtual environment at
#   /usr/local/python first on PATH, so that `python`, `python3` and `pip`
#   are a pip-managed Python like the official image's. Debian bookworm's
#   Python is 3.11, not 3.12: the example needs neither version.
#
# Both trust the CA certificates this machine trusts
# (/usr/local/share/ca-certificates), so that a TLS-intercepting proxy that
# the host goes through works for cargo and pip inside the build too.
#
# Each image carries a label with a key of its recipe (this file, the
# toolchain's version and targets); an image with the current key is kept,
# so a second run builds nothing. Usage: bash tests/docker/standins.sh
# (prints the two tags). Needs root, mmdebstrap and docker.
set -euo pipefail

rust_tag=cinit-standin/rust:1-slim-bookworm
python_tag=cinit-standin/python:3.12-slim
label=cinit.standin.key
suite=bookworm
path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
self=$(readlink -f "$0")

log() { printf 'standins: %s\n' "$*" >&2; }

# This script is also the hook that mmdebstrap runs in the rust root file
# system ($2): the host's toolchain, laid out as the official image has it.
if [ "${1:-}" = --copy-toolchain ]; then
  root=$2
  sysroot=$(rustc --print sysroot)
  toolchain=$(basename "$sysroot")
  tc=$root/usr/local/rustup/toolchains/$toolchain
  mkdir -p "$tc/bin" "$tc/lib/rustlib" "$root/usr/local/cargo/bin"
  cp -a "$sysroot"/bin/{cargo,rustc,rustdoc} "$tc/bin/"
  cp -a "$sysroot"/lib/*.so* "$tc/lib/"
  # rustup's records of what is installed, then the std of each target.
  find "$sysroot/lib/rustlib" -maxdepth 1 -type f -exec cp -a {} "$tc/lib/rustlib/" \;
  for t in $(rustc -vV | sed -n 's/^host: //p') "${@:3}"; do
    cp -a "$sysroot/lib/rustlib/$t" "$tc/lib/rustlib/"
  done
  cp "$(readlink -f "$(command -v rustup)")" "$root/usr/local/cargo/bin/rustup"
  for b in cargo rustc rustdoc; do ln -s rustup "$root/usr/local/cargo/bin/$b"; done
  printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "minimal"\nauto_self_update = "disable"\n' \
    "$toolchain" >"$root/usr/local/rustup/settings.toml"
  exit 0
fi

for tool in mmdebstrap docker rustc rustup; do
  command -v "$tool" >/dev/null || { log "$tool is missing (.ci/test installs it)"; exit 1; }
done

# One build at a time on the machine (the tests of several checkouts, or
# .ci/test's early start and the test itself): the second one waits, then
# finds the images current.
exec 9>/run/cinit-standins.lock
flock 9

self_sum=$(sha256sum "$self" | cut -c1-16)
sysroot=$(rustc --print sysroot)
targets=()
for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
  [ -d "$sysroot/lib/rustlib/$t" ] && targets+=("$t")
done
rust_key="$self_sum $(rustc -V | cut -d' ' -f2) ${targets[*]}"
python_key=$self_sum

current_key() {
  docker image inspect -f "{{index .Config.Labels \"$label\"}}" "$1" 2>/dev/null || true
}

# build TAG KEY PACKAGES HOOK... -- CHANGE...: mmdebstrap makes a bookworm
# minbase root file system with PACKAGES and this machine's extra CA
# certificates, runs each customize HOOK in it (sh, "$1" is the root) and
# streams it as a tar straight into `docker import` (one layer, with each
# Dockerfile CHANGE). mmdebstrap owns its temporary directory and unmounts
# /proc, /sys and /dev before it removes it: this script makes no
# directory of its own.
build() {
  local tag=$1 key=$2 packages=$3
  shift 3
  local hooks=(
    --customize-hook='for c in /usr/local/share/ca-certificates/*.crt; do [ ! -e "$c" ] || cp "$c" "$1/usr/local/share/ca-certificates/"; done'
    --customize-hook='chroot "$1" update-ca-certificates >/dev/null 2>&1'
  )
  while [ "$1" != -- ]; do
    hooks+=(--customize-hook="$1")
    shift
  done
  shift
  hooks+=(--customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin')
  local changes=(--change "LABEL $label=\"$key\"")
  for c in "$@"; do changes+=(--change "$c"); done
  local old
  old=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
  mmdebstrap --quiet --variant=minbase --dpkgopt=force-unsafe-io \
    --include="$packages" "${hooks[@]}" "$suite" - |
    docker import "${changes[@]}" - "$tag" >/dev/null
  # The image of an older recipe, now untagged (kept if something uses it).
  [ -z "$old" ] || docker rmi "$old" >/dev/null 2>&1 || true
}

build_rust() {
  local started=$SECONDS
  log "building $rust_tag (rustc $(rustc -V | cut -d' ' -f2), ${targets[*]})"
  build "$rust_tag" "$rust_key" ca-certificates,gcc,libc6-dev \
    "bash '$self' --copy-toolchain \"\$1\" ${targets[*]}" \
    -- \
    "ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:$path" \
    'CMD ["bash"]'
  log "$rust_tag ready in $((SECONDS - started))s"
}

build_python() {
  local started=$SECONDS
  log "building $python_tag"
  build "$python_tag" "$python_key" ca-certificates,python3,python3-venv \
    'chroot "$1" python3 -m venv /usr/local/python' \
    -- \
    "ENV PATH=/usr/local/python/bin:$path LANG=C.UTF-8" \
    'CMD ["python3"]'
  log "$python_tag ready in $((SECONDS - started))s"
}

# The two bootstraps mostly wait on dpkg, not on a CPU: side by side.
pids=()
[ "$(current_key "$rust_tag")" = "$rust_key" ] || { build_rust & pids+=($!); }
[ "$(current_key "$python_tag")" = "$python_key" ] || { build_python & pids+=($!); }
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=1; done
[ "$failed" = 0 ] || { log "a stand-in failed to build"; exit 1; }

echo "RUST_IMAGE=$rust_tag"
echo "PYTHON_IMAGE=$python_tag"
