"""A SCADA for the tests: a c104 client (the controlling station) that records every
monitoring message with the simulated time it arrived, from c104's own thread."""

import threading
import time
from dataclasses import dataclass, field

import c104

from minerd.clock import Clock

MONITORING = {
    1001: c104.Type.M_ME_TF_1,
    1002: c104.Type.M_ME_TF_1,
    1003: c104.Type.M_ME_TF_1,
    1004: c104.Type.M_ME_TF_1,
    1005: c104.Type.M_ME_TF_1,
    1006: c104.Type.M_ME_TF_1,
    1007: c104.Type.M_ME_TF_1,  # shed capacity within 5 s, 60 s, 10 min
    1008: c104.Type.M_ME_TF_1,
    1009: c104.Type.M_ME_TF_1,
    1101: c104.Type.M_SP_TB_1,
    1102: c104.Type.M_SP_TB_1,
}
SETPOINT_IOA, WITHDRAW_IOA = 2001, 2002
POLL_S = 0.01
CONFIRM_POLLS = 600  # about 6 s of POLL_S naps a helper thread waits for a confirmation


@dataclass(frozen=True)
class Received:
    ioa: int
    value: float | bool
    cot: c104.Cot
    valid: bool
    at_s: float  # sim time of arrival


@dataclass
class Scada:
    host: str
    port: int
    clock: Clock
    common_address: int = 1
    received: list[Received] = field(default_factory=list)
    confirmations: list[tuple[int, bool]] = field(default_factory=list)  # (ioa, negative)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.client = c104.Client(tick_rate_ms=50, command_timeout_ms=5000)
        # No automatic init (GI, clock sync): c104's client can miss the confirmation of its
        # own init commands and then stay muted; the tests start data transfer and interrogate.
        conn = self.client.add_connection(ip=self.host, port=self.port, init=c104.Init.NONE)
        assert conn is not None
        self.connection = conn
        station = conn.add_station(common_address=self.common_address)
        assert station is not None
        self.station = station
        conn.on_receive_raw(callable=self._on_raw)
        for ioa, kind in MONITORING.items():
            point = station.add_point(io_address=ioa, type=kind)
            assert point is not None
            point.on_receive(callable=self._on_receive)
        setpoint = station.add_point(io_address=SETPOINT_IOA, type=c104.Type.C_SE_NC_1)
        withdraw = station.add_point(io_address=WITHDRAW_IOA, type=c104.Type.C_SC_NA_1)
        assert setpoint is not None and withdraw is not None
        self.setpoint_point, self.withdraw_point = setpoint, withdraw

    def _on_receive(
        self, point: c104.Point, previous_info: c104.Information, message: c104.IncomingMessage
    ) -> c104.ResponseState:
        value = point.value
        quality = point.quality
        valid = not (isinstance(quality, c104.Quality) and not quality.is_good())
        item = Received(
            point.io_address,
            value if isinstance(value, bool) else float(value),  # type: ignore[arg-type]
            message.cot,
            valid,
            self.clock.now_s(),
        )
        with self._lock:
            self.received.append(item)
        return c104.ResponseState.NONE

    def _on_raw(self, connection: c104.Connection, data: bytes) -> None:
        # Confirmations read off the wire: c104's own wait for them can miss a fast answer.
        frame = c104.explain_bytes_dict(apdu=data)
        if frame.get("format") == "I" and frame.get("cot") == c104.Cot.ACTIVATION_CON:
            with self._lock:
                ioa = int(frame["firstInformationObjectAddress"])
                self.confirmations.append((ioa, bool(frame["negative"])))

    def start(self) -> None:
        self.client.start()

    def stop(self) -> None:
        self.client.stop()

    def active(self) -> bool:
        """Data transfer started: STARTDT once the link is open."""
        state = self.connection.state
        if state == c104.ConnectionState.OPEN_MUTED:
            self.connection.unmute()
        return state == c104.ConnectionState.OPEN

    def messages(self, cot: c104.Cot | None = None, since_s: float = 0.0) -> list[Received]:
        with self._lock:
            items = list(self.received)
        return [r for r in items if r.at_s >= since_s and (cot is None or r.cot == cot)]

    def latest(self, ioa: int) -> Received | None:
        with self._lock:
            for r in reversed(self.received):
                if r.ioa == ioa:
                    return r
        return None

    # Blocking (waits for the confirmation): run these in a thread. True: positive ACTCON.
    def _command(self, point: c104.Point) -> bool:
        # Select-and-execute: two confirmations (select, then execute) unless one is negative.
        # c104's client may miss a select confirmation that comes back very fast (its wait is
        # registered after the answer arrived) and then never executes: a SCADA retries.
        want = 2 if point.command_mode == c104.CommandMode.SELECT_AND_EXECUTE else 1
        for _attempt in range(3):
            with self._lock:
                seen = len(self.confirmations)
            point.transmit(cause=c104.Cot.ACTIVATION)
            for _ in range(CONFIRM_POLLS):
                with self._lock:
                    new = [n for ioa, n in self.confirmations[seen:] if ioa == point.io_address]
                if any(new) or len(new) >= want:
                    return not any(new)
                time.sleep(POLL_S)
        raise AssertionError(f"no confirmation for IOA {point.io_address}")

    def send_setpoint(self, wire: float) -> bool:
        self.setpoint_point.value = wire
        return self._command(self.setpoint_point)

    def send_withdraw(self) -> bool:
        self.withdraw_point.value = True
        return self._command(self.withdraw_point)

    def interrogate(self) -> bool:
        """General interrogation; True on its positive confirmation (read off the wire)."""
        with self._lock:
            seen = len(self.confirmations)
        self.connection.interrogation(common_address=self.common_address, wait_for_response=False)
        for _ in range(CONFIRM_POLLS):
            with self._lock:
                new = [n for ioa, n in self.confirmations[seen:] if ioa == 0]
            if new:
                return not new[0]
            time.sleep(POLL_S)
        raise AssertionError("no confirmation of the general interrogation")
