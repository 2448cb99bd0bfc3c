#!/bin/sh
# Installs the Debian / Raspberry Pi OS packages farmwatch needs, only those missing.
# mosquitto and influxdb (1.6) are the real servers the tests, the demo and the benchmarks
# start on their own ports. With --tests also victoria-metrics, a real server speaking InfluxDB's
# /api/v2/write, which only the tests use.
set -eu
tests=no
[ "${1:-}" = "--tests" ] && tests=yes
need=""
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
have mosquitto || need="$need mosquitto"
have influxd || need="$need influxdb"
have influx || need="$need influxdb-client"
[ "$tests" = yes ] && { have victoria-metrics || need="$need victoria-metrics"; }
have make || need="$need make"
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need="$need python3-venv"
if [ -n "$need" ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "Instalando / installing:$need"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need
fi
