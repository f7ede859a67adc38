#!/usr/bin/env bash
# The Prometheus binaries the observability tests start: prometheus-pushgateway (metrics pushed by
# the plugins are read back from it) and prometheus/promtool (config check, alert-rule unit tests,
# dashboard queries). From Debian's packages; nothing happens when they are already installed.
set -euo pipefail
missing=()
command -v prometheus-pushgateway >/dev/null || missing+=(prometheus-pushgateway)
command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -eq 0 ]]; then
  SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "install_test_services: need ${missing[*]} (Debian packages); run as root:" >&2
  echo "  apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Install without starting the packages' own services: the tests start them on free ports.
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
