"""``make bench``: start Mosquitto and InfluxDB, run every benchmark, print and record the table.

Each figure is the median of several runs with its spread, next to a baseline measured in the
same run on the same servers, and the ratio of the two. The table replaces the generated part
of ``docs/performance.md`` (between its markers) unless ``--no-write`` is given.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from benchmarks import alert_latency, bill, dashboard, edge, hub, ingest, web
from benchmarks.common import REPO, Result, Stack, figure, spread
from edge.settings import EdgeSettings
from farmwatch_local.install import install_checkout

BEGIN = "<!-- bench:begin (written by `make bench`; edit outside the markers) -->"
END = "<!-- bench:end -->"
DOC = REPO / "docs" / "performance.md"
MIB = 1024.0
PHONE_TEXT = "360×740"


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--repeats", type=int, default=3, help="runs per ingest figure")
    parser.add_argument("--no-write", action="store_true", help="do not update the docs")
    parser.add_argument("--output", type=Path, default=DOC, help="markdown file to update")
    parser.add_argument(
        "--bill-batches",
        type=int,
        default=0,
        help="batch periods in the bill's steady window (0: whole status intervals, 3 shipped)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.monotonic()
    results: list[Result] = []
    extra: list[str] = []
    with tempfile.TemporaryDirectory(prefix="farmwatch-bench-") as tmp:
        workdir = Path(tmp)
        stack = Stack(workdir)
        stack.start()
        try:
            results += run_ingest(stack, args.repeats)
            results += run_edge(stack, workdir, args.repeats, extra)
            results += run_bill(stack, workdir, args.bill_batches, extra)
            results += run_dashboard(stack, extra)
            results += run_web(stack, workdir, extra)
            results += run_hub(stack, workdir, args.repeats, extra)
            results += run_alert_latency(workdir)
        finally:
            stack.stop()
    elapsed = time.monotonic() - started
    results.sort(key=lambda r: (int(r.number.rstrip("abcdefghij")), r.number))
    table = render(results, extra, elapsed)
    print(table)
    if not args.no_write:
        update_doc(args.output, table)
        print(f"written to {args.output}")
    return 0


def progress(text: str) -> None:
    """One line on stderr, so the table on stdout stays clean."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def repeat(times: int, what: str, run: Callable[[], float]) -> list[float]:
    """Run a measurement ``times`` times."""
    samples = []
    for i in range(times):
        samples.append(run())
        progress(f"{what} #{i + 1}: {figure(samples[-1])}")
    return samples


def run_ingest(stack: Stack, repeats: int) -> list[Result]:
    """Benchmarks 1–3."""
    batched = ingest.make_workload(1000, 200, compress=True)
    single = ingest.make_workload(30_000, 1, compress=False)

    direct: list[float] = []
    fw_batched: list[float] = []
    counting: list[float] = []
    fw_single: list[float] = []
    naive_single: list[float] = []
    naive_batched: list[float] = []
    runs = [
        ("database direct", direct, lambda: ingest.database_direct(stack, batched)),
        ("collector, batched", fw_batched, lambda: ingest.drain_rate(stack, "collector", batched)),
        ("paho counter, single", counting, lambda: ingest.drain_rate(stack, "counter", single)),
        ("collector, single", fw_single, lambda: ingest.drain_rate(stack, "collector", single)),
        ("naive bridge, single", naive_single, lambda: ingest.drain_rate(stack, "naive", single)),
        (
            "naive bridge, batched",
            naive_batched,
            lambda: ingest.drain_rate(stack, "naive", batched),
        ),
    ]
    for i in range(repeats):
        for what, samples, run in runs:  # interleaved: drifts of the machine hit all alike
            samples.extend(repeat(1, f"{what} ({i + 1})", run))
    return [
        Result(
            "1",
            "Ingest, edge batches (200 readings/message, zlib), QoS 1, ack after write",
            "readings/s",
            fw_batched,
            "InfluxDB alone: same points POSTed in 5k batches",
            direct,
            "ratio ≥ 0.5",
            lambda r: r.ratio >= 0.5,
        ),
        Result(
            "2",
            "Ingest, one reading per message, QoS 1, ack after write",
            "readings/s",
            fw_single,
            "paho subscriber that only counts",
            counting,
            "ratio ≥ 0.8",
            lambda r: r.ratio >= 0.8,
        ),
        Result(
            "3",
            "Ingest, edge batches (figure 1)",
            "readings/s",
            fw_batched,
            "naive bridge (json + Point, POST every 5k in the callback), one reading/message",
            naive_single,
            "ratio ≥ 5",
            lambda r: r.ratio >= 5,
        ),
        Result(
            "3b",
            "Ingest, edge batches (figure 1)",
            "readings/s",
            fw_batched,
            "the same naive bridge on the same edge batches",
            naive_batched,
        ),
    ]


def run_edge(stack: Stack, workdir: Path, repeats: int, extra: list[str]) -> list[Result]:
    """Benchmarks 4–6."""
    # the agent as a Pi runs it: the wheel in a fresh virtualenv, no development tools
    installed = install_checkout(REPO, workdir / "install")
    footprints = []
    bare = []
    for i in range(max(2, repeats - 1)):
        footprints.append(edge.agent_footprint(stack, workdir, installed))
        bare.append(edge.bare_interpreter(installed))
        progress(f"edge agent footprint #{i + 1}: {footprints[-1]}")
    template = workdir / "outbox-day.sqlite3"
    filled = time.perf_counter()
    readings = edge.fill_outbox(template)
    fill_rate = readings / (time.perf_counter() - filled)
    drains = []
    plain = []
    for i in range(repeats + 2):
        drains.append(edge.drain_outbox(stack, template, workdir))
        plain.append(edge.plain_publisher(stack, template))
        progress(f"outbox drain #{i + 1}: {figure(drains[-1].readings_per_s)}/s")
    # a day is only 29 messages (a few ms per run): a week gives steadier figures
    week = workdir / "outbox-week.sqlite3"
    edge.fill_outbox(week, days=7)
    week_drains = []
    week_plain = []
    for i in range(repeats):
        week_drains.append(edge.drain_outbox(stack, week, workdir).readings_per_s)
        week_plain.append(edge.plain_publisher(stack, week))
        progress(f"outbox drain, week #{i + 1}: {figure(week_drains[-1])}/s")
    wire, single, payload = edge.uplink_bytes(drains[0], template)
    hours = footprints[0].readings // 240
    extra.append(
        f"- Edge: the agent installed from the wheel in a fresh virtualenv (`pip install` of the "
        f"checkout, as `deploy/install-edge.sh` does); {footprints[0].readings} readings fed "
        f"per footprint run "
        f"({hours} hour-equivalents of the 4-sensor oax-mixteca agent at one sample a minute); "
        f"RSS right after start "
        f"{figure(footprints[0].rss_start_kib / MIB)} MiB, after the last reading "
        f"{figure(footprints[0].rss_end_kib / MIB)} MiB (no growth beyond noise = no leak)."
    )
    extra.append(
        f"- Outbox filled with `Outbox.add` (SQLite WAL, synchronous=FULL): "
        f"{figure(fill_rate)} readings/s on this disk; the day offline is {readings} readings "
        f"in {drains[0].messages} messages; payload alone {payload:.1f} B/reading."
    )
    extra.append(
        "- Edge agent resident memory by import, each in a fresh interpreter of the install "
        "(what the 30 MiB target is spent on; the second row imports every library the agent's "
        "modules import, without farmwatch's code and pydantic: the floor of this stack):"
    )
    extra.append("")
    extra.append("  | after importing | RSS (MiB) | modules loaded |")
    extra.append("  | --- | ---: | ---: |")
    for index, (module, rss, modules) in enumerate(edge.import_footprint(installed, workdir)):
        name = module if index == 1 else f"`{module}`"
        extra.append(f"  | {name} | {rss / MIB:.1f} | {modules} |")
    extra.append("")
    return [
        Result(
            "4",
            "Edge agent RSS after an hour-equivalent of readings",
            "MiB",
            [f.rss_hour_kib / MIB for f in footprints],
            "bare Python interpreter of the install",
            [b[1] / MIB for b in bare],
            "≤ 30 MiB",
            lambda r: r.median <= 30,
        ),
        Result(
            "4b",
            "Edge agent CPU time per reading (serial → outbox → MQTT, shipped settings)",
            "ms",
            [f.cpu_per_reading_ms for f in footprints],
        ),
        Result(
            "4c",
            "Edge agent start-up until it talks to the microcontroller",
            "s",
            [f.serial_ready_s for f in footprints],
            "bare Python interpreter of the install, start-up",
            [b[0] for b in bare],
        ),
        Result(
            "4d",
            "Edge agent start-up until its online status is on the broker",
            "s",
            [f.online_s for f in footprints],
        ),
        Result(
            "5d",
            "Drain only (not the bill): MQTT PUBLISH bytes per reading of a day's outbox drain, "
            "batches of 200 + zlib",
            "B",
            [wire],
            "the same readings as one JSON message each",
            [single],
        ),
        Result(
            "6",
            "Outbox drain after a simulated day offline (real EdgeAgent, acked readings)",
            "readings/s",
            [d.readings_per_s for d in drains],
            "bare paho publisher, same batches pre-encoded, same window of 8",
            plain,
            "≥ 20,000/s",
            lambda r: r.median >= 20_000,
        ),
        Result(
            "6b",
            "Outbox drain after a simulated week offline (40,320 readings)",
            "readings/s",
            week_drains,
            "bare paho publisher, same batches pre-encoded, same window of 8",
            week_plain,
            "≥ 20,000/s",
            lambda r: r.median >= 20_000,
        ),
    ]


def run_alert_latency(workdir: Path) -> list[Result]:
    """Benchmark 10: threshold crossing at the microcontroller to AT+CMGS at the modem, with
    the shipped batch age (the crossing is news), against the alerting service alone."""
    age = EdgeSettings.model_fields["batch_max_age_s"].default
    progress(f"alert latency: agent path (batch age {age:g} s) and the alerting service alone")
    logging.getLogger("collector.alerts").setLevel(logging.ERROR)  # 60 transitions logged
    samples = {}
    for path in ("agent", "mqtt"):
        (workdir / f"alert-{path}").mkdir()
        samples[path] = alert_latency.run(30, path, age, workdir / f"alert-{path}")
    agent, alone = samples["agent"], samples["mqtt"]
    return [
        Result(
            "10",
            f"Alert latency, crossing at the microcontroller → AT+CMGS, batch age {age:g} s",
            "ms",
            [x * 1000 for x in agent],
            "the alerting service alone (the crossing published to the broker)",
            [x * 1000 for x in alone],
            "median ≤ 5 s with a batch age ≥ 15 min",
            lambda r: r.median <= 5000 and age >= 900,
        )
    ]


def run_bill(stack: Stack, workdir: Path, batches: int, extra: list[str]) -> list[Result]:
    """Benchmark 5: the data bill per farm-month over TLS, against the JSON-per-reading baseline."""
    cfg = bill.BillConfig(batches=batches)
    periods = bill.steady_batches(cfg)
    progress(
        f"bill: three farms and their baselines, {', '.join(cfg.hub_farms)} on the hub, "
        f"{periods} batch periods of steady state"
    )
    bills = bill.measure(stack.influx.url, workdir / "bill", cfg)
    agents = {b.farm: b for b in bills if b.who == "farmwatch"}
    bases = {b.farm: b for b in bills if b.who == "baseline"}
    hubs = {b.farm: b for b in bills if b.who == "farmwatch, hub"}
    extra.append(
        "- Data bill (5, 5b, 5c): `benchmarks/bill.py`; per farm the shipped agent over the "
        "shipped TLS listener through a counting proxy (kernel TCP_INFO of the agent's socket: "
        "TLS bytes and segments both ways, + 52 B TCP/IP per segment), steady state over "
        f"{periods} batch periods (with whole status intervals when a heartbeat falls between "
        "drops; else each status is the one put on a reconnect, billed there) scaled "
        "to a day, plus a link drop every "
        f"{bill.BillConfig().drop_every_h:g} h (full reconnect); month = 30 days. Baseline: one "
        "JSON message per reading, QoS 1, MQTT 3.1.1, 60 s keepalive, TLS, same rates, same run."
    )
    extra.append(
        "- Data bill on the hub (5e, 5f): `benchmarks/bill_hub.py`; the same agent with "
        "`transport=jetstream` to one `nats-server` node over TLS (the shipped node "
        "configuration; stream, bucket and consumers by `farmwatch-hub apply` with its defaults "
        "but `--replicas 1`: replication is between nodes, not on the farm's link), through the "
        f"same proxy and drop, steady state over {cfg.hub_batches} batch periods (its presence "
        "puts and pings come every 30 minutes); its presence put is its status. Messages: the "
        "agent's publishes (batches, presence), each answered by a JetStream acknowledgement."
    )
    extra.append("")
    extra += ["  " + line for line in bill.render(bills)]
    extra.append("")
    results = []
    for number, farm in zip(("5", "5b", "5c"), agents, strict=False):
        agent, base = agents[farm], bases[farm]
        is_target = farm == "oax-mixteca"
        results.append(
            Result(
                number,
                f"Data bill per farm-month, {farm} (TLS + TCP/IP, reconnects included)",
                "MB",
                [agent.wire_per_month / 1e6],
                "one JSON message per reading, QoS 1, 60 s keepalive, TLS",
                [base.wire_per_month / 1e6],
                "≤ 3 MB and ≤ 1/20 of the baseline" if is_target else "",
                (lambda r: r.median <= 3 and r.ratio <= 0.05) if is_target else None,
            )
        )
    for (number, per_reading), farm in zip((("5e", "5f"), ("5g", "5h")), hubs, strict=False):
        on_hub, on_mqtt = hubs[farm], agents.get(farm)
        results += [
            Result(
                number,
                f"Data bill per farm-month, {farm} on the hub (JetStream, TLS + TCP/IP, "
                "reconnects included)",
                "MB",
                [on_hub.wire_per_month / 1e6],
                "the same farm's agent on MQTT (figure 5)" if on_mqtt else "",
                [on_mqtt.wire_per_month / 1e6] if on_mqtt else [],
            ),
            Result(
                per_reading,
                f"Bytes on the wire per reading, {farm} on the hub",
                "B",
                [on_hub.wire_per_reading],
                "the same farm's agent on MQTT" if on_mqtt else "",
                [on_mqtt.wire_per_reading] if on_mqtt else [],
            ),
        ]
    return results


def run_dashboard(stack: Stack, extra: list[str]) -> list[Result]:
    """Benchmark 7."""
    progress("dashboard: writing a year of 1-minute data for three farms")
    data = dashboard.load_year(stack)
    progress(
        f"dashboard: {data.points} points in {data.write_s:.1f} s, roll-ups {data.rollup_s:.1f} s"
    )
    times = dashboard.panel_times(data, repeats=5)
    raw_times, raw_rows = times["raw"]
    extra.append(
        f"- Dashboard data: {data.points:,} raw points written in {data.write_s:.1f} s "
        f"({data.points / data.write_s:,.0f} points/s, 5k per POST); roll-ups for the year "
        f"(`collector.influx_setup.backfill`) {data.rollup_s:.1f} s. Panel: "
        f"`{dashboard.PANEL.format(rp='<rp>')}` ({raw_rows} rows)."
    )
    return [
        Result(
            "7" if rp == "agg_15m" else "7b",
            f"Year-long daily panel on the `{rp}` aggregates",
            "s",
            times[rp][0],
            "the same query on raw 1-minute data",
            raw_times,
        )
        for rp in ("agg_15m", "agg_1d")
    ]


def run_web(stack: Stack, workdir: Path, extra: list[str]) -> list[Result]:
    """Benchmark 8: the farm page's weight in Chromium, its server time at 3 and 100 farms."""
    times = {}
    page = None
    for count in (3, 100):
        progress(f"web: {count} farms of data, farmwatch-web and the alerting service")
        measured, weight = web.measure(stack, workdir / f"web-{count}", count, repeats=30)
        times[count] = measured
        page = weight or page
    assert page is not None
    grafana_kb = web.GRAFANA_ENTRY_JS_KIB * 1024 / 1000
    extra.append(
        f"- Farm page (`farmwatch-web`, oax-mixteca, Chromium {PHONE_TEXT}): first load after "
        f"the login with an empty cache {page.first_bytes:,} B on the wire ("
        + ", ".join(f"{e['name'].rsplit('/', 1)[-1]} {e['transfer']:,} B" for e in page.entries)
        + f"; the HTML is {page.html_decoded:,} B decoded), reload {page.cached_bytes:,} B "
        f"(304 + stylesheet from the cache). Grafana's entry JavaScript alone: 8.6 MiB "
        f"(grafana/grafana#92490). Data: {times[3].points:,} points for 3 farms, "
        f"{times[100].points:,} for 100; server time as the application reports it "
        f"(`Server-Timing`): {statistics.median(times[3].app_ms):.1f} ms and "
        f"{statistics.median(times[100].app_ms):.1f} ms."
    )
    return [
        Result(
            "8",
            "Farm page, first authenticated load (HTML + CSS + images, compressed)",
            "kB",
            [page.first_bytes / 1000],
            "Grafana's entry JavaScript alone (published figure)",
            [grafana_kb],
            "≤ 30 kB",
            lambda r: r.median <= 30,
        ),
        Result(
            "8b",
            "Farm page, reload with HTTP caching (ETag 304, stylesheet cached)",
            "kB",
            [page.cached_bytes / 1000],
        ),
        *(
            Result(
                "8c" if count == 3 else "8d",
                f"Farm page, request to last byte on loopback, {count} farms of data",
                "ms",
                times[count].client_ms,
            )
            for count in (3, 100)
        ),
    ]


def run_hub(stack: Stack, workdir: Path, repeats: int, extra: list[str]) -> list[Result]:
    """Benchmark 9: the hub (three NATS JetStream nodes, R3) with 1, 2 and 3 collectors against
    one collector on Mosquitto, on benchmark 1's batches and on single readings."""
    batched = ingest.make_workload(1000, 200, compress=True)
    single = ingest.make_workload(20_000, 1, compress=False)
    mosquitto: list[float] = []
    mosquitto_single: list[float] = []
    drains: dict[int, list[float]] = {1: [], 2: [], 3: []}
    published: list[float] = []
    hub_single: list[float] = []
    with hub.hub_bench(workdir / "hub") as bench:
        for i in range(repeats):
            mosquitto += repeat(
                1,
                f"mosquitto, batched ({i + 1})",
                lambda: ingest.drain_rate(stack, "collector", batched),
            )
            for count, samples in drains.items():
                run = bench.run(stack, batched, count)
                samples.append(run.drain_per_s)
                published.append(run.publish_per_s)
                progress(f"hub, {count} collector(s) ({i + 1}): {figure(run.drain_per_s)}")
            mosquitto_single += repeat(
                1,
                f"mosquitto, single ({i + 1})",
                lambda: ingest.drain_rate(stack, "collector", single),
            )
            hub_single += repeat(
                1, f"hub, single ({i + 1})", lambda: bench.run(stack, single, 1).drain_per_s
            )
    synced: list[float] = []
    synced_published: list[float] = []
    with hub.hub_bench(workdir / "hub-sync", sync_interval="always") as bench:
        for i in range(repeats):
            run = bench.run(stack, batched, 1)
            synced.append(run.drain_per_s)
            synced_published.append(run.publish_per_s)
            progress(f"hub, sync always ({i + 1}): {figure(run.drain_per_s)}")
    extra.append(
        f"- Hub (benchmark 9): three `nats-server` {hub.server_version()} nodes on this machine "
        f"(R3, no TLS, as Mosquitto here), the stream filled first; publishing the batches into "
        f"it with JetStream acknowledgements, 64 in flight: {figure(statistics.median(published))} "
        f"readings/s ({figure(statistics.median(synced_published))} with `sync_interval: "
        "always`). Every process (3 nodes, the collectors, InfluxDB) shares the machine's "
        f"{os.cpu_count()} CPUs: more collectors add no CPU here."
    )
    results = [
        Result(
            f"9{letter}",
            f"Hub ingest, edge batches, {count} collector(s) sharing the durable consumer",
            "readings/s",
            drains[count],
            "one collector on one Mosquitto (figure 1's setup)",
            mosquitto,
        )
        for letter, count in (("a", 1), ("b", 2), ("c", 3))
    ]
    return [
        *results,
        Result(
            "9d",
            "Hub ingest, edge batches, 1 collector, every write synced (sync_interval always)",
            "readings/s",
            synced,
            "the same on the default sync (figure 9a)",
            drains[1],
        ),
        Result(
            "9e",
            "Hub ingest, one reading per message, 1 collector",
            "readings/s",
            hub_single,
            "one collector on one Mosquitto, one reading per message",
            mosquitto_single,
        ),
    ]


def machine() -> list[str]:
    """What the figures were measured on."""
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])

    def tool_version(command: list[str]) -> str:
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
        except OSError:
            return "?"
        text = (out.stdout or out.stderr).strip().splitlines()
        return text[0] if text else "?"

    return [
        f"- Machine: {cpu}, {os.cpu_count()} CPUs, {mem_kib / MIB / MIB:.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}; paho-mqtt {version('paho-mqtt')}, "
        f"msgspec {version('msgspec')}, influxdb-client {version('influxdb-client')}, "
        f"urllib3 {version('urllib3')}",
        f"- {tool_version(['mosquitto', '-h'])}; InfluxDB {tool_version(['influxd', 'version'])}",
    ]


def render(results: list[Result], extra: list[str], elapsed_s: float) -> str:
    """The markdown section with the table."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Measured {when} with `make bench` (`python -m benchmarks.run`), "
        f"whole run {elapsed_s / 60:.1f} min.",
        "",
        *machine(),
        "",
        "| # | figure | farmwatch (median, spread) | baseline | baseline (median, spread) "
        "| ratio | target | met |",
        "| --- | --- | ---: | --- | ---: | ---: | --- | --- |",
    ]
    for r in results:
        base = f"{figure(r.baseline_median)} {r.unit} ({spread(r.baseline)})" if r.baseline else "–"
        ratio = f"{r.ratio:.2f}" if r.baseline else "–"
        lines.append(
            f"| {r.number} | {r.name} | {figure(r.median)} {r.unit} ({spread(r.samples)}) "
            f"| {r.baseline_name or '–'} | {base} | {ratio} | {r.target or '–'} | {r.met or '–'} |"
        )
    lines += [
        "",
        "Ratio = farmwatch median / baseline median; spread = half the min–max range.",
        "",
    ]
    lines += extra
    return "\n".join(lines)


def update_doc(path: Path, table: str) -> None:
    """Replace the generated section of the performance document."""
    text = path.read_text() if path.exists() else f"# Performance\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")


if __name__ == "__main__":
    sys.exit(main())
