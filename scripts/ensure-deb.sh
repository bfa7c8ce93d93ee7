#!/usr/bin/env bash
# ensure-deb.sh PACKAGE HINT COMMAND...: make every COMMAND available, installing Debian's
# PACKAGE when one is missing and apt is usable; HINT says what to install elsewhere.
set -euo pipefail
package=$1 hint=$2
shift 2
missing() { for c in "$@"; do command -v "$c" >/dev/null || return 0; done; return 1; }
if ! missing "$@"; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "$package is not installed and apt needs root: run 'sudo apt-get install $package'" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null; then
  echo "$package is not installed and this is not a Debian-like system: $hint" >&2
  exit 1
fi
echo "installing Debian package '$package'..." >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "$package" >/dev/null
# A package's service is not wanted: tests and `make run` start their own servers.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now "$package" >/dev/null 2>&1 || true
fi
! missing "$@"
