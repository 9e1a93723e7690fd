"""The IEC 60870-5-104 outstation on c104 (Fraunhofer lib60870): points, callbacks, link.

No `from __future__ import annotations` here: c104 checks callback signatures against the
real annotation objects, not strings.

c104 runs its own threads. Its callbacks only check (pure, fast) and hand the event to the
asyncio loop with call_soon_threadsafe; storage, audit and the cycle are touched on the loop.
"""

import asyncio
import ipaddress
import logging
from datetime import UTC, datetime

import c104

from minerd.errors import StorageError
from minerd.gridlink.iec104_commands import (
    Command,
    Rejected,
    Setpoint,
    Withdraw,
    check_setpoint,
    check_withdraw,
)
from minerd.gridlink.iec104_points import ANALOGS, PointValue, moved, point_values, spec
from minerd.gridlink.orders import GridOrders, Order, Refused
from minerd.model import Quota, QuotaSource
from minerd.runtime.service import SiteService
from minerd.settings.models import Iec104Analog, Iec104Settings, split_listen

log = logging.getLogger(__name__)

TICK_S = 0.5  # clock seconds between looks for spontaneous changes
INT16_MIN, INT16_MAX = -32768, 32767


def _stamp(at_s: float) -> datetime:
    return datetime.fromtimestamp(at_s, UTC)


def _quality(valid: bool) -> c104.Quality:
    return c104.Quality() if valid else c104.Quality.Invalid


def _info(item: Iec104Analog | None, pv: PointValue) -> c104.Information:
    at = _stamp(pv.at_s)
    if item is None:  # a single point
        return c104.SingleInfo(bool(pv.value), _quality(pv.valid), at)
    wire = float(pv.value) * item.scale
    if item.type in ("M_ME_TE_1", "M_ME_NB_1"):
        clamped = max(INT16_MIN, min(INT16_MAX, round(wire)))
        overflow = clamped != round(wire)
        quality = c104.Quality.Overflow if overflow and pv.valid else _quality(pv.valid)
        return c104.ScaledInfo(c104.Int16(clamped), quality, at)
    return c104.ShortInfo(wire, _quality(pv.valid), at)


class Iec104Outstation:
    """minerd as the controlled station; the dispatcher's SCADA is the controlling one."""

    def __init__(self, settings: Iec104Settings, service: SiteService, contracted_kw: float):
        self.settings = settings
        self.service = service
        self.contracted_kw = contracted_kw
        self.orders = GridOrders(service, QuotaSource.IEC104)
        self._allowed = {ipaddress.ip_address(ip) for ip in settings.allowed_clients}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.server: c104.Server | None = None  # while running
        self._points: dict[str, c104.Point] = {}
        self._sent: dict[str, PointValue] = {}
        self._peer = ""
        self._setpoint_kw: float | None = None
        self._refused_seen: set[str] = set()
        # Counters (for tests and logs): commands confirmed / refused, connections refused.
        self.confirmed = 0
        self.rejected: list[str] = []
        self.refused_connections = 0

    # ------------------------------------------------------------ c104 thread

    def _on_connect(self, server: c104.Server, ip: str) -> bool:
        try:
            ok = ipaddress.ip_address(ip) in self._allowed
        except ValueError:
            ok = False
        self._post(self._connection_seen, ip, ok)
        return ok

    def _on_setpoint(
        self, point: c104.Point, previous_info: c104.Information, message: c104.IncomingMessage
    ) -> c104.ResponseState:
        value = point.value
        wire = float(value) if isinstance(value, int | float) else float("nan")
        checked = check_setpoint(self.settings, self.contracted_kw, wire)
        return self._answer(checked, message)

    def _on_withdraw(
        self, point: c104.Point, previous_info: c104.Information, message: c104.IncomingMessage
    ) -> c104.ResponseState:
        return self._answer(check_withdraw(self.settings, bool(point.value)), message)

    def _answer(
        self, checked: Command | Rejected, message: c104.IncomingMessage
    ) -> c104.ResponseState:
        if isinstance(checked, Rejected):
            self._post(self._rejected, checked.reason)
            return c104.ResponseState.FAILURE
        if not message.is_select_command:  # a select only reserves; execute acts
            self._post(self._execute, checked, message.originator_address)
        return c104.ResponseState.SUCCESS

    def _post(self, fn: object, *args: object) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)  # type: ignore[arg-type]

    # ------------------------------------------------------------ asyncio loop

    def _connection_seen(self, ip: str, ok: bool) -> None:
        if ok:
            self._peer = ip
            log.info("iec104: SCADA connected from %s", ip)
            return
        self.refused_connections += 1
        level = logging.DEBUG if ip in self._refused_seen else logging.WARNING
        self._refused_seen.add(ip)
        log.log(level, "iec104: refused a connection from %s (not in allowed_clients)", ip)

    def _rejected(self, reason: str) -> None:
        self.rejected.append(reason)
        log.warning("iec104: negative confirmation: %s", reason)

    def _actor(self, originator: int) -> str:
        return f"iec104:{self._peer or 'scada'}/oa{originator}"

    def _execute(self, command: Command, originator: int) -> None:
        actor = self._actor(originator)
        self.service.note_grid_contact()
        mine = self.orders.in_force()
        if isinstance(command, Withdraw):
            n = self.orders.withdraw(mine, actor)
            log.info("iec104: setpoint withdrawn by %s (%d quota(s))", actor, n)
            self.confirmed += 1
            self._refresh()
            return
        assert isinstance(command, Setpoint)
        now_s = self.service.clock.now_s()
        duration = self.settings.setpoint_duration_s
        end_s = None if duration is None else now_s + duration
        out = self.orders.submit(Order(command.limit_kw, end_s=end_s), actor)
        if isinstance(out, Refused):
            # Confirmed on the wire but not durable: the feedback point shows what holds.
            self._rejected(f"setpoint {command.limit_kw:.1f} kW not stored: {out.reason}")
            return
        self.confirmed += 1
        # The latest setpoint wins; the older ones are withdrawn so a withdrawal clears all.
        self.orders.withdraw([q for q in mine if q.quota_id != out.quota.quota_id], actor)
        self._refresh()

    def setpoint_in_force(self) -> Quota | None:
        now_s = self.service.clock.now_s()
        mine = [q for q in self.orders.in_force() if q.covers(now_s)]
        return max(mine, key=lambda q: (q.issued_at_s, q.quota_id), default=None)

    # ------------------------------------------------------------ points

    def _build(self, server: c104.Server) -> None:
        p = self.settings.points
        station = server.add_station(common_address=self.settings.common_address)
        assert station is not None
        for name in (*ANALOGS, "setpoint_kw", "failsafe", "grid_fresh"):
            item = spec(p, name)
            point = station.add_point(io_address=item.ioa, type=getattr(c104.Type, item.type))
            assert point is not None, name
            self._points[name] = point
        mode = (
            c104.CommandMode.SELECT_AND_EXECUTE
            if self.settings.select_before_execute
            else c104.CommandMode.DIRECT
        )
        setpoint = station.add_point(
            io_address=p.setpoint_ioa, type=c104.Type.C_SE_NC_1, command_mode=mode
        )
        withdraw = station.add_point(
            io_address=p.withdraw_ioa, type=c104.Type.C_SC_NA_1, command_mode=mode
        )
        assert setpoint is not None and withdraw is not None
        setpoint.on_receive(callable=self._on_setpoint)
        withdraw.on_receive(callable=self._on_withdraw)
        server.on_connect(callable=self._on_connect)

    def _values(self) -> dict[str, PointValue]:
        try:
            q = self.setpoint_in_force()
            self._setpoint_kw = None if q is None else q.limit_kw
        except StorageError as exc:  # telemetry goes on; the last known setpoint stands
            log.debug("iec104: setpoint in force not readable: %s", exc)
        return point_values(self.service.status(), self._setpoint_kw)

    def _refresh(self, spontaneous: bool = True) -> None:
        """Write every point's value; send those that moved (COT 3)."""
        for name, pv in self._values().items():
            point = self._points[name]
            item = spec(self.settings.points, name)
            point.info = _info(item if isinstance(item, Iec104Analog) else None, pv)
            if spontaneous and moved(self.settings.points, self._sent.get(name), pv):
                self._sent[name] = pv
                point.transmit(cause=c104.Cot.SPONTANEOUS)

    def _periodic(self) -> None:
        for point in self._points.values():
            point.transmit(cause=c104.Cot.PERIODIC)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._points, self._sent = {}, {}
        host, port = split_listen(self.settings.listen)
        server = c104.Server(
            ip=host,
            port=port,
            tick_rate_ms=50,
            select_timeout_ms=10_000,
            # Room for a reconnect while a dead link still awaits its t1 timeout.
            max_connections=2 * len(self._allowed) + 2,
        )
        self._build(server)
        self.server = server
        self._refresh(spontaneous=False)
        server.start()
        log.info(
            "iec104: outstation on %s, common address %d, clients %s",
            self.settings.listen,
            self.settings.common_address,
            ", ".join(self.settings.allowed_clients),
        )
        clock = self.service.clock
        next_periodic = clock.monotonic_s() + self.settings.period_s
        try:
            while True:
                linked = server.has_active_connections
                if linked:
                    self.service.note_grid_contact()  # link up: the dispatcher is there
                self._refresh(spontaneous=linked)
                now_s = clock.monotonic_s()
                if now_s >= next_periodic:
                    # Late (a busy loop): send once and keep the period, never a burst.
                    next_periodic = max(next_periodic + self.settings.period_s, now_s)
                    if linked:
                        self._periodic()
                await clock.sleep(min(TICK_S, self.settings.period_s / 2))
        finally:
            self._loop = None
            server.stop()
