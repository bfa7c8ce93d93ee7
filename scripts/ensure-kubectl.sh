#!/usr/bin/env bash
# Make `kubectl` available (its built-in `kubectl kustomize` renders deploy/ in the tests):
# Debian's package when missing and apt is usable.
set -euo pipefail
if command -v kubectl >/dev/null; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "kubectl is not installed and apt needs root: run 'sudo apt-get install kubectl'" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null; then
  echo "kubectl is not installed and this is not a Debian-like system: install kubectl (>= 1.27, for kustomize v5) and put it on PATH" >&2
  exit 1
fi
echo "installing Debian package 'kubectl'..." >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends kubectl >/dev/null
command -v kubectl >/dev/null
