"""The real ControlCycle (loop, planner, IntentBook) on a small simulated site, one step per
second of a ManualClock: rigs follow commands (or ignore them) with their sleep and wake
times, are read every read_every_s (and right after a command, and when the cycle asks),
the grid meter sums rigs and auxiliary load. Shared by the controller and runtime tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from minerd.clock import ManualClock
from minerd.control.loop import LoopConfig
from minerd.control.planner import PlanConstraints
from minerd.errors import DeviceTimeout, DeviceUnreachable
from minerd.model import (
    ControlMode,
    MeterReading,
    MeterRole,
    PowerProfile,
    Quota,
    QuotaSource,
    RigAction,
    RigCommand,
    RigModel,
    RigProtocol,
    RigReading,
    RigState,
)
from minerd.runtime.cycle import ControlCycle, CycleConfig, CycleResult
from minerd.runtime.devices import MeterInfo, RigInfo
from minerd.runtime.executor import ShedGate
from minerd.runtime.fleet import FleetState
from minerd.runtime.intents import IntentBook
from minerd.storage import Database, Stores

AUX_BASE_KW = 5.0
AUX_FRACTION = 0.05

# A sleep/wake rig with one 3 kW profile: what the cycle tests run unless they need more.
TEST_RIG = RigModel(
    name="test-rig",
    vendor="test",
    model="test-rig",
    nominal_power_w=3000.0,
    nominal_hashrate_ths=100.0,
    sleep_power_w=20.0,
    min_power_w=0.0,
    max_power_w=0.0,
    modes=frozenset({ControlMode.SLEEP_WAKE, ControlMode.PROFILES}),
    profiles=(PowerProfile("p3000", 3000.0, 100.0),),
    curve=(),
    wake_time_s=10.0,
    sleep_time_s=5.0,
    chip_temp_derate_c=85.0,
    chip_temp_max_c=95.0,
    boards=3,
    fans=4,
    fan_rpm_nominal=6000,
)


@dataclass
class PlantRig:
    rig_id: str
    model: RigModel
    power_w: float
    awake: bool = True
    target_w: float = 0.0
    profile: str | None = None
    ignores: bool = False  # answers success and does nothing
    wake_at_s: float | None = None

    def apply(self, cmd: RigCommand, now_s: float) -> None:
        if self.ignores:
            return
        m = self.model
        if cmd.action is RigAction.SLEEP:
            self.awake, self.target_w = False, m.sleep_power_w
        elif cmd.action is RigAction.WAKE:
            if not self.awake:
                self.wake_at_s = now_s + m.wake_time_s
            self.awake = True
            self.profile = cmd.profile or self.profile
            self.target_w = self._profile_w()
        elif cmd.action is RigAction.SET_PROFILE:
            self.profile = cmd.profile
            if self.awake:
                self.target_w = self._profile_w()
        elif cmd.action is RigAction.SET_POWER and cmd.power_w is not None:
            self.target_w = cmd.power_w

    def _profile_w(self) -> float:
        p = self.model.profile(self.profile) if self.profile else None
        return p.power_w if p is not None else self.model.nominal_power_w

    def advance(self, now_s: float, dt_s: float) -> None:
        target = self.target_w if self.awake else self.model.sleep_power_w
        if self.wake_at_s is not None and now_s < self.wake_at_s:
            target = self.model.sleep_power_w
        # Down and up both take the switch time, linearly (slower than the simulator's ramp).
        m = self.model
        if target < self.power_w:
            step = m.nominal_power_w / m.sleep_time_s * dt_s
            self.power_w = max(target, self.power_w - step)
        else:
            step = m.nominal_power_w / max(1.0, m.wake_time_s / 2) * dt_s
            self.power_w = min(target, self.power_w + step)

    def reading(self, now_s: float) -> RigReading:
        asleep = self.power_w <= self.model.sleep_power_w + 1.0
        return RigReading(
            rig=self.rig_id,
            taken_at_s=now_s,
            state=RigState.SLEEPING if asleep else RigState.HASHING,
            reason="",
            hashrate_ths=0.0 if asleep else self.model.hashrate_at(self.power_w),
            power_w=self.power_w,
            profile=self.profile if not asleep else None,
        )


class PlantExecutor:
    """Applies commands at once and acknowledges them, like a rig answering 'success'.
    Journals intents like the real executor; outcomes only if journal_outcomes (a kill -9
    between the two leaves none)."""

    def __init__(self, plant: CyclePlant) -> None:
        self.plant = plant
        self.shedding = False
        self.sent: list[tuple[float, RigCommand]] = []
        self.journal_outcomes = True

    def submit(
        self,
        shed: tuple[RigCommand, ...],
        raise_: tuple[RigCommand, ...],
        doubtful: tuple[RigCommand, ...] = (),
        gate: ShedGate | None = None,  # every shed answers at once: a gate never holds
    ) -> None:
        p = self.plant
        now_s = p.clock.now_s()
        shed = (*shed, *doubtful)
        for cmd in (*shed, *raise_):
            if cmd.rig_id in p.offline:  # nothing answers: the executor gives up on it
                p.cycle.on_command_failed(cmd, "connection refused")
        cmds = tuple(c for c in (*shed, *raise_) if c.rig_id not in p.offline)
        if not cmds:
            return
        ids = p.stores.journal.intents(cmds, now_s)
        if self.journal_outcomes:
            p.stores.journal.outcomes([(i, True, "") for i in ids], now_s)
        for cmd in cmds:
            self.sent.append((now_s, cmd))
            p.rigs[cmd.rig_id].apply(cmd, now_s)
            p.cycle.on_command_sent(cmd)
            p.read(cmd.rig_id)  # the poller reads it at once to verify


@dataclass
class CyclePlant:
    tmp_path: Path
    model: RigModel
    n: int = 20
    ignoring: tuple[str, ...] = ()
    offline: tuple[str, ...] = ()  # draw power, answer no read and no command
    # Reads time out, commands land: a starved poller, not a broken rig (set at any time).
    hung: set[str] = field(default_factory=set)
    # Not read at all, neither due nor asked for: a poller fallen behind (set at any time).
    late: set[str] = field(default_factory=set)
    read_every_s: int = 2
    min_on_s: float = 5.0
    min_off_s: float = 5.0
    margin_kw: float = 1.0
    ki: float = 0.05
    ramp_up_kw_per_s: float = 5.0
    max_wakes_per_cycle: int = 50
    asleep: tuple[str, ...] = ()  # rigs asleep at the start
    db_name: str = "plant.sqlite"
    start_s: float = 1_800_000_000.0
    restore: bool = False  # a restart: state from the database first, as Site.run does
    retry_unresponsive_s: float = 120.0
    # Transformer copper losses at full load (kW), growing with the load squared: load the
    # cycle's linear aux model does not have (the simulator's site has them too).
    loss_kw_at_full: float = 0.0
    history: list[tuple[float, float, float]] = field(default_factory=list)  # t, import, limit
    results: list[CycleResult] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.clock = ManualClock(self.start_s)
        ids = [f"r{i:03d}" for i in range(1, self.n + 1)]
        nominal = self.model.nominal_power_w
        self.rigs = {
            r: PlantRig(
                r,
                self.model,
                self.model.sleep_power_w if r in self.asleep else nominal,
                awake=r not in self.asleep,
                target_w=nominal,
                ignores=r in self.ignoring,
            )
            for r in ids
        }
        infos = [
            RigInfo(r, self.model.name, "c1", "127.0.0.1", 0, RigProtocol.LUXOS, 1.0, 1.0, 30.0)
            for r in ids
        ]
        meter = MeterInfo("grid", MeterRole.GRID, "c1", "tcp://127.0.0.1:0", 1.0, 1.0, 5.0)
        self.fleet = FleetState(infos, [meter])
        self.stores = Stores.open(Database(self.tmp_path / self.db_name))
        self.full_kw = self.import_kw_for(self.n * nominal)
        self.limit_kw = 2.0 * self.full_kw
        self.executor = PlantExecutor(self)
        config = CycleConfig(
            site="plant",
            contracted_limit_kw=2.0 * self.full_kw,
            failsafe_limit_kw=0.5 * self.full_kw,
            settlement_interval_s=900.0,
            loop=LoopConfig(
                margin_kw=self.margin_kw,
                aux_base_kw=AUX_BASE_KW,
                aux_fraction=AUX_FRACTION,
                ramp_up_kw_per_s=self.ramp_up_kw_per_s,
                failsafe_limit_kw=0.5 * self.full_kw,
                kp=0.5,
                ki=self.ki,
                deadband_kw=self.margin_kw / 2,
            ),
            constraints=PlanConstraints(
                min_on_s=self.min_on_s,
                min_off_s=self.min_off_s,
                max_wakes_per_cycle=self.max_wakes_per_cycle,
            ),
            warmup_s=5.0,
            retry_unresponsive_s=self.retry_unresponsive_s,
        )
        models = {r: self.model for r in ids}
        self.cycle = ControlCycle(
            fleet=self.fleet,
            models=models,
            book=IntentBook(models),
            executor=self.executor,  # type: ignore[arg-type]
            stores=self.stores,
            clock=self.clock,
            config=config,
        )
        self.cycle.poll_now = self.read
        self.cycle.listeners.append(self.results.append)
        if self.restore:
            self.cycle.restore()
        self._to_read: set[str] = set()
        self._tick = 0

    @staticmethod
    def import_kw_for(rig_w: float) -> float:
        return rig_w / 1000.0 * (1.0 + AUX_FRACTION) + AUX_BASE_KW

    def true_import_kw(self) -> float:
        rig_w = sum(r.power_w for r in self.rigs.values())
        load = rig_w / (self.n * self.model.nominal_power_w)
        return self.import_kw_for(rig_w) + self.loss_kw_at_full * load * load

    def read(self, rig_id: str) -> None:
        """Read a rig now (what Poller.poll_now does, without the network)."""
        if rig_id in self.late:
            return
        index = self.fleet.rig_index(rig_id)
        if rig_id in self.offline:
            error = DeviceUnreachable(rig_id, "plant", "connection refused")
            self.fleet.rig_failed(index, error, self.clock.now_s())
            return
        if rig_id in self.hung:
            timeout = DeviceTimeout(rig_id, "plant", "no reply within 3s")
            self.fleet.rig_failed(index, timeout, self.clock.now_s())
            return
        rig = self.rigs[rig_id]
        self.fleet.update_rig(index, rig.reading(self.clock.now_s()))

    def set_limit(self, limit_kw: float) -> None:
        now = self.clock.now_s()
        self.limit_kw = limit_kw
        q = Quota(f"q{now}", limit_kw, now, None, QuotaSource.API, now, "test")
        self.cycle.quotas = [q]

    def read_meter(self) -> None:
        now = self.clock.now_s()
        noise = 0.01 * (self._tick % 3)  # a live meter never repeats itself exactly
        w = (self.true_import_kw() + noise) * 1000.0
        self.fleet.update_meter(MeterReading("grid", now, w))

    def read_due_rigs(self) -> None:
        for i, rig_id in enumerate(self.rigs):
            if (self._tick + i) % self.read_every_s == 0:
                self.read(rig_id)

    def woken(self) -> list[tuple[float, str]]:
        return [(t, c.rig_id) for t, c in self.executor.sent if c.action is RigAction.WAKE]

    def step(self) -> CycleResult:
        """One second: rigs move, the meter and due rigs are read, the cycle runs."""
        # Rigs move first: reads the cycle scheduled on the clock (a shed's show time) fire
        # inside advance() and must see the second that just passed, as on a real site.
        now = self.clock.now_s() + 1.0
        for r in self.rigs.values():
            r.advance(now, 1.0)
        self.clock.advance(1.0)
        self._tick += 1
        self.read_meter()
        self.read_due_rigs()
        result = self.cycle.run_once()
        self.history.append((now, self.true_import_kw(), self.limit_kw))
        return result

    def run(self, seconds: int) -> None:
        for _ in range(seconds):
            self.step()

    def stall(self, seconds: int) -> None:
        """The daemon stalls: rigs go on moving, nothing is read and no cycle runs."""
        for _ in range(seconds):
            now = self.clock.now_s() + 1.0
            for r in self.rigs.values():
                r.advance(now, 1.0)
            self.clock.advance(1.0)
            self._tick += 1
            self.history.append((now, self.true_import_kw(), self.limit_kw))
