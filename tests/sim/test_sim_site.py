"""The control endpoint, the written config, PLC and MQTT rigs, and worker processes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
import sys
import tomllib
from pathlib import Path

import httpx
import pytest
from pymodbus.client import AsyncModbusTcpClient
from simtest_helpers import cgminer, f32, u32

from minerd.errors import ProfileError
from minerd.model import RigProtocol
from minerd.settings import load_settings
from minerd.sim import RigGroupSpec, SimSite, SiteSpec

sys.path.insert(0, str(Path(__file__).parents[1]))
from servers import ServerProcess
from waiting import wait_until_sync


def small_spec(base_octet: int, **kw: object) -> SiteSpec:
    return SiteSpec(
        groups=(
            RigGroupSpec("bitmain-s19jpro", 4, RigProtocol.LUXOS),
            RigGroupSpec("bitmain-s21", 2, RigProtocol.CGMINER),
        ),
        rigs_per_container=3,
        rig_port=0,
        base_octet=base_octet,
        speed=10.0,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.asyncio
async def test_truth_and_fault_endpoint_over_http() -> None:
    async with (
        SimSite(small_spec(81, workers=1)) as site,
        httpx.AsyncClient(base_url=site.control_url, timeout=5) as http,
    ):
        truth = (await http.get("/truth")).json()
        assert truth["site"]["power_w"] > truth["site"]["rig_power_w"] > 0
        rig = truth["rigs"][0]
        for key in (
            "id",
            "host",
            "port",
            "state",
            "power_w",
            "hashrate_ths",
            "protocol",
            "model",
            "container",
            "profile",
            "chip_temp_c",
            "fan_rpm_min",
            "boards_ok",
            "faults",
        ):
            assert key in rig, key
        assert {m["name"] for m in truth["meters"]} == {"grid", "feeder-c001", "feeder-c002"}
        assert all({"power_w", "role", "endpoint", "unit_id"} <= set(m) for m in truth["meters"])
        r = await http.post("/faults", json={"device": rig["id"], "fault": "hung"})
        assert r.status_code == 200
        r = await http.post("/faults", json={"device": "grid", "fault": "frozen"})
        assert r.status_code == 200
        truth = (await http.get("/truth")).json()
        assert truth["rigs"][0]["faults"] == ["hung"]
        assert truth["rigs"][0]["state"] == "offline"
        assert truth["meters"][0]["faults"] == ["frozen"]
        assert (
            await http.post("/faults", json={"device": "nope", "fault": "hung"})
        ).status_code == 404
        bad = await http.post("/faults", json={"device": rig["id"], "fault": "melted"})
        assert bad.status_code == 400
        r = await http.request("DELETE", "/faults", json={"device": rig["id"]})
        assert r.status_code == 200
        truth = (await http.get("/truth")).json()
        assert truth["rigs"][0]["faults"] == [] and truth["meters"][0]["faults"] == ["frozen"]
        assert (await http.delete("/faults")).status_code == 200
        truth = (await http.get("/truth")).json()
        assert truth["meters"][0]["faults"] == []


@pytest.mark.asyncio
async def test_written_config_loads_and_matches_the_site(tmp_path: Path) -> None:
    async with SimSite(small_spec(82, workers=1)) as site:
        path = tmp_path / "site.toml"
        tokens = site.write_config(path, api_listen="127.0.0.1:18080")
        settings = load_settings(path)
        assert settings.api.listen == "127.0.0.1:18080"
        assert settings.storage.path.parent == tmp_path
        assert {m.name for m in settings.meters} == set(site.meters)
        token_file = Path(str(path) + ".tokens")
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
        plain = tomllib.loads(await asyncio.to_thread(token_file.read_text))
        assert plain["operator"] == tokens.operator
        digests = {t.role: t.sha256_value for t in settings.api.tokens}
        for role in ("grid", "operator", "viewer"):
            assert digests[role] == hashlib.sha256(plain[role].encode()).hexdigest()
        csv_path = tmp_path / "site-luxos-bitmain-s19jpro.csv"
        rows = (await asyncio.to_thread(csv_path.read_text)).splitlines()
        rig_id, host, port, container = rows[1].split(",")
        assert (host, int(port)) == site.rig_endpoint(rig_id) and container == "c001"
        assert (await cgminer(host, int(port), "version"))["STATUS"][0]["STATUS"] == "S"


@pytest.mark.asyncio
async def test_modbus_rig_behind_container_plc() -> None:
    spec = SiteSpec(
        groups=(RigGroupSpec("microbt-m50s", 3, RigProtocol.MODBUS),),
        base_octet=83,
        speed=20.0,
        workers=1,
    )
    async with SimSite(spec) as site:
        host, port = site.rig_endpoint("c001-r002")
        assert host == "127.83.255.1"
        client = AsyncModbusTcpClient(host, port=port, timeout=2)
        assert await client.connect()
        try:
            rr = await client.read_holding_registers(0, count=14, device_id=2)
            assert not rr.isError()
            regs = rr.registers
            assert regs[0] == 1  # hashing
            assert u32(regs[3:5]) == pytest.approx(3276, abs=2)
            assert u32(regs[1:3]) / 100.0 == pytest.approx(126.0, rel=0.01)
            assert regs[8] == 1  # run
            w = await client.write_register(8, 0, device_id=2)  # run = 0: sleep
            assert not w.isError()
            model = site.fleet.rigs["c001-r002"].model
            await asyncio.sleep(model.sleep_time_s / spec.speed + 0.05)
            regs = (await client.read_holding_registers(0, count=14, device_id=2)).registers
            assert regs[0] == 2 and u32(regs[3:5]) <= model.sleep_power_w * 1.5
            other = (await client.read_holding_registers(0, count=14, device_id=1)).registers
            assert other[0] == 1, "unit 1 is another rig, still hashing"
            await client.write_register(8, 1, device_id=2)
            await client.write_registers(9, [0, 2500], device_id=2)  # power limit 2500 W
            await asyncio.sleep(model.wake_time_s / spec.speed + 0.1)
            regs = (await client.read_holding_registers(0, count=14, device_id=2)).registers
            assert u32(regs[3:5]) == pytest.approx(2500, rel=0.02)
            bad = await client.write_register(0, 5, device_id=2)  # state is read only
            assert bad.isError() and bad.exception_code == 2
            await site.inject("c001-r002", "offline")
            rr = await client.read_holding_registers(0, count=14, device_id=2)
            assert rr.isError() and rr.exception_code == 0x0B
        finally:
            client.close()


@pytest.mark.asyncio
async def test_mqtt_rig_telemetry_and_commands(mosquitto: ServerProcess) -> None:
    import aiomqtt

    url = f"mqtt://{mosquitto.host}:{mosquitto.port}"
    spec = SiteSpec(
        groups=(RigGroupSpec("microbt-m50s", 2, RigProtocol.MQTT),),
        base_octet=84,
        speed=20.0,
        mqtt_url=url,
        mqtt_prefix="simtest",
        workers=1,
    )
    async with (
        SimSite(spec) as site,
        aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="simtest-client") as client,
    ):
        await client.subscribe("simtest/c001-r001/#", qos=1)
        rig = site.fleet.rigs["c001-r001"]

        async def next_message(kind: str) -> dict[str, object]:
            async with asyncio.timeout(5):
                async for msg in client.messages:
                    if str(msg.topic).endswith(kind):
                        payload = msg.payload
                        assert isinstance(payload, bytes | bytearray)
                        value = json.loads(payload)
                        assert isinstance(value, dict)
                        return value
            raise AssertionError("no message")

        tele = await next_message("/telemetry")
        assert tele["id"] == "c001-r001" and tele["state"] == "hashing"
        assert tele["power_w"] == pytest.approx(3276, rel=0.01)
        await client.publish(
            "simtest/c001-r001/cmd", json.dumps({"id": "a1", "action": "sleep"}), qos=1
        )
        reply = await next_message("/reply")
        assert reply == {"id": "a1", "ok": True, "error": None}
        assert not rig.awake
        await client.publish(
            "simtest/c001-r001/cmd",
            json.dumps({"id": "a2", "action": "set_profile", "profile": "nope"}),
            qos=1,
        )
        reply = await next_message("/reply")
        assert reply["id"] == "a2" and reply["ok"] is False and "nope" in str(reply["error"])
        await client.publish(
            "simtest/c001-r001/cmd",
            json.dumps({"id": "a3", "action": "set_power", "power_w": 2500}),
            qos=1,
        )
        assert (await next_message("/reply"))["ok"] is True
        assert rig.power_limit_w == 2500


@pytest.mark.asyncio
async def test_worker_processes_serve_rigs_and_feed_the_grid_meter() -> None:
    spec = small_spec(85, workers=2)
    async with SimSite(spec) as site:
        assert site.pool is not None and len(site.pool.links) == 2
        truth = await site.truth()
        assert len(truth["rigs"]) == 6  # type: ignore[arg-type]
        last = "c002-r001"  # LuxOS, served by the second worker
        host, port = site.rig_endpoint(last)
        assert (await cgminer(host, port, "summary"))["STATUS"][0]["STATUS"] == "S"
        session = (await cgminer(host, port, "logon"))["SESSION"][0]["SessionID"]
        await cgminer(host, port, "curtail", f"{session},sleep")
        await site.inject(last, "fan_failure")
        await asyncio.sleep(1.0)  # 10 s sim; aggregates arrive every 0.5 s
        truth = await site.truth()
        rig = next(r for r in truth["rigs"] if r["id"] == last)  # type: ignore[union-attr]
        assert rig["faults"] == ["fan_failure"] and rig["state"] == "sleeping"
        ghost, gport, unit = site.meter_endpoint("grid")
        client = AsyncModbusTcpClient(ghost, port=gport, timeout=2)
        assert await client.connect()
        try:
            rr = await client.read_holding_registers(1369, count=2, device_id=unit)
            assert f32(rr.registers) == pytest.approx(truth["site"]["power_w"], rel=0.01)  # type: ignore[index]
        finally:
            client.close()
        await site.clear()
        truth = await site.truth()
        assert all(r["faults"] == [] for r in truth["rigs"])  # type: ignore[union-attr]


def test_cli_runs_a_site_and_writes_its_config(tmp_path: Path) -> None:
    import socket
    import subprocess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        control_port = s.getsockname()[1]
    config = tmp_path / "cli-site.toml"
    argv = [
        sys.executable,
        "-m",
        "minerd.sim",
        "--rigs",
        "6",
        "--cgminer-rigs",
        "2",
        "--port",
        "0",
        "--base-octet",
        "86",
        "--speed",
        "5",
        "--control",
        f"127.0.0.1:{control_port}",
        "--meter-port",
        "0",
        "--plc-port",
        "0",
        "--fault",
        "c001-r002:hung",
        "--write-config",
        str(config),
    ]
    log_path = tmp_path / "sim.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_sync(
            lambda: proc.poll() is not None or Path(str(config) + ".tokens").exists(),
            60.0,
            "the simulator to write its config",
        )
        assert proc.poll() is None, log_path.read_text()
        settings = load_settings(config)
        assert len(settings.rigs) == 3  # two LuxOS models and one cgminer group
        truth = httpx.get(f"http://127.0.0.1:{control_port}/truth", timeout=5).json()
        assert len(truth["rigs"]) == 8 and truth["speed"] == 5.0
        assert next(r for r in truth["rigs"] if r["id"] == "c001-r002")["faults"] == ["hung"]
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0


@pytest.mark.asyncio
async def test_starting_profile_and_light_truth() -> None:
    spec = SiteSpec(
        groups=(RigGroupSpec("bitmain-s19jpro", 2, RigProtocol.LUXOS, profile="-1"),),
        rig_port=0,
        base_octet=87,
        workers=1,
    )
    async with (
        SimSite(spec) as site,
        httpx.AsyncClient(base_url=site.control_url, timeout=5) as http,
    ):
        full = (await http.get("/truth")).json()
        assert [r["profile"] for r in full["rigs"]] == ["-1", "-1"]
        assert full["site"]["rig_power_w"] == pytest.approx(2 * 2700.0)
        light = (await http.get("/truth?rigs=0")).json()
        assert "rigs" not in light and light["site"]["hashrate_ths"] is None
        assert light["site"]["power_w"] == pytest.approx(full["site"]["power_w"], rel=1e-3)
    bad = SiteSpec(groups=(RigGroupSpec("bitmain-s19jpro", 1, profile="warp"),), workers=1)
    with pytest.raises(ProfileError):
        SimSite(bad)
