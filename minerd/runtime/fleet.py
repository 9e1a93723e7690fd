"""FleetState: the latest reading of every device, and consistent snapshots of them all.

The poller writes readings in as they arrive; the controller takes one snapshot per cycle.
A failed read never reuses an old reading as fresh: the rig's status says why it failed and
keeps only its last known power (the closed loop corrects against the grid meter anyway).
Per-rig statuses are cached and rebuilt only when something about that rig changed, so a
snapshot of 50,000 rigs costs a tuple copy, not 50,000 allocations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from minerd.devices.rig import classify_failure
from minerd.errors import DeviceError
from minerd.model import (
    FleetSnapshot,
    MeterReading,
    MeterStatus,
    RigReading,
    RigState,
    RigStatus,
)
from minerd.runtime.devices import MeterInfo, RigInfo


class FleetState:
    def __init__(self, rigs: Sequence[RigInfo], meters: Sequence[MeterInfo]) -> None:
        self.rig_infos: tuple[RigInfo, ...] = tuple(rigs)
        self.meter_infos: tuple[MeterInfo, ...] = tuple(meters)
        self._rig_index = {r.rig_id: i for i, r in enumerate(self.rig_infos)}
        if len(self._rig_index) != len(self.rig_infos):
            raise ValueError("rig ids must be unique")
        self._readings: list[RigReading] = [
            RigReading(rig=r.rig_id, taken_at_s=0.0, state=RigState.UNKNOWN, reason="not read yet")
            for r in self.rig_infos
        ]
        self._good: list[bool] = [False] * len(self.rig_infos)
        self._maintenance: list[bool] = [False] * len(self.rig_infos)
        self._unresponsive: list[bool] = [False] * len(self.rig_infos)
        self._status: list[RigStatus | None] = [None] * len(self.rig_infos)
        self._status_fresh_until_s: list[float] = [0.0] * len(self.rig_infos)
        self._meter_readings: dict[str, MeterReading] = {}
        self._meter_good_at_s: dict[str, float] = {}
        self._meter_error: dict[str, str] = {m.name: "not read yet" for m in self.meter_infos}
        self.poll_errors_by_reason: dict[str, int] = {}
        self.polls_total = 0

    # ------------------------------------------------------------ writes (poller)

    def rig_index(self, rig_id: str) -> int:
        try:
            return self._rig_index[rig_id]
        except KeyError:
            raise KeyError(f"unknown rig {rig_id!r}") from None

    def has_rig(self, rig_id: str) -> bool:
        return rig_id in self._rig_index

    def update_rig(self, index: int, reading: RigReading) -> None:
        self.polls_total += 1
        self._readings[index] = reading
        self._good[index] = True
        self._status[index] = None

    def rig_failed(self, index: int, error: DeviceError, now_s: float) -> None:
        self.polls_total += 1
        self.poll_errors_by_reason[error.reason] = (
            self.poll_errors_by_reason.get(error.reason, 0) + 1
        )
        state, reason = classify_failure(error)
        last = self._readings[index]
        self._readings[index] = RigReading(
            rig=last.rig,
            taken_at_s=now_s,
            state=state,
            reason=reason,
            power_w=last.power_w,
            power_estimated=True,
            boards_total=last.boards_total,
            profile=last.profile,
        )
        self._good[index] = False
        self._status[index] = None

    def update_meter(self, reading: MeterReading) -> None:
        last = self._meter_readings.get(reading.meter)
        self._meter_readings[reading.meter] = reading
        if last is not None and _same_values(last, reading):
            # A live meter never repeats every value (noise, an advancing energy counter):
            # a frozen one (stuck gateway cache, hung firmware) goes stale like a silent one.
            since = self._meter_good_at_s.get(reading.meter, reading.taken_at_s)
            self._meter_error[reading.meter] = (
                f"frozen: identical values for {reading.taken_at_s - since:.1f}s"
            )
            return
        self._meter_good_at_s[reading.meter] = reading.taken_at_s
        self._meter_error[reading.meter] = ""

    def meter_failed(self, meter: str, error: DeviceError) -> None:
        self.poll_errors_by_reason[error.reason] = (
            self.poll_errors_by_reason.get(error.reason, 0) + 1
        )
        self._meter_error[meter] = f"{error.reason}: {error.message}"

    def set_maintenance(self, rig_id: str, on: bool) -> None:
        i = self.rig_index(rig_id)
        self._maintenance[i] = on
        self._status[i] = None

    def set_unresponsive(self, rig_id: str, on: bool) -> None:
        i = self.rig_index(rig_id)
        if self._unresponsive[i] != on:
            self._unresponsive[i] = on
            self._status[i] = None

    # ------------------------------------------------------------ reads (controller, API)

    def reading(self, rig_id: str) -> RigReading:
        return self._readings[self.rig_index(rig_id)]

    def maintenance_rigs(self) -> list[str]:
        return [r.rig_id for r, on in zip(self.rig_infos, self._maintenance, strict=True) if on]

    def snapshot(self, now_s: float) -> FleetSnapshot:
        statuses = self._statuses(now_s)
        meters = tuple(self._meter_status(m, now_s) for m in self.meter_infos)
        return FleetSnapshot(taken_at_s=now_s, rigs=statuses, meters=meters)

    def _statuses(self, now_s: float) -> tuple[RigStatus, ...]:
        out = self._status
        fresh_until = self._status_fresh_until_s
        for i, st in enumerate(out):
            # A cached status stays valid until its freshness would flip.
            if st is not None and (not st.fresh or now_s < fresh_until[i]):
                continue
            info = self.rig_infos[i]
            reading = self._readings[i]
            until = reading.taken_at_s + info.stale_after_s
            fresh = self._good[i] and now_s < until
            fresh_until[i] = until
            if st is not None and st.fresh and not fresh:
                out[i] = replace(st, fresh=False)
                continue
            out[i] = RigStatus(
                rig_id=info.rig_id,
                model=info.model,
                container=info.container,
                host=info.host,
                port=info.port,
                protocol=info.protocol,
                reading=reading,
                fresh=fresh,
                maintenance=self._maintenance[i],
                unresponsive=self._unresponsive[i],
            )
        return tuple(st for st in out if st is not None)

    def _meter_status(self, info: MeterInfo, now_s: float) -> MeterStatus:
        reading = self._meter_readings.get(info.name)
        good_at = self._meter_good_at_s.get(info.name)
        age_s = now_s - good_at if good_at is not None else float("inf")
        return MeterStatus(
            meter=info.name,
            role=info.role,
            container=info.container,
            reading=reading,
            fresh=reading is not None and age_s <= info.stale_after_s,
            age_s=age_s,
            error=self._meter_error.get(info.name, ""),
        )


def _same_values(a: MeterReading, b: MeterReading) -> bool:
    return replace(a, taken_at_s=b.taken_at_s, read_window_s=b.read_window_s) == b
