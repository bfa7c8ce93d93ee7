#!/usr/bin/env bash
# Make `kubectl` available (its built-in `kubectl kustomize` renders deploy/ in the tests):
# Debian's package when missing and apt is usable.
exec "$(dirname "$0")/ensure-deb.sh" kubectl \
  "install kubectl (>= 1.27, for kustomize v5) and put it on PATH" kubectl
