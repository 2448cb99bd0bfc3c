"""``farmwatch-hub``: node configurations from a plan, users from the farm directory, the
definitions applied idempotently, on three real nodes started from the files it wrote."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pydantic import SecretStr
from support.paths import FARM_FILES, FARMS

from collector.hub_cli import main
from farmwatch_local.nats import make_certificates, nats_server_binary
from farmwatch_local.services import free_port
from farmwatch_shared.hub.endpoint import NatsEndpoint
from farmwatch_shared.hub.layout import readings_subject
from farmwatch_shared.hub.link import NatsLink


def _plan(tmp_path: Path) -> tuple[Path, list[tuple[str, int, int]]]:
    nodes = [(f"hub{i}", free_port(), free_port()) for i in (1, 2, 3)]
    lines = [
        'cluster = "farmwatch-cli"',
        f'store_dir = "{tmp_path / "store"}"',
        f'tls_dir = "{tmp_path / "tls"}"',
        "listen_all = false",
        "max_file_store_gb = 1",
    ]
    for name, client, monitor in nodes:
        lines += [
            "[[nodes]]",
            f'name = "{name}"',
            'host = "127.0.0.1"',
            f"client_port = {client}",
            f"cluster_port = {free_port()}",
            f"monitor_port = {monitor}",
        ]
    plan = tmp_path / "hub.toml"
    plan.write_text("\n".join(lines) + "\n")
    return plan, nodes


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
            return bool(json.loads(answer.read()).get("status") == "ok")
    except OSError:
        return False


@contextmanager
def _nodes(conf_dir: Path, nodes: list[tuple[str, int, int]]) -> Iterator[None]:
    binary = nats_server_binary()
    processes = [
        subprocess.Popen(
            [binary, "-c", str(conf_dir / f"{name}.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            pass_fds=(),
            start_new_session=True,
        )
        for name, _, _ in nodes
    ]
    try:
        deadline = time.monotonic() + 30
        while not all(_healthy(monitor) for _, _, monitor in nodes):
            assert time.monotonic() < deadline, "the nodes did not become healthy"
            time.sleep(0.1)
        yield
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(15)


def test_config_then_apply_twice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan, nodes = _plan(tmp_path)
    make_certificates(tmp_path / "tls", [name for name, _, _ in nodes])
    secrets_dir, conf_dir = tmp_path / "secrets", tmp_path / "nats"
    args = ["config", "--plan", str(plan), "--farm-dir", str(FARM_FILES)]
    args += ["--secrets-dir", str(secrets_dir), "--out-dir", str(conf_dir)]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert all(farm in first for farm in FARMS), first
    written = {p.name: p.read_text() for p in conf_dir.iterdir()}
    assert sorted(written) == ["hub1.conf", "hub2.conf", "hub3.conf"]
    password = (secrets_dir / "oax-istmo.password").read_text().strip()
    assert all(password not in text for text in written.values()), "a password in a config"
    assert (secrets_dir / "oax-istmo.password").stat().st_mode & 0o077 == 0
    assert main(args) == 0
    assert "new passwords in" in capsys.readouterr().out
    assert {p.name: p.read_text() for p in conf_dir.iterdir()} == written, "not idempotent"

    servers = ",".join(f"tls://127.0.0.1:{client}" for _, client, _ in nodes)
    admin = ["--servers", servers, "--password-file", str(secrets_dir / "farmwatch-hub.password")]
    admin += ["--ca-file", str(tmp_path / "tls" / "ca.crt")]
    apply = ["apply", *admin, "--max-bytes", str(2**27)]
    with _nodes(conf_dir, nodes):
        assert main(apply) == 0
        created = capsys.readouterr().out
        assert created.count(": created") == 6, created
        assert main(apply) == 0
        again = capsys.readouterr().out
        assert again.count(": unchanged") == 6, again
        assert main([*apply, "--max-ack-pending", "500"]) == 0
        assert capsys.readouterr().out.count(": updated") == 4  # every consumer has the bound

        link = NatsLink(
            NatsEndpoint(
                tuple(servers.split(",")),
                "farm",
                "oax-istmo",
                SecretStr(password),
                tmp_path / "tls" / "ca.crt",
            )
        )
        link.start()
        try:
            assert link.wait_connected(15)

            async def publish() -> object:
                return await link.client.jetstream().publish(
                    readings_subject("oax-istmo", "pi-1"), b"{}", timeout=5
                )

            ack = link.submit(publish()).result(10)
            assert getattr(ack, "stream", None) == "FARMWATCH"
        finally:
            link.stop()
        assert main(["status", *admin]) == 0
        status = capsys.readouterr().out
        assert "stream FARMWATCH: leader hub" in status
        assert "1 messages" in status
