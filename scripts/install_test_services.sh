#!/usr/bin/env bash
# The Prometheus binaries the observability tests start: prometheus-pushgateway (metrics pushed by
# the plugins are read back from it), prometheus/promtool (config check, alert-rule unit tests,
# dashboard queries) and prometheus-alertmanager/amtool (config check, alerts delivered to a
# receiver). From Debian's packages; nothing happens when they are already installed.
set -euo pipefail
# Parallel test workers may call this at once: one installs, the others wait and find it done.
exec 9>"${TMPDIR:-/tmp}/pipeboard-install-test-services.lock"
flock 9
missing=()
command -v prometheus-pushgateway >/dev/null || missing+=(prometheus-pushgateway)
command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null && command -v amtool >/dev/null ||
  missing+=(prometheus-alertmanager)
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -eq 0 ]]; then
  SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  # Without root: unpack the same Debian packages into the virtualenv (the binaries are static
  # Go programs) and link them into .venv/bin, which `make test` puts first on PATH.
  venv="$(cd "$(dirname "$0")/.." && pwd)/.venv"
  dest="$venv/opt/prometheus"
  mkdir -p "$dest/debs"
  if ! (cd "$dest/debs" && apt-get download -qq "${missing[@]}" >/dev/null 2>&1); then
    echo "install_test_services: need ${missing[*]} (Debian packages) and cannot download them" >&2
    echo "  as $(id -un); as root run: apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  for deb in "$dest"/debs/*.deb; do dpkg-deb -x "$deb" "$dest/root"; done
  for tool in prometheus promtool prometheus-pushgateway prometheus-alertmanager amtool; do
    [[ -x "$dest/root/usr/bin/$tool" ]] && ln -sf "$dest/root/usr/bin/$tool" "$venv/bin/$tool"
  done
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# Install without starting the packages' own services: the tests start them on free ports.
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
