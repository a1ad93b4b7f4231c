#!/usr/bin/env bash
# The shipped Prometheus alerting rules: promtool checks them, then runs their unit tests
# (series in, alerts out). promtool comes with Debian's prometheus package (scripts/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v promtool >/dev/null || { echo "alerts.sh: promtool is needed (apt-get install prometheus)" >&2; exit 1; }
promtool check rules packaging/prometheus/pglookout-alerts.yml
promtool test rules packaging/prometheus/pglookout-alerts.test.yml
