#!/bin/sh
# Install the farmwatch edge agent on Raspberry Pi OS (Debian based), from a checkout of this
# repository copied to the Pi. Run as root:
#   sudo sh deploy/install-edge.sh <farm-id> <broker-host> [<password-file>]
# The farm file firmware_configs/<farm-id>.toml is installed as /etc/farmwatch/farms/<farm-id>.toml
# (with any register maps of your own from firmware_configs/register_maps/) and named in
# /etc/farmwatch/edge.env (FARMWATCH_EDGE_FARM_FILE).
# <password-file> holds the farm's broker password made by `farmwatch-broker-user` on the
# server (--secret-out); it is installed as /etc/farmwatch/mqtt-password (0640 root:farmwatch)
# and the copy you passed is not deleted: remove it yourself after checking the agent runs.
# TLS is the default: the agent connects to <broker-host>:8883 and checks the broker's
# certificate against the CA in TLS_CA (the server's /etc/farmwatch/ca.crt, made by
# install-collector.sh), installed as /etc/farmwatch/ca.crt:
#   sudo TLS_CA=./ca.crt sh deploy/install-edge.sh <farm-id> <broker-host> [<password-file>]
# (an installed /etc/farmwatch/ca.crt is kept when TLS_CA is not given). PLAIN_MQTT=yes
# instead connects in plain MQTT to port 1883: only for a broker on this machine or a network
# you trust, since the password then travels in clear (the agent warns about it in its log).
# The agent holds readings until NTP synchronised the clock (FARMWATCH_EDGE_CLOCK_CHECK=ntp):
# a Pi has no real-time clock, and fake-hwclock restores a stale time after a power cut.
set -eu

FARM="${1:?usage: install-edge.sh <farm-id> <broker-host> [<password-file>]}"
BROKER="${2:?usage: install-edge.sh <farm-id> <broker-host> [<password-file>]}"
PASSWORD_FILE="${3:-}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
FARM_FILE="$REPO/firmware_configs/$FARM.toml"
FARM_DIR=/etc/farmwatch/farms
PREFIX=/opt/farmwatch
ENV_FILE=/etc/farmwatch/edge.env
CA_FILE=/etc/farmwatch/ca.crt
TLS_CA="${TLS_CA:-}"
PLAIN_MQTT="${PLAIN_MQTT:-no}"

[ "$(id -u)" -eq 0 ] || { echo "run as root (sudo)" >&2; exit 1; }
[ -f "$FARM_FILE" ] || { echo "no farm file $FARM_FILE" >&2; exit 1; }
if [ "$PLAIN_MQTT" != yes ]; then
    if [ -n "$TLS_CA" ] && [ ! -f "$TLS_CA" ]; then
        echo "no CA file $TLS_CA" >&2
        exit 1
    fi
    if [ -z "$TLS_CA" ] && [ ! -f "$CA_FILE" ]; then
        echo "TLS por defecto: dé el certificado de la CA del broker / TLS by default: give the" \
            "broker's CA certificate: sudo TLS_CA=./ca.crt sh $0 $*" \
            "(or PLAIN_MQTT=yes for a broker on a network you trust)" >&2
        exit 1
    fi
fi

apt-get update
apt-get install -y --no-install-recommends python3 python3-venv python3-pip

getent group farmwatch >/dev/null || groupadd --system farmwatch
id farmwatch >/dev/null 2>&1 || useradd --system --gid farmwatch --groups dialout \
    --home-dir /var/lib/farmwatch --no-create-home --shell /usr/sbin/nologin farmwatch

python3 -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install --quiet --upgrade pip
# setuptools reuses build/ of the checkout: a stale one would put old modules into the wheel
rm -rf "$REPO/build"
"$PREFIX/venv/bin/pip" install --quiet "$REPO"

install -d -m 0750 -o root -g farmwatch /etc/farmwatch "$FARM_DIR"
install -m 0640 -o root -g farmwatch "$FARM_FILE" "$FARM_DIR/$FARM.toml"
if [ -d "$REPO/firmware_configs/register_maps" ]; then
    install -d -m 0750 -o root -g farmwatch "$FARM_DIR/register_maps"
    for map in "$REPO"/firmware_configs/register_maps/*.toml; do
        [ -f "$map" ] && install -m 0640 -o root -g farmwatch "$map" "$FARM_DIR/register_maps/"
    done
fi
if [ -n "$TLS_CA" ] && [ "$PLAIN_MQTT" != yes ]; then
    install -m 0644 -o root -g root "$TLS_CA" "$CA_FILE"
fi
if [ ! -f "$ENV_FILE" ]; then
    sed -e "s/__FARM__/$FARM/g" -e "s/broker.example.org/$BROKER/" \
        "$REPO/deploy/env/edge.env.example" > "$ENV_FILE"
    chmod 0640 "$ENV_FILE"
    chgrp farmwatch "$ENV_FILE"
else
    # an older install named /etc/farmwatch/farm.toml: point the kept settings at the new file
    sed -e "s|^FARMWATCH_EDGE_FARM_FILE=.*|FARMWATCH_EDGE_FARM_FILE=$FARM_DIR/$FARM.toml|" \
        "$ENV_FILE" > "$ENV_FILE.new"
    cat "$ENV_FILE.new" > "$ENV_FILE"
    rm -f "$ENV_FILE.new"
    # settings an older install lacks: hold readings until NTP; TLS when a CA was given
    grep -q '^FARMWATCH_EDGE_CLOCK_CHECK=' "$ENV_FILE" \
        || echo "FARMWATCH_EDGE_CLOCK_CHECK=ntp" >> "$ENV_FILE"
    if [ -n "$TLS_CA" ] && [ "$PLAIN_MQTT" != yes ]; then
        sed -e '/^FARMWATCH_EDGE_MQTT_PORT=/d' -e '/^FARMWATCH_EDGE_MQTT_TLS_CA_FILE=/d' \
            "$ENV_FILE" > "$ENV_FILE.new"
        printf 'FARMWATCH_EDGE_MQTT_PORT=8883\nFARMWATCH_EDGE_MQTT_TLS_CA_FILE=%s\n' "$CA_FILE" \
            >> "$ENV_FILE.new"
        cat "$ENV_FILE.new" > "$ENV_FILE"
        rm -f "$ENV_FILE.new"
    fi
fi
if [ "$PLAIN_MQTT" = yes ]; then
    echo "AVISO / WARNING: MQTT sin TLS / without TLS: the farm's password travels in clear" >&2
    sed -e 's/^FARMWATCH_EDGE_MQTT_PORT=.*/FARMWATCH_EDGE_MQTT_PORT=1883/' \
        -e 's/^FARMWATCH_EDGE_MQTT_TLS_CA_FILE=/# FARMWATCH_EDGE_MQTT_TLS_CA_FILE=/' \
        "$ENV_FILE" > "$ENV_FILE.new"
    cat "$ENV_FILE.new" > "$ENV_FILE"
    rm -f "$ENV_FILE.new"
fi
if [ -n "$PASSWORD_FILE" ]; then
    install -m 0640 -o root -g farmwatch "$PASSWORD_FILE" /etc/farmwatch/mqtt-password
fi
if [ -f /etc/farmwatch/mqtt-password ]; then
    # the same check the agent makes at start-up: settings, farm file, buses, register maps
    (
        set -a
        # shellcheck source=/dev/null
        . "$ENV_FILE"
        set +a
        "$PREFIX/venv/bin/farmwatch-edge" --check-config
    ) || {
        echo "corrija / fix $ENV_FILE (FARMWATCH_EDGE_AGENT_ID if the farm has several agents)" \
            "and run this again" >&2
        exit 1
    }
else
    echo "WARNING: put the broker password in /etc/farmwatch/mqtt-password" >&2
fi

install -m 0644 "$REPO/deploy/systemd/farmwatch-edge.service" /etc/systemd/system/
systemctl daemon-reload
# The agent timestamps readings: make sure the clock is kept (NTP).
systemctl enable --now systemd-timesyncd.service 2>/dev/null || true
systemctl enable --now farmwatch-edge.service
echo "farmwatch-edge instalado / installed for $FARM; logs: journalctl -u farmwatch-edge -f"
