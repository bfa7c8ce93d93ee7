#!/usr/bin/env bash
# Make `prometheus` and `promtool` available: Debian's package when missing and apt is usable.
set -euo pipefail
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "prometheus is not installed and apt needs root: run 'sudo apt-get install prometheus'" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null; then
  echo "prometheus is not installed and this is not a Debian-like system: install Prometheus 2.x and put 'prometheus' and 'promtool' on PATH" >&2
  exit 1
fi
echo "installing Debian package 'prometheus' (server and promtool)..." >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# The package's service is not wanted: tests and `make run` start their own servers.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
command -v prometheus >/dev/null
