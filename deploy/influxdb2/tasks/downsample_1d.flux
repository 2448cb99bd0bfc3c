// farmwatch: daily aggregates on InfluxDB 2.x from the 15-minute ones (the equivalent of the
// 1.x continuous queries cq_*_1d). Days start at local midnight in Oaxaca and Chiapas
// (UTC−6: offset 6h). Recomputes the last two days each run (RESAMPLE FOR 2d).
import "date"

option task = {name: "farmwatch-downsample-1d", every: 1h, offset: 2m}

start = date.add(d: 6h, to: date.truncate(t: -3d, unit: 1d))
agg = from(bucket: "farmwatch_15m") |> range(start: start)
levels = agg
    |> filter(fn: (r) => r._measurement == "water_level" or r._measurement == "soil_moisture")
rain = agg |> filter(fn: (r) => r._measurement == "rain")

day = (tables=<-, fn, field) => tables
    |> aggregateWindow(every: 1d, offset: 6h, fn: fn, timeSrc: "_start", createEmpty: false)
    |> set(key: "_field", value: field)
    |> to(bucket: "farmwatch_1d")

levels |> filter(fn: (r) => r._field == "value") |> day(fn: mean, field: "value")
levels |> filter(fn: (r) => r._field == "value_min") |> day(fn: min, field: "value_min")
levels |> filter(fn: (r) => r._field == "value_max") |> day(fn: max, field: "value_max")
levels |> filter(fn: (r) => r._field == "samples") |> day(fn: sum, field: "samples")
levels |> filter(fn: (r) => r._field == "volume_l") |> day(fn: mean, field: "volume_l")
rain |> filter(fn: (r) => r._field == "value") |> day(fn: sum, field: "value")
rain |> filter(fn: (r) => r._field == "samples") |> day(fn: sum, field: "samples")
