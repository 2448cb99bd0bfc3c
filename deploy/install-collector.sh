#!/bin/sh
# Install the farmwatch server side on plain Debian with Debian packages (Mosquitto, InfluxDB
# 1.x) — the same path the demo and the tests use. Run as root from a checkout:
#   sudo sh deploy/install-collector.sh
# Installs the farm files of firmware_configs/ (and firmware_configs/register_maps/, if any) into
# /etc/farmwatch/farms, the farm directory of the collector and the alerting service.
# Creates the broker users (collector + one per farm file in firmware_configs/), the InfluxDB
# retention policies and continuous queries, and starts the collector. Farm passwords are
# written once to /etc/farmwatch/secrets/<farm>.mqtt-password (0600 root): copy each to its
# Pi (deploy/install-edge.sh) and then delete it here.
# Mosquitto listens in plain MQTT on localhost only, and with TLS on port 8883 for the agents:
# give TLS_CA, TLS_CERT and TLS_KEY (files) to use a certificate of your own; otherwise a CA of
# this server's own (/etc/farmwatch/tls, root only) and a server certificate for BROKER_NAMES
# (default: this host's names; e.g. BROKER_NAMES="broker.example.org 192.0.2.10") are created
# once. The agents need /etc/farmwatch/ca.crt (copy it to each Pi with its password file).
# The farmwatch distribution is installed with its web extra, so farmwatch-web (the operators'
# phone page, docs/web.md) runs from the same virtualenv: its unit and /etc/farmwatch/web.env
# (from deploy/env/web.env.example) are installed but not enabled (it needs the alerting API's
# token, a read-only InfluxDB user and accounts first: farmwatch-web-user).
# Grafana is not in Debian: install it from Grafana's APT repository, then either copy
# deploy/grafana/provisioning/ + dashboards/generated/ (see docs/deploy.md) or run
# farmwatch-grafana-push against it.
set -eu

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX=/opt/farmwatch
SECRETS=/etc/farmwatch/secrets
TLS_DIR=/etc/farmwatch/tls
STATE_DIR=/var/lib/farmwatch
MOSQ_CA=/etc/mosquitto/ca_certificates/farmwatch-ca.crt
MOSQ_CERT=/etc/mosquitto/certs/farmwatch-server.crt
MOSQ_KEY=/etc/mosquitto/certs/farmwatch-server.key
FARM_DIR=/etc/farmwatch/farms
ENV_FILE=/etc/farmwatch/collector.env
WEB_ENV_FILE=/etc/farmwatch/web.env

[ "$(id -u)" -eq 0 ] || { echo "run as root (sudo)" >&2; exit 1; }

apt-get update
apt-get install -y --no-install-recommends mosquitto influxdb python3 python3-venv python3-pip \
    openssl

getent group farmwatch >/dev/null || groupadd --system farmwatch
id farmwatch >/dev/null 2>&1 || useradd --system --gid farmwatch --no-create-home \
    --shell /usr/sbin/nologin farmwatch

python3 -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install --quiet --upgrade pip
# setuptools reuses build/ of the checkout: a stale one would put old modules into the wheel
rm -rf "$REPO/build"
# with the web extra (Starlette, uvicorn, Jinja2, argon2-cffi): farmwatch-web, farmwatch-web-user
"$PREFIX/venv/bin/pip" install --quiet "${REPO}[web]"

install -d -m 0750 -o root -g farmwatch /etc/farmwatch "$SECRETS" "$FARM_DIR"
# the collector's quarantine (the unit's StateDirectory; made here for --check-config below)
install -d -m 0750 -o farmwatch -g farmwatch "$STATE_DIR"
for farm_file in "$REPO"/firmware_configs/*.toml; do
    install -m 0640 -o root -g farmwatch "$farm_file" "$FARM_DIR/"
done
if [ -d "$REPO/firmware_configs/register_maps" ]; then
    install -d -m 0750 -o root -g farmwatch "$FARM_DIR/register_maps"
    for map in "$REPO"/firmware_configs/register_maps/*.toml; do
        [ -f "$map" ] && install -m 0640 -o root -g farmwatch "$map" "$FARM_DIR/register_maps/"
    done
fi

# Broker: shipped policy, ACL, password file readable by mosquitto only.
install -m 0644 "$REPO/deploy/mosquitto/conf.d/farmwatch.conf" /etc/mosquitto/conf.d/farmwatch.conf
install -m 0644 "$REPO/deploy/mosquitto/acl" /etc/mosquitto/farmwatch.acl
PASSWD=/etc/mosquitto/farmwatch.passwd

# TLS for the agents: the certificates given, else the installed ones, else new ones.
install -d -m 0755 /etc/mosquitto/ca_certificates /etc/mosquitto/certs
tls_ca=""
if [ -n "${TLS_CA:-}${TLS_CERT:-}${TLS_KEY:-}" ]; then
    if [ -z "${TLS_CA:-}" ] || [ -z "${TLS_CERT:-}" ] || [ -z "${TLS_KEY:-}" ]; then
        echo "TLS_CA, TLS_CERT y TLS_KEY van juntos / go together" >&2
        exit 1
    fi
    tls_ca=$TLS_CA tls_cert=$TLS_CERT tls_key=$TLS_KEY
elif [ ! -f "$MOSQ_CERT" ]; then
    # shellcheck disable=SC2046,SC2086  # a list of names, split on purpose
    sh "$REPO/deploy/mosquitto/make-tls-certs.sh" "$TLS_DIR" \
        ${BROKER_NAMES:-$(hostname -f) $(hostname)}
    tls_ca=$TLS_DIR/ca.crt tls_cert=$TLS_DIR/server.crt tls_key=$TLS_DIR/server.key
fi
if [ -n "$tls_ca" ]; then
    install -m 0644 "$tls_ca" "$MOSQ_CA"
    install -m 0644 "$tls_cert" "$MOSQ_CERT"
    install -m 0640 -o root -g mosquitto "$tls_key" "$MOSQ_KEY"
fi
install -m 0644 "$MOSQ_CA" /etc/farmwatch/ca.crt
[ -f "$PASSWD" ] || install -m 0600 -o mosquitto -g mosquitto /dev/null "$PASSWD"

if [ ! -f "$SECRETS/mqtt-collector-password" ]; then
    umask 077
    python3 -c 'import secrets; print(secrets.token_urlsafe(24))' > "$SECRETS/mqtt-collector-password"
    # fed on stdin twice, so the password never appears on a command line
    { cat "$SECRETS/mqtt-collector-password"; cat "$SECRETS/mqtt-collector-password"; } \
        | mosquitto_passwd "$PASSWD" farmwatch-collector >/dev/null
    chgrp farmwatch "$SECRETS/mqtt-collector-password"
    chmod 0640 "$SECRETS/mqtt-collector-password"
fi
for farm_file in "$REPO"/firmware_configs/*.toml; do
    farm=$(basename "$farm_file" .toml)
    if ! grep -q "^$farm:" "$PASSWD"; then
        "$PREFIX/venv/bin/farmwatch-broker-user" "$farm" --password-file "$PASSWD" \
            --acl-file /etc/mosquitto/farmwatch.acl --secret-out "$SECRETS/$farm.mqtt-password"
    fi
done
chown mosquitto:mosquitto "$PASSWD"
chmod 0600 "$PASSWD"
systemctl restart mosquitto

systemctl enable --now influxdb

if [ ! -f "$ENV_FILE" ]; then
    install -m 0640 -o root -g farmwatch "$REPO/deploy/env/collector.env.example" "$ENV_FILE"
fi
if [ ! -f "$WEB_ENV_FILE" ]; then
    install -m 0640 -o root -g farmwatch "$REPO/deploy/env/web.env.example" "$WEB_ENV_FILE"
fi
# the same check the collector makes at start-up: settings and every farm file
(
    set -a
    # shellcheck source=/dev/null
    . "$ENV_FILE"
    set +a
    # as the service runs: its user must read the secrets and write the quarantine
    runuser -u farmwatch -- "$PREFIX/venv/bin/farmwatch-collector" --check-config
) || { echo "corrija / fix $ENV_FILE or $FARM_DIR and run this again" >&2; exit 1; }
install -m 0644 "$REPO/deploy/systemd/farmwatch-collector.service" \
    "$REPO/deploy/systemd/farmwatch-backfill.service" \
    "$REPO/deploy/systemd/farmwatch-backfill.timer" \
    "$REPO/deploy/systemd/farmwatch-water-balance.service" \
    "$REPO/deploy/systemd/farmwatch-water-balance.timer" \
    "$REPO/deploy/systemd/farmwatch-web.service" /etc/systemd/system/
systemctl daemon-reload
systemctl enable --now farmwatch-collector.service farmwatch-backfill.timer \
    farmwatch-water-balance.timer
echo "farmwatch-collector instalado / installed; logs: journalctl -u farmwatch-collector -f"
echo "Contraseñas de las granjas / farm passwords: $SECRETS/<farm>.mqtt-password"
echo "Agentes / agents: TLS on port 8883, CA certificate /etc/farmwatch/ca.crt"
echo "Página / web page: $WEB_ENV_FILE, farmwatch-web-user add, then" \
    "systemctl enable --now farmwatch-web (docs/web.md)"
