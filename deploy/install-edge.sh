#!/bin/sh
# Install the farmwatch edge agent on Raspberry Pi OS (Debian based), from a checkout of this
# repository copied to the Pi. Run as root:
#   sudo sh deploy/install-edge.sh <farm-id> <broker-host> [<password-file>]
# <password-file> holds the farm's broker password made by `farmwatch-broker-user` on the
# server (--secret-out); it is installed as /etc/farmwatch/mqtt-password (0640 root:farmwatch)
# and the copy you passed is not deleted: remove it yourself after checking the agent runs.
set -eu

FARM="${1:?usage: install-edge.sh <farm-id> <broker-host> [<password-file>]}"
BROKER="${2:?usage: install-edge.sh <farm-id> <broker-host> [<password-file>]}"
PASSWORD_FILE="${3:-}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
FARM_FILE="$REPO/firmware_configs/$FARM.toml"
PREFIX=/opt/farmwatch

[ "$(id -u)" -eq 0 ] || { echo "run as root (sudo)" >&2; exit 1; }
[ -f "$FARM_FILE" ] || { echo "no farm file $FARM_FILE" >&2; exit 1; }

apt-get update
apt-get install -y --no-install-recommends python3 python3-venv python3-pip

getent group farmwatch >/dev/null || groupadd --system farmwatch
id farmwatch >/dev/null 2>&1 || useradd --system --gid farmwatch --groups dialout \
    --home-dir /var/lib/farmwatch --no-create-home --shell /usr/sbin/nologin farmwatch

python3 -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install --quiet --upgrade pip
"$PREFIX/venv/bin/pip" install --quiet "$REPO"

install -d -m 0750 -o root -g farmwatch /etc/farmwatch
install -m 0640 -o root -g farmwatch "$FARM_FILE" /etc/farmwatch/farm.toml
if [ ! -f /etc/farmwatch/edge.env ]; then
    sed -e "s/__FARM__/$FARM/" -e "s/broker.example.org/$BROKER/" \
        "$REPO/deploy/env/edge.env.example" > /etc/farmwatch/edge.env
    chmod 0640 /etc/farmwatch/edge.env
    chgrp farmwatch /etc/farmwatch/edge.env
fi
if [ -n "$PASSWORD_FILE" ]; then
    install -m 0640 -o root -g farmwatch "$PASSWORD_FILE" /etc/farmwatch/mqtt-password
fi
[ -f /etc/farmwatch/mqtt-password ] || echo "WARNING: put the broker password in /etc/farmwatch/mqtt-password" >&2

install -m 0644 "$REPO/deploy/systemd/farmwatch-edge.service" /etc/systemd/system/
systemctl daemon-reload
# The agent timestamps readings: make sure the clock is kept (NTP).
systemctl enable --now systemd-timesyncd.service 2>/dev/null || true
systemctl enable --now farmwatch-edge.service
echo "farmwatch-edge instalado / installed for $FARM; logs: journalctl -u farmwatch-edge -f"
