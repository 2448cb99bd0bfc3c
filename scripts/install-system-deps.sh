#!/bin/sh
# Installs the Debian / Raspberry Pi OS packages farmwatch needs, only those missing.
# mosquitto and influxdb (1.6) are the real servers the tests, the demo and the benchmarks
# start on their own ports. With --tests also what only the tests and `make lint` use:
# victoria-metrics (a real server speaking InfluxDB's /api/v2/write), shellcheck, and
# chromium + chromium-driver for the browser tests.
set -eu
tests=no
[ "${1:-}" = "--tests" ] && tests=yes
set --  # the packages to install
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
have mosquitto || set -- "$@" mosquitto
have influxd || set -- "$@" influxdb
have influx || set -- "$@" influxdb-client
if [ "$tests" = yes ]; then
    have victoria-metrics || set -- "$@" victoria-metrics
    have shellcheck || set -- "$@" shellcheck
    # farmwatch-web's browser tests: Debian's Chromium and its driver (no download at run time)
    have chromium || set -- "$@" chromium
    have chromedriver || set -- "$@" chromium-driver
fi
have make || set -- "$@" make
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || set -- "$@" python3-venv
if [ "$#" -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "Instalando / installing: $*"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@"
fi
