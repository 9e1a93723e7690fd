"""Simulated Vnish (AnthillOS) REST API `/api/v1` on each Vnish rig's web port.

Reference: firmware-apis.md section 4 and gotcha 8.9; reply layouts as in
tests/fixtures/firmware/vnish-web. What the firmware does and this server copies:
- `POST /unlock {"pw"}` -> `{"token"}`; 403 `{"unlock_timeout"}` on a wrong password, 429
  after too many wrong ones. Protected calls take `Authorization: Bearer <token>` or the bare
  token (pyasic sends it bare). A token dies on a reboot (`revoke_tokens`) or after TOKEN_TTL_S.
- `POST /mining/pause|stop` sleep the rig, `resume|start` wake it: 200, empty body.
- Power is an autotune preset named by its watts (`[firmware.vnish] power_steps_w` of the
  model). `POST /settings {"miner":{"overclock":{"preset":"<name>"}}}` answers
  `{reboot_required:false, restart_required:false}` whether or not the preset took (unknown
  name, "disabled"): only re-reading `GET /settings` or `/perf-summary` tells.
- `GET /autotune/presets` is a plain array on even rigs and `{"presets": [...]}` on odd ones:
  builds differ, a client must take both.
- `GET /summary`: `power_consumption` in W; `power_usage` is the deprecated efficiency figure.
Faults: hung (accepts, never answers), slow (answers after SLOW_REPLY_S wall seconds),
broken_json (half a body), ignores_commands (200 and nothing changes, via RigSim), offline
(the fleet closes this server; open keep-alive connections are dropped too).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import string
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.web_request import BaseRequest

from minerd.clock import Clock
from minerd.model import RigProtocol
from minerd.sim import firmware
from minerd.sim.family_base import SIM_LOGINS, FamilyListeners
from minerd.sim.rig import RigSim, RigView
from minerd.sim.rigserver import HUNG_HOLD_S, SLOW_REPLY_S, bind_listener

__all__ = ["VnishWebListeners", "listeners", "preset_names", "summary_body"]

TOKEN_TTL_S = 3600.0  # guess: the reference gives no lifetime; a reboot ends every token
TOKENS_KEPT = 16  # a rig remembers this many live tokens (oldest dropped first)
UNLOCK_FAILS = 5  # wrong passwords within UNLOCK_WINDOW_S before 429
UNLOCK_WINDOW_S = 60.0
SETTINGS_REPLY_S = 1.0  # guess: POST /settings writes the config before it answers
TOKEN_ALPHABET = string.ascii_letters + string.digits
HR_MEASURE = "GH/s"  # GET /info hr_measure: the unit of every hr_* figure
INDEX_HTML = (
    "<!doctype html><html><head><title>AnthillOS</title></head>"
    '<body><div id="app">AnthillOS web interface</div></body></html>'
)
SETTLED = {"reboot_required": False, "restart_required": False}

Json = dict[str, Any]
Handler = Callable[["_RigWeb", BaseRequest], Awaitable[web.StreamResponse]]


def preset_names(rig: RigSim) -> list[str]:
    """The rig's tuned autotune presets, by name (watts as a string), ascending."""
    steps = rig.model.reaction(RigProtocol.VNISH).power_steps_w
    return [f"{w:g}" for w in steps]


def current_preset(rig: RigSim) -> str:
    """The preset the rig runs: the last one applied, else the one nearest nominal power."""
    names = preset_names(rig)
    if rig.power_limit_w is not None:
        return f"{rig.power_limit_w:g}"
    if not names:
        return "disabled"
    return min(names, key=lambda n: abs(float(n) - rig.model.nominal_power_w))


def _pretty(rig: RigSim, name: str) -> str:
    try:
        watts = float(name)
    except ValueError:
        return "Disabled"
    return f"{name} watt ~ {rig.model.hashrate_at(watts):.0f} TH"


def _preset(rig: RigSim, name: str) -> Json:
    return {
        "name": name,
        "pretty": _pretty(rig, name),
        "status": "tuned" if name in preset_names(rig) else "untuned",
        "modded_psu_required": False,
        "tune_settings": None,  # the chip-level tune: a client needs none of it
    }


def _miner_state(rig: RigSim, view: RigView) -> str:
    if "overheat" in rig.faults:
        return "failure"
    if view.awake:
        return "mining" if view.hashrate_ths > 0 else "starting"
    sleep_w = rig.model.sleep_power_w
    return "stopped" if view.power_w <= sleep_w * 1.5 + 5.0 else "shutting-down"


def summary_body(rig: RigSim, now_s: float) -> Json:
    """GET /summary as the firmware builds it (hashrates in HR_MEASURE, power in W)."""
    view = rig.view(now_s)
    m = rig.model
    boards = max(1, m.boards)
    hr_gh = view.hashrate_ths * 1000.0
    state = _miner_state(rig, view)
    chains = []
    for b in range(boards):
        alive = b < view.boards_ok
        share = hr_gh / view.boards_ok if alive and view.boards_ok else 0.0
        chains.append(
            {
                "id": b + 1,
                "hashrate_rt": round(share, 2),
                "hashrate_ideal": round(m.nominal_hashrate_ths * 1000.0 / boards, 2),
                "hashrate_percentage": round(100.0 * share * boards / (hr_gh or 1.0), 1)
                if hr_gh
                else 0.0,
                "hr_error": 0.0,
                "power_consumption": round(view.power_w / boards) if alive else 0,
                "frequency": 560,
                "voltage": 1320,
                "pcb_temp": {"min": int(view.pcb_temps_c[b]) - 8, "max": int(view.pcb_temps_c[b])},
                "chip_temp": {
                    "min": int(view.chip_temps_c[b]) - 10,
                    "max": int(view.chip_temps_c[b]),
                },
                "hw_errors": 0,
                "chip_statuses": {"red": 0, "orange": 0, "grey": 0},
                "status": {
                    "state": ("mining" if hr_gh > 0 else "stopped") if alive else "failure",
                    "description": "" if alive else "chain lost",
                },
            }
        )
    efficiency = view.power_w / view.hashrate_ths if view.hashrate_ths > 0 else 0.0
    return {
        "system": {"network_status": {"mac": _mac(rig), "hostname": rig.rig_id}},
        "miner": {
            "miner_status": {
                "miner_state": state,
                "miner_state_time": int(view.uptime_s),
                "throttled": 100,
                "failure_code": 0,
                "description": "overheat" if state == "failure" else "",
            },
            "miner_type": f"{m.model} (Vnish {firmware.VNISH_VERSION})",
            "hr_stock": round(m.nominal_hashrate_ths * 1000.0, 2),
            "average_hashrate": round(view.hashrate_ths, 2),
            "instant_hashrate": round(view.hashrate_ths, 2),
            "hr_realtime": round(hr_gh, 2),
            "hr_nominal": round(m.nominal_hashrate_ths * 1000.0, 2),
            "hr_average": round(hr_gh, 2),
            "hr_error": 0.0,
            "pcb_temp": {"min": int(min(view.pcb_temps_c)), "max": int(max(view.pcb_temps_c))},
            "chip_temp": {
                "min": int(min(view.chip_temps_c)),
                "max": int(max(view.chip_temps_c)),
            },
            "power_consumption": round(view.power_w),
            "power_usage": round(efficiency),  # deprecated: efficiency, not watts
            "power_efficiency": round(efficiency, 1),
            "hw_errors_percent": 0.0,
            "hw_errors": 0,
            "devfee_percent": 2.8,
            "devfee": 0.0,
            "pools": [],
            "cooling": {
                "fan_num": len(view.fan_rpms),
                "fan_duty": 60,
                "fans": [
                    {
                        "id": i,
                        "rpm": rpm,
                        "max_rpm": 6000,
                        "status": "ok" if rpm > 0 else "lost",
                    }
                    for i, rpm in enumerate(view.fan_rpms)
                ],
                "settings": {"mode": {"name": "auto", "param": 70}},
            },
            "chains": chains,
            "found_blocks": 0,
            "best_share": 0,
        },
    }


def _mac(rig: RigSim) -> str:
    n = rig.plan.index
    return f"02:56:4E:{(n >> 16) & 0xFF:02X}:{(n >> 8) & 0xFF:02X}:{n & 0xFF:02X}"


class _RigWeb:
    """One rig's web API state: live tokens and recent wrong passwords."""

    def __init__(self, rig: RigSim, clock: Clock) -> None:
        self.rig = rig
        self.clock = clock
        self.tokens: dict[str, float] = {}  # token -> issued at (sim s)
        self.fails: list[float] = []
        self.replies = 0

    # ------------------------------------------------------------ auth

    def token_ok(self, request: BaseRequest) -> bool:
        raw = request.headers.get("Authorization", "").strip()
        token = raw[7:].strip() if raw.lower().startswith("bearer ") else raw
        now_s = self.clock.now_s()
        issued = self.tokens.get(token) if token else None
        if issued is None:
            return False
        if now_s - issued >= TOKEN_TTL_S:
            del self.tokens[token]
            return False
        return True

    def unlock(self, password: object) -> web.Response:
        now_s = self.clock.now_s()
        self.fails = [t for t in self.fails if now_s - t < UNLOCK_WINDOW_S]
        if len(self.fails) >= UNLOCK_FAILS:
            return _json({"err": "Too many requests"}, 429)
        if not isinstance(password, str) or not secrets.compare_digest(
            password.encode(), SIM_LOGINS["vnish"][1].encode()
        ):
            self.fails.append(now_s)
            return _json({"unlock_timeout": 0}, 403)
        token = "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(32))
        self.tokens[token] = now_s
        while len(self.tokens) > TOKENS_KEPT:
            del self.tokens[next(iter(self.tokens))]
        return _json({"token": token})


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
    )


def _empty() -> web.Response:
    return web.Response(status=200)


async def _body(request: BaseRequest) -> Json:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


# ---------------------------------------------------------------- routes


async def _index(rw: _RigWeb, request: BaseRequest) -> web.StreamResponse:
    return web.Response(text=INDEX_HTML, content_type="text/html")


async def _unlock(rw: _RigWeb, request: BaseRequest) -> web.StreamResponse:
    return rw.unlock((await _body(request)).get("pw"))


async def _info(rw: _RigWeb, request: BaseRequest) -> web.StreamResponse:
    rig = rw.rig
    return _json(
        {
            "miner": rig.model.model,
            "model": rig.model.name,
            "fw_name": "Vnish",
            "fw_version": firmware.VNISH_VERSION,
            "build_uuid": "00000000-0000-4000-8000-000000000000",
            "build_name": "vnishnet",
            "platform": "xil",
            "install_type": "nand",
            "build_time": "2025-03-11 08:14:52+00:00",
            "algorithm": "sha256d",
            "hr_measure": HR_MEASURE,
            "system": {
                "os": "GNU/Linux",
                "miner_name": rig.model.name,
                "file_system_version": "",
                "mem_total": 233712,
                "mem_free": 170000,
                "mem_free_percent": 72,
                "mem_buf": 30000,
                "mem_buf_percent": 12,
                "network_status": {
                    "mac": _mac(rig),
                    "dhcp": True,
                    "ip": rig.plan.host,
                    "netmask": "255.0.0.0",
                    "gateway": "127.0.0.1",
                    "dns": ["127.0.0.1"],
                    "hostname": rig.rig_id,
                },
                "uptime": "0:01",
            },
            "serial": "N/A",
        }
    )


async def _status(rw: _RigWeb, request: BaseRequest) -> web.StreamResponse:
    now_s = rw.clock.now_s()
    view = rw.rig.view(now_s)
    return _json(
        {
            "miner_state": _miner_state(rw.rig, view),
            "miner_state_time": int(view.uptime_s),
            "find_miner": False,
            "restart_required": False,
            "reboot_required": False,
            "unlocked": rw.token_ok(request),
            "unlock_timeout": 0,
            "throttled": 100,
            "warranty": "active",
        }
    )


async def _summary(rw: _RigWeb, request: BaseRequest) -> web.StreamResponse:
    return _json(summary_body(rw.rig, rw.clock.now_s()))


async def _perf_summary(rw: _RigWeb, request: BaseRequest) -> web.StreamResponse:
    name = current_preset(rw.rig)
    return _json(
        {
            "current_preset": {**_preset(rw.rig, name), "globals": {"volt": 1320, "freq": 560}},
            "preset_switcher": {
                "enabled": False,
                "top_preset": None,
                "decrease_temp": 75,
                "rise_temp": 55,
                "check_time": 300,
                "autochange_top_preset": False,
                "ignore_fan_speed": False,
                "min_preset": None,
                "power_delta": 0,
            },
        }
    )


async def _settings(rw: _RigWeb, request: BaseRequest) -> web.StreamResponse:
    return _json(
        {
            "miner": {
                "overclock": {
                    "preset": current_preset(rw.rig),
                    "globals": {"freq": 560, "volt": 1320},
                    "modded_psu": False,
                    "preset_switcher": {"enabled": False},
                },
                "cooling": {"mode": {"name": "auto"}},
                "misc": {"quiet_mode": False},
            }
        }
    )


async def _presets(rw: _RigWeb, request: BaseRequest) -> web.StreamResponse:
    items = [_preset(rw.rig, "disabled")] + [_preset(rw.rig, n) for n in preset_names(rw.rig)]
    return _json({"presets": items} if rw.rig.plan.index % 2 else items)


async def _save_settings(rw: _RigWeb, request: BaseRequest) -> web.StreamResponse:
    body = await _body(request)
    await rw.clock.sleep(SETTINGS_REPLY_S)
    miner = body.get("miner")
    overclock = miner.get("overclock") if isinstance(miner, dict) else None
    name = overclock.get("preset") if isinstance(overclock, dict) else None
    if isinstance(name, str) and name in preset_names(rw.rig):
        rw.rig.command_power_limit(float(name), rw.clock.now_s())
    # The firmware's answer whether or not anything changed (reference 8.9).
    return _json(SETTLED)


def _mining(sleep: bool) -> Handler:
    async def run(rw: _RigWeb, request: BaseRequest) -> web.StreamResponse:
        now_s = rw.clock.now_s()
        if sleep:
            rw.rig.command_sleep(now_s)
        else:
            rw.rig.command_wake(now_s)
        return _empty()

    return run


# (method, path) -> (needs a token, handler)
ROUTES: dict[tuple[str, str], tuple[bool, Handler]] = {
    ("GET", "/"): (False, _index),
    ("POST", "/api/v1/unlock"): (False, _unlock),
    ("GET", "/api/v1/info"): (False, _info),
    ("GET", "/api/v1/status"): (False, _status),
    ("GET", "/api/v1/summary"): (False, _summary),
    ("GET", "/api/v1/perf-summary"): (False, _perf_summary),
    ("GET", "/api/v1/settings"): (True, _settings),
    ("POST", "/api/v1/settings"): (True, _save_settings),
    ("GET", "/api/v1/autotune/presets"): (True, _presets),
    ("POST", "/api/v1/mining/pause"): (True, _mining(sleep=True)),
    ("POST", "/api/v1/mining/stop"): (True, _mining(sleep=True)),
    ("POST", "/api/v1/mining/resume"): (True, _mining(sleep=False)),
    ("POST", "/api/v1/mining/start"): (True, _mining(sleep=False)),
}


async def handle(rw: _RigWeb, request: BaseRequest) -> web.StreamResponse:
    faults = rw.rig.faults
    if "hung" in faults:
        await asyncio.sleep(HUNG_HOLD_S)  # holds the connection; the client times out
    if "slow" in faults:
        await asyncio.sleep(SLOW_REPLY_S)
    route = ROUTES.get((request.method, request.path.rstrip("/") or "/"))
    if route is None:
        return _json({"err": "Not found"}, 404)
    needs_token, run = route
    if needs_token and not rw.token_ok(request):
        return _json({"err": "Unauthorized"}, 401)
    reply = await run(rw, request)
    rw.replies += 1
    if "broken_json" in faults and isinstance(reply, web.Response) and reply.body:
        body = bytes(reply.body)  # type: ignore[arg-type]
        reply.body = body[: max(1, len(body) // 2)]
    return reply


class VnishWebListeners:
    """One HTTP server per Vnish rig on its own address and web port."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._servers: dict[str, tuple[asyncio.Server, web.Server]] = {}
        self._ports: dict[str, int] = {}
        self._state: dict[str, _RigWeb] = {}

    async def open(self, rig: RigSim) -> int:
        rw = self._state.get(rig.rig_id)
        if rw is None:
            rw = self._state[rig.rig_id] = _RigWeb(rig, self.clock)

        async def serve(request: BaseRequest) -> web.StreamResponse:
            return await handle(rw, request)

        port = self._ports.get(rig.rig_id, rig.plan.family_port)
        sock = bind_listener(rig.plan.host, port)
        http = web.Server(serve, access_log=None)
        server = await asyncio.get_running_loop().create_server(http, sock=sock)
        self._servers[rig.rig_id] = (server, http)
        bound = int(sock.getsockname()[1])
        self._ports[rig.rig_id] = bound
        return bound

    def port_of(self, rig_id: str) -> int | None:
        return self._ports.get(rig_id) if rig_id in self._servers else None

    def close(self, rig_id: str) -> None:
        entry = self._servers.pop(rig_id, None)
        if entry is None:
            return
        server, http = entry
        server.close()
        for conn in list(http.connections):  # an offline rig drops keep-alive connections too
            if conn.transport is not None:
                conn.transport.abort()

    def revoke_tokens(self, rig_id: str) -> None:
        """Forget every token of a rig, as a reboot does."""
        rw = self._state.get(rig_id)
        if rw is not None:
            rw.tokens.clear()

    def replies(self, rig_id: str) -> int:
        rw = self._state.get(rig_id)
        return rw.replies if rw is not None else 0

    async def close_all(self) -> None:
        entries = list(self._servers.values())
        for rig_id in list(self._servers):
            self.close(rig_id)
        for server, _ in entries:
            await server.wait_closed()


def listeners(clock: Clock) -> FamilyListeners:
    return VnishWebListeners(clock)
