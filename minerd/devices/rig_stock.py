"""Bitmain stock firmware: reads over the cgminer API on 4028; control over the web CGI.
Reference: firmware-apis.md sections 3 and 8 (gotchas 2-4).

Control is `set_miner_conf.cgi` (Digest auth, realm "antMiner Configuration") with the whole
config rebuilt from `get_miner_conf.cgi` and the work mode in BOTH keys: `miner-mode` (int,
the one the firmware acts on) and `bitmain-work-mode` (0 normal, 1 sleep, 3 low power). The
CGI answers only after ~21 s and restarts the miner process, so `apply` waits for the reply
just ACK_WINDOW_S (long enough for a refused login or a refused body, which come at once)
and leaves the rest to a watcher task that logs the outcome; 4028 may be down for a moment
after the write. The next reads verify: the state comes from the hashrate on 4028, and
once the family's sleep/wake time has passed the config is read back; a rig whose config
says sleep while it hashes (S21+ 2025 firmware) is named in the reading's reason, and the
intent book sees it disobey.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import replace

from minerd.devices.rig import Rig
from minerd.devices.rig_cgminer import parse_reading
from minerd.devices.rig_family import FamilyRig
from minerd.devices.target import RigTarget
from minerd.errors import DeviceError, ProtocolError
from minerd.model import ControlMode, RigAction, RigCommand, RigProtocol, RigReading, RigState
from minerd.transports.http_digest import DigestClient

__all__ = ["CONF_PATH", "SET_PATH", "StockRig", "build", "rebuild_conf", "work_mode_of"]

log = logging.getLogger(__name__)

CONF_PATH = "/cgi-bin/get_miner_conf.cgi"
SET_PATH = "/cgi-bin/set_miner_conf.cgi"
MODE_NORMAL, MODE_SLEEP, MODE_LOW_POWER = 0, 1, 3
ACK_WINDOW_S = 2.0  # a refusal comes at once; M000 comes after ~21 s
DEFAULT_LOGIN = ("root", "root")  # firmware default (3.1)
_EMPTY_POOL = {"url": "", "user": "", "pass": ""}


def work_mode_of(conf: Mapping[str, object]) -> int | None:
    """`bitmain-work-mode` as the firmware shows it (a string, "" when never set)."""
    raw = conf.get("bitmain-work-mode")
    text = str(raw).strip() if raw is not None and not isinstance(raw, bool) else ""
    return int(text) if text.isdigit() else None


def rebuild_conf(conf: Mapping[str, object], mode: int) -> dict[str, object]:
    """The set_miner_conf body: the read config under the write keys, both mode keys."""
    pools: list[dict[str, str]] = []
    raw_pools = conf.get("pools")
    for p in raw_pools if isinstance(raw_pools, list) else []:
        if isinstance(p, Mapping):
            pools.append({k: str(p.get(k, "")) for k in ("url", "user", "pass")})
    pools = (pools + [dict(_EMPTY_POOL)] * 3)[:3]
    fan_ctrl = conf.get("bitmain-fan-ctrl", False)
    return {
        "bitmain-fan-ctrl": fan_ctrl if isinstance(fan_ctrl, bool) else False,
        "bitmain-fan-pwm": str(conf.get("bitmain-fan-pwm", "100")),
        "freq-level": str(conf.get("bitmain-freq-level", "100") or "100"),
        "miner-mode": mode,
        "bitmain-work-mode": mode,  # ignored by some builds, read by others: send both
        "pools": pools,
    }


def _chain_power_w(stats: object) -> float | None:
    """S21 (2024 fw) `chain_power: "3250 W"` in STATS[1]; stock S19 reports no power."""
    items = stats.get("STATS") if isinstance(stats, dict) else None
    for item in items if isinstance(items, list) else []:
        raw = item.get("chain_power") if isinstance(item, dict) else None
        if isinstance(raw, str):
            with contextlib.suppress(ValueError):
                return float(raw.split()[0])
    return None


class StockRig(FamilyRig):
    """A stock rig: cgminer-API reads, sleep/wake (and low power) over the web CGI."""

    FAMILY = RigProtocol.STOCK

    def __init__(self, target: RigTarget) -> None:
        super().__init__(target)
        self.command_timeout_s = self.reaction.command_timeout_s
        self.power_steps_w = self.reaction.power_steps_w
        user = target.username or DEFAULT_LOGIN[0]
        password = target.password if target.password is not None else DEFAULT_LOGIN[1]
        self.web = DigestClient(
            target.host,
            target.web_port,
            device=target.rig_id,
            username=user,
            password=password,
            timeout_s=self.command_timeout_s,
        )
        self.ack_window_s = ACK_WINDOW_S
        self._lock = asyncio.Lock()
        self._watch: asyncio.Task[None] | None = None
        # the last write not yet read back: (mode, monotonic time sent)
        self._unverified: tuple[int, float] | None = None
        self.conf_mode: int | None = None  # what get_miner_conf showed at the last check
        self._warned: str = ""

    # ------------------------------------------------------------ read

    async def read(self, now_s: float) -> RigReading:
        res = await self.client.batch(self.REPORTS)
        summary = res.get("summary")
        stats = res.replies.get("stats")
        watts = _chain_power_w(stats)
        power: dict[str, object] | None = None
        if watts is not None:
            power = {"POWER": [{"Watts": watts}]}
        reading = parse_reading(self.rig_id, now_s, self.model, summary, stats, power)
        if self._unverified is not None:
            reading = await self._verify(reading)
        return reading

    async def _verify(self, reading: RigReading) -> RigReading:
        """Read the config back once the family's time for the write has passed."""
        assert self._unverified is not None
        mode, sent_at = self._unverified
        settle_s = self.model.sleep_time_s if mode == MODE_SLEEP else self.model.wake_time_s
        if self.clock.monotonic_s() - sent_at < settle_s:
            return reading
        try:
            # a read's own time limit: a hung web server must not hold the poll
            conf = await self.web.get_json(CONF_PATH, timeout_s=self.side_read_limit_s)
        except DeviceError as exc:
            log.debug("rig %s: config read-back failed, next read retries: %s", self.rig_id, exc)
            return reading
        if not isinstance(conf, dict):
            return reading
        self._unverified = None
        self.conf_mode = work_mode_of(conf)
        problem = ""
        if self.conf_mode != mode:
            problem = f"write of work mode {mode} not taken: config shows {self.conf_mode}"
        elif mode == MODE_SLEEP and reading.state is RigState.HASHING:
            problem = "config says sleep but the rig hashes: firmware ignores sleep"
        if not problem:
            self._warned = ""
            return reading
        if problem != self._warned:
            log.warning("rig %s at %s: %s", self.rig_id, self.web.endpoint(SET_PATH), problem)
            self._warned = problem
        reason = f"{reading.reason}; {problem}" if reading.reason else problem
        return replace(reading, reason=reason)

    # ------------------------------------------------------------ apply

    async def apply(self, cmd: RigCommand) -> None:
        mode = self._mode_for(cmd)
        async with self._lock:
            conf = await self.web.get_json(CONF_PATH)
            if not isinstance(conf, dict):
                raise ProtocolError(self.rig_id, self.web.endpoint(CONF_PATH), "not an object")
            body = rebuild_conf(conf, mode)
            if self._watch is not None:
                self._watch.cancel()  # a newer write supersedes the one still answering
            send = asyncio.create_task(self.web.post_json(SET_PATH, body))
            done: set[asyncio.Task[object]] = set()
            try:
                async with self.clock.timeout(self.ack_window_s):  # clock seconds
                    done, _ = await asyncio.wait({send})
            except TimeoutError:
                pass  # still answering: watched below
            except asyncio.CancelledError:
                send.cancel()
                raise
            self._unverified = (mode, self.clock.monotonic_s())
            if send in done:
                self._check_reply(send.result())
                return
            self._watch = asyncio.create_task(self._watch_reply(send, mode))

    def _mode_for(self, cmd: RigCommand) -> int:
        if cmd.action is RigAction.SLEEP:
            return MODE_SLEEP
        if cmd.action is RigAction.WAKE and cmd.power_w is None:
            return MODE_NORMAL
        if ControlMode.PROFILES not in self.model.modes or not self.power_steps_w:
            if cmd.action is RigAction.WAKE:
                return MODE_NORMAL
            raise self.rejected(
                f"{cmd.action.value}: stock firmware on {self.model.name} has no power steps "
                "([firmware.stock] power_steps_w)"
            )
        if cmd.power_w is None:
            prof = self.model.profile(cmd.profile) if cmd.profile else None
            if prof is None:
                raise self.rejected(f"{cmd.action.value}: no power_w and no known profile")
            power_w = prof.power_w
        else:
            power_w = cmd.power_w
        # low power when the setpoint is below the normal step (never above what was asked)
        return MODE_LOW_POWER if power_w < self.power_steps_w[-1] else MODE_NORMAL

    def _check_reply(self, reply: object) -> None:
        if isinstance(reply, dict) and reply.get("code") == "M000":
            return
        text = str(reply)[:120]
        raise self.rejected(f"set_miner_conf refused: {text}")

    async def _watch_reply(self, send: asyncio.Task[object], mode: int) -> None:
        try:
            reply = await send
            self._check_reply(reply)
        except asyncio.CancelledError:
            send.cancel()
            raise
        except DeviceError as exc:
            # the next reads verify; the write may well have taken hold
            log.warning("rig %s: work mode %d write: %s", self.rig_id, mode, exc)

    async def aclose(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()
            # wait() never raises the watcher's CancelledError, so a cancel of aclose
            # itself is not swallowed with it
            await asyncio.wait({watch})


def build(target: RigTarget) -> Rig:
    return StockRig(target)
