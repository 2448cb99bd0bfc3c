// farmwatch: 15-minute aggregates on InfluxDB 2.x, the equivalent of the 1.x continuous
// queries cq_*_15m (collector/influx_setup.py): same measurements, tags and field names, so
// the dashboards' InfluxQL reads "agg_15m" (DBRP mapping → bucket farmwatch_15m) unchanged.
// Recomputes the last 6 hours each run, like RESAMPLE FOR 6h (late readings from an agent
// that was offline are folded in).
import "date"

option task = {name: "farmwatch-downsample-15m", every: 5m, offset: 30s}

start = date.truncate(t: -6h, unit: 15m)
raw = from(bucket: "farmwatch") |> range(start: start)
levels = raw
    |> filter(fn: (r) => r._measurement == "water_level" or r._measurement == "soil_moisture")
rain = raw |> filter(fn: (r) => r._measurement == "rain" and r._field == "value")
value = levels |> filter(fn: (r) => r._field == "value")

window = (tables=<-, fn, field) => tables
    |> aggregateWindow(every: 15m, fn: fn, timeSrc: "_start", createEmpty: false)
    |> set(key: "_field", value: field)
    |> to(bucket: "farmwatch_15m")

value |> window(fn: mean, field: "value")
value |> window(fn: min, field: "value_min")
value |> window(fn: max, field: "value_max")
value |> window(fn: count, field: "samples")
levels |> filter(fn: (r) => r._field == "volume_l") |> window(fn: mean, field: "volume_l")
rain |> window(fn: sum, field: "value")
rain |> window(fn: count, field: "samples")
