#!/bin/sh
# Create the broker's TLS certificates: a CA of its own (kept if DIR already holds one) and a
# server certificate signed by it for the names agents connect to.
#   sh deploy/mosquitto/make-tls-certs.sh DIR NAME [NAME...]
# NAME: a DNS name (broker.example.org) or an IP address (192.0.2.10); the first is also the
# certificate's common name. Writes DIR/ca.key (0600: keep it on the server, it signs),
# DIR/ca.crt (give it to every agent: FARMWATCH_EDGE_MQTT_TLS_CA_FILE), DIR/server.key (0600)
# and DIR/server.crt (Mosquitto's keyfile and certfile). Run by deploy/install-collector.sh.
set -eu

[ $# -ge 2 ] || { echo "uso / usage: $0 DIR NAME [NAME...]" >&2; exit 2; }
dir=$1
shift
umask 077
mkdir -p "$dir"

san=""
for name in "$@"; do
    case $name in
        *:*) entry="IP:$name" ;;           # IPv6
        *[!0-9.]*) entry="DNS:$name" ;;    # a name
        *) entry="IP:$name" ;;             # IPv4
    esac
    san="${san:+$san,}$entry"
done

curve="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
if [ ! -f "$dir/ca.key" ] || [ ! -f "$dir/ca.crt" ]; then
    # shellcheck disable=SC2086  # $curve is several options
    openssl req -x509 $curve -keyout "$dir/ca.key" -out "$dir/ca.crt" -days 3650 \
        -subj "/CN=farmwatch broker CA" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi
# shellcheck disable=SC2086
openssl req $curve -keyout "$dir/server.key" -out "$dir/server.csr" -subj "/CN=$1" 2>/dev/null
printf 'subjectAltName=%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' \
    "$san" > "$dir/server.ext"
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -CAcreateserial -out "$dir/server.crt" -days 825 -extfile "$dir/server.ext" 2>/dev/null
rm -f "$dir/server.csr" "$dir/server.ext"
chmod 0644 "$dir/ca.crt" "$dir/server.crt"
echo "Certificados / certificates: $dir/ca.crt (for the agents), $dir/server.crt ($san)"
