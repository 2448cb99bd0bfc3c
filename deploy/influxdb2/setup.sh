#!/bin/sh
# farmwatch on InfluxDB 2.x: the equivalent of `farmwatch-influx-setup` (1.x).
#   buckets  farmwatch (raw, 90 days) · farmwatch_15m (5 years) · farmwatch_1d (forever)
#   DBRP     database "farmwatch", retention policies raw / agg_15m / agg_1d → those buckets,
#            so the dashboards' InfluxQL runs unchanged through the v1 query API
#   tasks    tasks/downsample_15m.flux, tasks/downsample_1d.flux (like the continuous queries)
#   v1 user  "grafana", read-only on the three buckets (password from a file)
#
# Runs as an init script of the official influxdb:2 image (compose mounts it into
# /docker-entrypoint-initdb.d, after the initial setup created org + bucket "farmwatch"), or by
# hand on a server with the `influx` CLI configured for an operator token:
#   FARMWATCH_ORG=farmwatch GRAFANA_PASSWORD_FILE=/etc/farmwatch/influx-grafana-password \
#     sh deploy/influxdb2/setup.sh
# Safe to run again: existing buckets, mappings, tasks and users are left as they are.
set -eu

ORG="${FARMWATCH_ORG:-${DOCKER_INFLUXDB_INIT_ORG:-farmwatch}}"
RAW_BUCKET="${DOCKER_INFLUXDB_INIT_BUCKET:-farmwatch}"
RAW_RETENTION="${FARMWATCH_RAW_RETENTION:-2160h}"     # 90 days
AGG_15M_RETENTION="${FARMWATCH_AGG_15M_RETENTION:-43800h}"  # 5 years
TASKS_DIR="${FARMWATCH_TASKS_DIR:-$(dirname "$0")/tasks}"
GRAFANA_PASSWORD_FILE="${GRAFANA_PASSWORD_FILE:-/run/secrets/influx_grafana_password}"

bucket_id() {
    influx bucket list --org "$ORG" --name "$1" --hide-headers 2>/dev/null | cut -f1
}

ensure_bucket() {  # name retention
    if [ -z "$(bucket_id "$1")" ]; then
        influx bucket create --org "$ORG" --name "$1" --retention "$2" >/dev/null
        echo "bucket $1 created (retention $2)"
    fi
}

ensure_dbrp() {  # rp bucket [--default]
    rp=$1
    bucket=$2
    shift 2
    if ! influx v1 dbrp list --org "$ORG" --db farmwatch --rp "$rp" --hide-headers 2>/dev/null \
        | grep -q .; then
        influx v1 dbrp create --org "$ORG" --db farmwatch --rp "$rp" \
            --bucket-id "$(bucket_id "$bucket")" "$@" >/dev/null
        echo "DBRP farmwatch/$rp -> $bucket"
    fi
}

if [ -z "$(bucket_id "$RAW_BUCKET")" ]; then
    influx bucket create --org "$ORG" --name "$RAW_BUCKET" --retention "$RAW_RETENTION" >/dev/null
else
    influx bucket update --id "$(bucket_id "$RAW_BUCKET")" --retention "$RAW_RETENTION" >/dev/null
fi
ensure_bucket farmwatch_15m "$AGG_15M_RETENTION"
ensure_bucket farmwatch_1d 0

ensure_dbrp raw "$RAW_BUCKET" --default
ensure_dbrp agg_15m farmwatch_15m
ensure_dbrp agg_1d farmwatch_1d

for file in "$TASKS_DIR"/*.flux; do
    name=$(sed -n 's/^option task = {name: "\([^"]*\)".*/\1/p' "$file")
    if ! influx task list --org "$ORG" --hide-headers 2>/dev/null | grep -q "$name"; then
        influx task create --org "$ORG" --file "$file" >/dev/null
        echo "task $name created"
    fi
done

if [ -r "$GRAFANA_PASSWORD_FILE" ] \
    && ! influx v1 auth list --org "$ORG" --hide-headers 2>/dev/null | grep -qw grafana; then
    # The CLI only takes the password as an argument; this runs once, inside the init
    # container or an operator's shell, and the value is never echoed.
    influx v1 auth create --org "$ORG" --username grafana \
        --password "$(cat "$GRAFANA_PASSWORD_FILE")" \
        --read-bucket "$(bucket_id "$RAW_BUCKET")" \
        --read-bucket "$(bucket_id farmwatch_15m)" \
        --read-bucket "$(bucket_id farmwatch_1d)" >/dev/null
    echo "v1 user grafana created (read-only)"
fi
