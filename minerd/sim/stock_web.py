"""Simulated stock Antminer web CGI on the rig's web port (firmware-apis.md section 3).

Every request needs HTTP Digest auth (realm "antMiner Configuration", qop=auth, login from
family_base.SIM_LOGINS); without it the server answers 401 with the challenge, which is how
pyasic tells a stock Antminer. CGI endpoints under /cgi-bin/:
- get_system_info: `minertype` and network fields;
- get_miner_conf: the pretty-printed config, `bitmain-work-mode` a string;
- set_miner_conf (POST JSON): only `miner-mode` (0 normal, 1 sleep, 3 low power) acts, as on
  the S19j Pro Dec 2022 firmware that ignores a `bitmain-work-mode` write; the command takes
  hold when the request arrives (the rig's family times ramp it), the reply `M000 OK!` comes
  after REPLY_DELAY_S of sim time, then the miner process restarts: the rig's 4028 API is
  down for RESTART_DOWN_S (not when the write changed nothing: the quirk faults below);
- stats / summary: the newer firmware's layouts (STATUS an object, rate_unit "GH/s").
Faults: hung (accepts, never answers), slow (answers SLOW_REPLY_S later), ignores_commands
(M000 and nothing changes), ignores_sleep (the S21+ 2025 report: M000, the config says sleep,
the rig keeps hashing). The offline fault closes the listener (RigFleet).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
import zlib
from collections.abc import Mapping

from minerd.clock import Clock
from minerd.sim.family_base import SIM_LOGINS
from minerd.sim.rig import RigSim
from minerd.sim.rigserver import HUNG_HOLD_S, SLOW_REPLY_S, ServerBook

__all__ = ["REALM", "REPLY_DELAY_S", "RESTART_DOWN_S", "StockWebListeners", "listeners"]

REALM = "antMiner Configuration"
REPLY_DELAY_S = 21.0  # set_miner_conf answers after ~21 s (asic-rs #245), sim seconds
RESTART_DOWN_S = 5.0  # guess: the miner process restarts after the reply; 4028 is down
NONCE_LIFE_S = 300.0  # guess: a challenge's nonce is honoured this long (sim seconds)
MAX_BODY_BYTES = 65_536
WORK_MODES = {0: "normal", 1: "sleep", 3: "low power"}
_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
OK_REPLY = {"stats": "success", "code": "M000", "msg": "OK!"}


def listeners(clock: Clock) -> StockWebListeners:
    return StockWebListeners(clock)


class _Conf:
    """What one rig's get_miner_conf shows (the last accepted write)."""

    def __init__(self, rig: RigSim) -> None:
        worker = f"site.{rig.rig_id}"
        self.pools = [
            {"url": "stratum+tcp://pool.sim.invalid:3333", "user": worker, "pass": "x"},
            {"url": "", "user": "", "pass": ""},
            {"url": "", "user": "", "pass": ""},
        ]
        self.fan_ctrl = False
        self.fan_pwm = "100"
        self.freq_level = "100"
        self.work_mode = "0" if rig.awake else "1"


class StockWebListeners(ServerBook):
    def __init__(
        self,
        clock: Clock,
        reply_delay_s: float = REPLY_DELAY_S,
        restart_down_s: float = RESTART_DOWN_S,
    ) -> None:
        self.clock = clock
        self.reply_delay_s = reply_delay_s
        self.restart_down_s = restart_down_s
        super().__init__()
        self._conf: dict[str, _Conf] = {}
        self._nonces: dict[str, float] = {}  # nonce -> issued at (sim s)
        self.writes = 0  # set_miner_conf requests accepted (tests count them)

    async def open(self, rig: RigSim) -> int:
        sock = self.bind(rig.rig_id, rig.plan.host, rig.plan.family_port)
        self._conf.setdefault(rig.rig_id, _Conf(rig))
        tasks = self.tasks

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            try:
                await self._serve(rig, reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                pass
            finally:
                tasks.discard(task)
                writer.close()

        server = await asyncio.start_server(on_connect, sock=sock)
        return self.add(rig.rig_id, server, sock)

    def work_mode(self, rig_id: str) -> str:
        """The `bitmain-work-mode` the rig's config shows (tests)."""
        return self._conf[rig_id].work_mode

    # ------------------------------------------------------------ HTTP

    async def _serve(
        self, rig: RigSim, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if "hung" in rig.faults:
            await asyncio.sleep(HUNG_HOLD_S)
            return
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            await _send(writer, 400, b"bad request")
            return
        method, target = parts[0], parts[1]
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or "0")
        if length > MAX_BODY_BYTES:
            await _send(writer, 413, b"too large")
            return
        body = await reader.readexactly(length) if length else b""
        if "slow" in rig.faults:
            await asyncio.sleep(SLOW_REPLY_S)
        if not self._authorised(method, headers.get("authorization", "")):
            await self._challenge(writer)
            return
        path = target.split("?", 1)[0]
        if path == "/cgi-bin/set_miner_conf.cgi" and method == "POST":
            await self._set_conf(rig, body, writer)
            return
        handler = {
            "/cgi-bin/get_system_info.cgi": self._system_info,
            "/cgi-bin/get_miner_conf.cgi": self._miner_conf,
            "/cgi-bin/stats.cgi": self._stats,
            "/cgi-bin/summary.cgi": self._summary,
            "/cgi-bin/get_blink_status.cgi": _blink,
        }.get(path)
        if handler is None or method != "GET":
            await _send(writer, 404, b"404 - Not Found")
            return
        await _send(writer, 200, handler(rig), "application/json")

    def _authorised(self, method: str, header: str) -> bool:
        if not header.lower().startswith("digest "):
            return False
        p = {m[1].lower(): (m[2] if m[2] is not None else m[3]) for m in _PARAM.finditer(header)}
        user, password = SIM_LOGINS["stock"]
        issued = self._nonces.get(p.get("nonce", ""))
        if issued is None or self.clock.now_s() - issued > NONCE_LIFE_S:
            return False
        if p.get("username") != user or p.get("realm") != REALM:
            return False
        ha1 = _md5(f"{user}:{REALM}:{password}")
        ha2 = _md5(f"{method}:{p.get('uri', '')}")
        if p.get("qop") == "auth":
            want = _md5(f"{ha1}:{p['nonce']}:{p.get('nc', '')}:{p.get('cnonce', '')}:auth:{ha2}")
        else:
            want = _md5(f"{ha1}:{p['nonce']}:{ha2}")
        return hmac.compare_digest(want, p.get("response", ""))

    async def _challenge(self, writer: asyncio.StreamWriter) -> None:
        now_s = self.clock.now_s()
        for nonce, at in list(self._nonces.items()):
            if now_s - at > NONCE_LIFE_S:
                del self._nonces[nonce]
        nonce = os.urandom(16).hex()
        self._nonces[nonce] = now_s
        header = f'Digest realm="{REALM}", nonce="{nonce}", qop="auth"'
        await _send(writer, 401, b"401 - Unauthorized", "text/html", header)

    # ------------------------------------------------------------ CGI

    async def _set_conf(self, rig: RigSim, body: bytes, writer: asyncio.StreamWriter) -> None:
        try:
            conf = json.loads(body)
        except ValueError:
            conf = None
        if not isinstance(conf, dict):
            # reply shape for a refused body: an assumption (no recording of one)
            err = {"stats": "error", "code": "M001", "msg": "Invalid JSON"}
            await _send(writer, 200, json.dumps(err).encode(), "application/json")
            return
        self.writes += 1
        now_s = self.clock.now_s()
        if self._apply(rig, conf, now_s):
            # the CGI answers as the miner restarts; then 4028 is down a few seconds
            reply_at_s = now_s + self.reply_delay_s
            rig.api_down_s = (reply_at_s, reply_at_s + self.restart_down_s)
        await asyncio.sleep(self.reply_delay_s / self.clock.speed)
        await _send(writer, 200, json.dumps(OK_REPLY).encode(), "application/json")

    def _apply(self, rig: RigSim, conf: dict[str, object], now_s: float) -> bool:
        """Take the write; whether the miner process restarts (not when nothing changed)."""
        if "ignores_commands" in rig.faults:
            return False  # M000 OK and nothing changes
        c = self._conf[rig.rig_id]
        pools = conf.get("pools")
        if isinstance(pools, list):
            c.pools = [p for p in pools if isinstance(p, dict)]
        if isinstance(conf.get("bitmain-fan-ctrl"), bool):
            c.fan_ctrl = bool(conf["bitmain-fan-ctrl"])
        if "freq-level" in conf:
            c.freq_level = str(conf["freq-level"])
        mode = _int(conf.get("miner-mode"))  # bitmain-work-mode alone is ignored (3.5)
        if mode not in WORK_MODES:
            return True
        c.work_mode = str(mode)
        if mode == 1:
            if "ignores_sleep" in rig.faults:
                return False  # S21+ 2025: the config says sleep, nothing else happens
            rig.command_sleep(now_s)
            return True
        if mode == 3:
            rig.command_power_limit(low_power_w(rig), now_s)
        elif rig.power_limit_w is not None:
            rig.power_limit_w = None  # back to normal from low power
        rig.command_wake(now_s)
        return True

    def _system_info(self, rig: RigSim) -> bytes:
        n = zlib.crc32(rig.rig_id.encode())
        info = {
            "minertype": rig.model.model,
            "nettype": "DHCP",
            "netdevice": "eth0",
            "macaddr": "02:00:5E:" + ":".join(f"{(n >> s) & 0xFF:02X}" for s in (16, 8, 0)),
            "hostname": "Antminer",
            "ipaddress": rig.plan.host,
            "netmask": "255.255.255.0",
            "gateway": "127.0.0.1",
            "dnsservers": "127.0.0.1",
            "system_mode": "GNU/Linux",
            "system_kernel_version": "Linux 4.9.38 #1 SMP PREEMPT Wed Dec 7 17:02:21 CST 2022",
            "system_filesystem_version": "Mon Dec 26 11:42:12 CST 2022",
            "firmware_type": "Release",
        }
        return _pretty(info)

    def _miner_conf(self, rig: RigSim) -> bytes:
        c = self._conf[rig.rig_id]
        conf: dict[str, object] = {
            "pools": c.pools,
            "api-listen": True,
            "api-network": True,
            "api-groups": "A:stats:pools:devs:summary:version",
            "api-allow": "A:0/0,W:*",
            "bitmain-fan-ctrl": c.fan_ctrl,
            "bitmain-fan-pwm": c.fan_pwm,
            "bitmain-use-vil": True,
            "bitmain-freq": "525",
            "bitmain-voltage": "1360",
            "bitmain-ccdelay": "0",
            "bitmain-pwth": "0",
            "bitmain-work-mode": c.work_mode,
            "bitmain-freq-level": c.freq_level,
        }
        return _pretty(conf)

    def _rates(self, rig: RigSim) -> dict[str, object]:
        v = rig.view(self.clock.now_s())
        ghs = round(v.hashrate_ths * 1000.0, 2)
        return {
            "elapsed": int(v.uptime_s),
            "rate_5s": ghs,
            "rate_30m": ghs,
            "rate_avg": ghs,
            "rate_ideal": round(rig.model.nominal_hashrate_ths * 1000.0, 2),
            "rate_unit": "GH/s",
        }

    def _head(self, rig: RigSim, msg: str) -> dict[str, object]:
        return {
            "STATUS": {
                "STATUS": "S",
                "when": int(self.clock.now_s()),
                "Msg": msg,
                "api_version": "1.0.0",
            },
            "INFO": {
                "miner_version": "49.0.1.3",
                "CompileTime": "Mon Dec 26 11:42:12 CST 2022",
                "type": rig.model.model,
            },
        }

    def _stats(self, rig: RigSim) -> bytes:
        v = rig.view(self.clock.now_s())
        boards = max(1, rig.model.boards)
        hashing = v.hashrate_ths > 0
        per_board = round(v.hashrate_ths * 1000.0 / max(1, v.boards_ok), 2) if hashing else 0.0
        chains = []
        for b in range(boards):
            alive = b < v.boards_ok and hashing
            pcb = round(v.pcb_temps_c[b]) if alive else 0
            chip = round(v.chip_temps_c[b]) if alive else 0
            chains.append(
                {
                    "index": b,
                    "freq_avg": 525 if alive else 0,
                    "rate_ideal": round(rig.model.nominal_hashrate_ths * 1000.0 / boards, 2),
                    "rate_real": per_board if alive else 0.0,
                    "asic_num": 126 if alive else 0,
                    "asic": "oooooooo oooooooo" if alive else "",
                    "temp_pic": [max(0, pcb - 10 + i) for i in range(4)] if alive else [0] * 4,
                    "temp_pcb": [pcb + i for i in range(4)] if alive else [0] * 4,
                    "temp_chip": [chip + i for i in range(4)] if alive else [0] * 4,
                    "hw": 0,
                    "eeprom_loaded": True,
                    "sn": f"SIM{zlib.crc32(rig.rig_id.encode()):010d}{b}",
                    "hwp": 0.0,
                    "tpl": [[0, 0], [0, 0]],
                }
            )
        stats = {
            **self._rates(rig),
            "chain_num": boards,
            "fan_num": len(v.fan_rpms),
            "fan": list(v.fan_rpms),
            "hwp_total": 0.0,
            "miner-mode": int(self._conf[rig.rig_id].work_mode or 0),
            "freq-level": int(self._conf[rig.rig_id].freq_level or 100),
            "chain": chains,
        }
        return json.dumps({**self._head(rig, "stats"), "STATS": [stats]}).encode()

    def _summary(self, rig: RigSim) -> bytes:
        status = [
            {"type": kind, "status": "s", "code": 0, "msg": ""}
            for kind in ("rate", "network", "fans", "temp")
        ]
        summary = {**self._rates(rig), "hw_all": 0, "bestshare": 0, "status": status}
        return json.dumps({**self._head(rig, "summary"), "SUMMARY": [summary]}).encode()


def low_power_w(rig: RigSim) -> float:
    """The rig's draw in low-power mode (miner-mode 3): the family's lowest power step when
    its profile lists some, else 75 % of nominal (guess: no source gives a figure)."""
    steps = rig.model.reaction(rig.plan.family).power_steps_w
    if steps:
        return steps[0]
    return max(rig.model.min_power_w, 0.75 * rig.model.nominal_power_w)


def _blink(rig: RigSim) -> bytes:
    return b'{"blink":false}'


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())  # some firmware wanted the mode as a string (3.4)
    return None


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _pretty(obj: Mapping[str, object]) -> bytes:
    """The CGI's own formatting: one `"key" : value` per line."""
    return json.dumps(obj, indent=0, separators=(",", " : ")).encode()


async def _send(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    content_type: str = "text/html",
    challenge: str | None = None,
) -> None:
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}.get(
        status, "Error"
    )
    head = [
        f"HTTP/1.1 {status} {reason}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if challenge is not None:
        head.append(f"WWW-Authenticate: {challenge}")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    await writer.drain()
