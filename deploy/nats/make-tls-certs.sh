#!/bin/sh
# Create a hub node's TLS certificate, signed by the hub's own CA (created, or kept if DIR
# already holds one): the same certificate serves agents and services (server use) and the
# routes to the other nodes (client and server use: the nodes verify each other).
#   sh deploy/nats/make-tls-certs.sh DIR NODE NAME [NAME...]
# NODE: the node's name in the cluster (hub1); NAME: a DNS name (hub1.example.org) or an IP
# address (192.0.2.11) agents and the other nodes use to reach it; the first is also the
# certificate's common name. Writes DIR/ca.key (0600: keep it off the nodes once they have
# their certificates), DIR/ca.crt (to every node, agent and service:
# FARMWATCH_*_NATS_TLS_CA_FILE), DIR/NODE.key (0600) and DIR/NODE.crt.
set -eu

[ $# -ge 3 ] || { echo "uso / usage: $0 DIR NODE NAME [NAME...]" >&2; exit 2; }
dir=$1
node=$2
shift 2
case $node in
    *[!a-z0-9_-]*) echo "NODE: letters, digits, - and _ only: $node" >&2; exit 2 ;;
esac
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
        -subj "/CN=farmwatch hub CA" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi
# shellcheck disable=SC2086
openssl req $curve -keyout "$dir/$node.key" -out "$dir/$node.csr" -subj "/CN=$1" 2>/dev/null
printf 'subjectAltName=%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n' \
    "$san" > "$dir/$node.ext"
openssl x509 -req -in "$dir/$node.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -CAcreateserial -out "$dir/$node.crt" -days 825 -extfile "$dir/$node.ext" 2>/dev/null
rm -f "$dir/$node.csr" "$dir/$node.ext"
chmod 0644 "$dir/ca.crt" "$dir/$node.crt"
echo "Certificados / certificates: $dir/ca.crt (for agents and services), $dir/$node.crt ($san)"
