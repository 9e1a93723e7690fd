"""Acceptance with the real process: `python -m minerd run -c site.toml` against a simulated
site (served by this test process, real time).

- kill -9 right after a quota cut is posted over the HTTP API, while commands are still in
  flight (five rigs answer only after 2 s); a restart restores the quota and the rigs'
  acknowledged intents from SQLite before its first command, holds the quota's limit, and
  wakes no rig (min-off holds every slept rig for the whole test): it only sheds, and the
  import is under the limit within the rigs' sleep time plus two cycles. LuxOS allows one
  session per rig and refuses other logons while it is alive (60 s idle): the restarted
  daemon reuses the sessions its predecessor stored in SQLite. Only a rig whose logon reply
  was still in flight at the kill holds a session nobody knows; it refuses commands for
  that minute, is counted at nominal power, and other rigs are shed instead (no raise while
  any shed is outstanding).
- SIGTERM: the daemon stops in order within 5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from scenario_kit import MODEL, DaemonProcess, Recorder, Tuning, site_spec, tune_config
from servers import free_port

from minerd.profiles import load_rig_model
from minerd.settings import load_settings
from minerd.sim import SimSite

RIGS = 20
SLOW_RIGS = ("c001-r016", "c001-r017", "c001-r018", "c001-r019", "c001-r020")
SLEEP_S = load_rig_model(MODEL).sleep_time_s
CYCLE_S = 1.0
# Every rig slept stays asleep for the whole test: a wake can then only mean the restart lost
# a min-off hold (the journal keeps each rig's last sleep, answered or not). With a short
# hold, a wake once the import settles below the limit is the loop using the limit (issue 19)
# and was seen in 2 of about 40 runs: a right wake this test could not tell from a wrong one.
MIN_OFF_S = 600.0


@contextlib.asynccontextmanager
async def site_and_config(
    tmp_path: Path, octet: int
) -> AsyncIterator[tuple[SimSite, Recorder, Path, str, str]]:
    """A real-time simulated site, its daemon config (rigs polled every 1 s) and API."""
    async with SimSite(site_spec(RIGS, base_octet=octet, speed=1.0)) as sim:
        config = tmp_path / "site.toml"
        listen = f"127.0.0.1:{free_port()}"
        tokens = sim.write_config(config, api_listen=listen)
        tune_config(config, Tuning(rig_interval_s=1.0, min_off_s=MIN_OFF_S))
        recorder = Recorder(sim, period_s=0.05)
        task = asyncio.create_task(recorder.run())
        try:
            yield sim, recorder, config, f"http://{listen}", tokens.grid
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def journal(db: Path) -> list[tuple[str, str, float, int | None]]:
    """(rig, action, intent_at_s, ok) of every journaled command, read-only."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT rig_id, action, intent_at_s, ok FROM command_journal ORDER BY id"
        ).fetchall()
    return [(str(r[0]), str(r[1]), float(r[2]), r[3]) for r in rows]


@pytest.mark.asyncio
async def test_kill_9_mid_dispatch_then_restart_restores_and_keeps_budget(
    tmp_path: Path,
) -> None:
    async with site_and_config(tmp_path, octet=211) as (sim, rec, config, api, grid_token):
        db = load_settings(config).storage.path
        first = DaemonProcess(config, tmp_path / "first.log", api)
        second = DaemonProcess(config, tmp_path / "second.log", api)
        try:
            await first.start()
            await first.wait_ready()
            await asyncio.sleep(2.0)
            full_kw = await truth_kw(sim)
            for rig_id in SLOW_RIGS:
                await sim.inject(rig_id, "slow")
            limit_kw = round(0.3 * full_kw, 1)
            async with httpx.AsyncClient(base_url=api, timeout=5.0) as http:
                r = await http.post(
                    "/api/v1/quotas",
                    json={"limit_kw": limit_kw, "reference": "cut-before-crash"},
                    headers={"Authorization": f"Bearer {grid_token}"},
                )
                assert r.status_code == 201, r.text
                quota_id = r.json()["id"]
            await asyncio.sleep(0.3)  # the fast rigs are told, the slow ones still answering
            first.signal(signal.SIGKILL)
            assert await first.wait(5.0) == -signal.SIGKILL
            killed_at = sim.clock.now_s()
            before = journal(db)
            cut = [j for j in before if j[1] == "sleep"]
            unanswered = [j for j in cut if j[3] is None]
            assert cut, "no sleep command was journaled before the kill"
            latest = {j[0]: j for j in before}
            acknowledged = sum(1 for j in latest.values() if j[3] == 1)
            asleep_at_restart = {str(r["id"]) for r in await rigs_truth(sim) if not r["awake"]}

            await second.start()
            await second.wait_ready()
            ready_at = sim.clock.now_s()
            await asyncio.sleep(SLEEP_S + 2 * CYCLE_S + 3.0)
            log = second.log.read_text()
            async with httpx.AsyncClient(base_url=api, timeout=5.0) as http:
                site = (
                    await http.get(
                        "/api/v1/site", headers={"Authorization": f"Bearer {grid_token}"}
                    )
                ).json()
            restored = re.search(r"state restored: (\d+) quotas.*?(\d+) rig intents", log)
            settle_from = ready_at + SLEEP_S + 2 * CYCLE_S
            after = rec.between(settle_from)
            worst_kw = max(s.power_kw for s in after)
            gap = rec.between(killed_at, settle_from)
            rigs = await rigs_truth(sim)
            awake = sum(1 for r in rigs if r["awake"])
            after_restart = journal(db)[len(before) :]
            locked = log.count("Another session is active")
            print(
                f"\nkill -9 {0.3:.1f} s after the cut to {limit_kw} kW: {len(cut)} sleep commands "
                f"journaled, {len(unanswered)} without outcome; restart ready after "
                f"{ready_at - killed_at:.1f} s; restored {restored and restored.groups()}; "
                f"import during the gap up to {max(s.power_kw for s in gap):.1f} kW, after "
                f"restart + sleep + 2 cycles worst {worst_kw:.2f} kW; {awake} rigs awake; "
                f"{len(after_restart)} commands after restart, {locked} refused for the "
                "dead process's LuxOS sessions"
            )
            assert unanswered, "the kill did not land mid-dispatch"
            assert restored is not None, log[-2000:]
            assert int(restored.group(1)) == 1  # the cut
            assert int(restored.group(2)) == acknowledged  # unanswered ones are re-derived
            assert "state restored" in log.split("ready: first control cycle done")[0]
            assert site["limit"]["quota_id"] == quota_id
            assert site["limit"]["limit_kw"] == limit_kw
            assert after_restart, "the restarted daemon sent nothing"
            assert {j[1] for j in after_restart} <= {"sleep", "set_profile"}
            assert not {j[0] for j in after_restart if j[1] == "wake"}
            still_asleep = {str(r["id"]) for r in rigs if not r["awake"]}
            assert asleep_at_restart <= still_asleep, "a rig asleep at restart was woken"
            refused = {j[0] for j in after_restart if j[3] == 0}
            # Only rigs whose logon was still in flight at the kill can hold a session the
            # restart never learned of; every stored session was reused.
            assert refused <= {j[0] for j in unanswered}, (refused, unanswered)
            assert worst_kw <= limit_kw, f"import {worst_kw:.2f} kW over {limit_kw} kW"
        finally:
            await first.stop()
            await second.stop()


@pytest.mark.asyncio
async def test_sigterm_stops_in_order_within_5_s(tmp_path: Path) -> None:
    async with site_and_config(tmp_path, octet=212) as (_sim, _rec, config, api, _token):
        daemon = DaemonProcess(config, tmp_path / "daemon.log", api)
        try:
            await daemon.start()
            await daemon.wait_ready()
            await asyncio.sleep(1.0)
            t0 = time.monotonic()
            daemon.signal(signal.SIGTERM)
            rc = await daemon.wait(10.0)
            took_s = time.monotonic() - t0
            log = daemon.log.read_text()
            print(f"\nSIGTERM: exit {rc} after {took_s:.2f} s")
            assert rc == 0, log[-2000:]
            # The target is 5 s, held by benchmarks/bench_daemon.py ("SIGTERM to exit"); the
            # daemon.wait(10.0) above is this test's generous bound.
            assert took_s <= 10.0
            assert "stopping on signal" in log
            # The database was closed cleanly: no WAL left behind to replay.
            db = load_settings(config).storage.path
            with contextlib.closing(sqlite3.connect(db)) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            await daemon.stop()


async def truth_kw(sim: SimSite) -> float:
    truth = await sim.truth(include_rigs=False)
    site = truth["site"]
    assert isinstance(site, dict)
    return float(site["power_w"]) / 1000.0


async def rigs_truth(sim: SimSite) -> list[dict[str, object]]:
    truth = await sim.truth()
    rigs = truth["rigs"]
    assert isinstance(rigs, list)
    return rigs
