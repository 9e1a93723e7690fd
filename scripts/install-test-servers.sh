#!/usr/bin/env bash
# Installs the Debian packages of the real servers the tests use, only those missing.
# Needs root; without it, says exactly what to install and fails.
set -euo pipefail

declare -A needs=(
  [mosquitto]=mosquitto
  [victoria-metrics]=victoria-metrics
  [influxd]=influxdb
  [promtool]=prometheus
  [prometheus-alertmanager]=prometheus-alertmanager
  [chromium]=chromium
  [mbpoll]=mbpoll
)
missing=()
for binary in "${!needs[@]}"; do
  if ! command -v "$binary" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$binary" ]; then
    missing+=("${needs[$binary]}")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "missing test servers: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
echo "installing test servers: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian may start packaged services; the tests start their own on free ports.
for svc in mosquitto influxdb victoria-metrics prometheus prometheus-alertmanager; do
  (command -v service >/dev/null 2>&1 && service "$svc" stop >/dev/null 2>&1) || true
done
