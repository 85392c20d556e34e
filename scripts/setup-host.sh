#!/usr/bin/env bash
# Install (as root; elevates itself with sudo otherwise) every system package piforge's builders, simulated hosts and
# tests use, and register QEMU for arm64 binaries. Idempotent; safe to re-run.
# Needs only Debian's mirror (and PyPI later, for the venvs).
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  # A normal user elevates here, so the README's command needs no `sudo` in front of it:
  # a fresh root machine (a container, a CI box) often has no sudo at all.
  if command -v sudo >/dev/null 2>&1; then
    exec sudo "$0" "$@"
  fi
  echo "setup-host: needs root and sudo is not installed: run it as root ($0)" >&2
  exit 1
fi
packages=(
  # arm64 builds: qemu-user + binfmt, debootstrap for the rootfs derivations
  qemu-user-static binfmt-support debootstrap
  # Docker builder (engine started by the tests / the user, not here)
  docker.io
  # simulated cluster hosts and transfers
  openssh-server openssh-client rsync iproute2 iptables util-linux procps
  # binary cache server in the tests
  nginx-light curl zstd
  # a small real Bazel, offline (mock repos in bazel-bootstrap-source)
  bazel-bootstrap bazel-bootstrap-source
  # an offline dataset for the default training job; numpy + PIL for the dataset
  # derivations' conversion phases (IDX -> .npz, JPEG decoding for cats_vs_dogs)
  dataset-fashion-mnist python3-numpy python3-pil
  # native builds of Python C extensions (recipes/wrapt-native.toml)
  gcc python3-dev python3-pip python3-wheel python3-setuptools
  # inspecting outputs
  file unzip zip ca-certificates
  # recipe [[patches]] (build/patching.py)
  patch
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-host: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# QEMU for arm64 ELF files, flags F so it also works inside chroots and containers.
if ! mountpoint -q /proc/sys/fs/binfmt_misc; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  echo "setup-host: qemu-aarch64 binfmt is not registered" >&2
  exit 1
fi
mkdir -p /run/sshd
echo "setup-host: ready"
