#!/usr/bin/env bash
# Make `prometheus` and `promtool` available: Debian's package when missing and apt is usable.
exec "$(dirname "$0")/ensure-deb.sh" prometheus \
  "install Prometheus 2.x and put 'prometheus' and 'promtool' on PATH" prometheus promtool
