"""The Rig interface every rig driver implements, and helpers shared by the drivers.

A driver reads a rig into a RigReading and applies one RigCommand. Both raise a
minerd.errors.DeviceError naming the rig and its endpoint on failure; the poller turns a
failed read into a status with `classify_failure` and backs off. `apply` only sends: the
next read verifies that the rig got there.
"""

from __future__ import annotations

import abc
import bisect

from minerd.errors import (
    CommandRejected,
    DeviceError,
    DeviceTimeout,
    DeviceUnreachable,
    ProtocolError,
)
from minerd.model import RigCommand, RigModel, RigProtocol, RigReading, RigState

__all__ = [
    "Rig",
    "classify_failure",
    "command_limit_s",
    "driver_fault",
    "estimate_power_w",
    "pick_profile",
]


class Rig(abc.ABC):
    """One rig as minerd sees it: identity, a read, a command."""

    def __init__(
        self, rig_id: str, host: str, port: int, model: RigModel, container: str = ""
    ) -> None:
        self._rig_id = rig_id
        self._host = host
        self._port = port
        self._model = model
        self._container = container

    @property
    def rig_id(self) -> str:
        return self._rig_id

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def endpoint(self) -> str:
        return f"{self._host}:{self._port}"

    @property
    def model(self) -> RigModel:
        return self._model

    @property
    def container(self) -> str:
        return self._container

    @property
    @abc.abstractmethod
    def protocol(self) -> RigProtocol: ...

    @abc.abstractmethod
    async def read(self, now_s: float) -> RigReading:
        """Read the rig now; raise DeviceError (never return a fake reading) on failure."""

    @abc.abstractmethod
    async def apply(self, cmd: RigCommand) -> None:
        """Send one command; raise DeviceError if the rig refused it or could not be told."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release what the driver holds (sessions); the rig object is unusable afterwards."""

    def rejected(self, message: str, code: int = 0) -> CommandRejected:
        return CommandRejected(self._rig_id, self.endpoint, message, code=code)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._rig_id} {self.endpoint} {self._model.name}>"


def classify_failure(error: DeviceError) -> tuple[RigState, str]:
    """What a failed read says about the rig: (state, reason).

    Only a refused or reset connection means offline. A hung API, a garbled reply or a PLC
    that cannot reach the rig behind it leave the state unknown: the rig may well still be
    hashing, so the controller counts it at nominal power.
    """
    if isinstance(error, DeviceUnreachable):
        return RigState.OFFLINE, f"offline: {error.message}"
    if isinstance(error, DeviceTimeout):
        return RigState.UNKNOWN, f"hung: {error.message}"
    if isinstance(error, ProtocolError):
        return RigState.UNKNOWN, f"broken reply: {error.message}"
    return RigState.UNKNOWN, f"{error.reason}: {error.message}"


def driver_fault(rig_id: str, endpoint: str, exc: Exception) -> ProtocolError:
    """A driver bug (anything but a DeviceError) as a failure of that one rig: its reply was
    not understood, so its state is unknown and it is counted at nominal power. The caller
    (poller, executor) goes on with the other rigs and logs the traceback."""
    return ProtocolError(rig_id, endpoint, f"driver error: {exc!r}")


# How long one apply() may take in all, as the runner (executor, fail-safe shed) bounds it.
# Drivers end each exchange themselves (transports.deadline.device_deadline, a DeviceTimeout
# naming the exchange) within the family's command_timeout_s, or the rig's read limit where
# that is longer (LuxOS session, Whatsminer salt probe, Braiins login), and one apply chains
# at most APPLY_EXCHANGES of them: stock reads the config, then sets it (the 2 s ack window
# of a ~21 s answer); Whatsminer probes v3, sends, resends once on a stale salt; Vnish lists
# presets, then posts; Braiins logs in, sets ramping, calls. The runner's limit is therefore
# a backstop for a driver that does not bound its I/O, never shorter than the driver's own
# chain: it must not cancel a command that was about to succeed.
APPLY_EXCHANGES = 3
APPLY_GRACE_S = 1.0


def command_limit_s(command_timeout_s: float, read_timeout_s: float) -> float:
    """The outer time limit of one command to a rig (see APPLY_EXCHANGES)."""
    return APPLY_EXCHANGES * max(command_timeout_s, read_timeout_s) + APPLY_GRACE_S


def estimate_power_w(model: RigModel, hashrate_ths: float) -> float:
    """Power the model's curve needs for hashrate_ths (sleep power when not hashing)."""
    if hashrate_ths <= 0.0:
        return model.sleep_power_w
    pts = model.curve
    if not pts:
        frac = hashrate_ths / model.nominal_hashrate_ths if model.nominal_hashrate_ths else 1.0
        return model.sleep_power_w + frac * (model.nominal_power_w - model.sleep_power_w)
    rates = [p.hashrate_ths for p in pts]
    if hashrate_ths >= rates[-1]:
        return pts[-1].power_w
    if hashrate_ths <= rates[0]:
        # below the curve: linear from sleep power at zero hashrate to the first point
        frac = hashrate_ths / rates[0] if rates[0] > 0 else 1.0
        return model.sleep_power_w + frac * (pts[0].power_w - model.sleep_power_w)
    i = bisect.bisect_right(rates, hashrate_ths)
    lo, hi = pts[i - 1], pts[i]
    span = hi.hashrate_ths - lo.hashrate_ths
    frac = (hashrate_ths - lo.hashrate_ths) / span if span > 0 else 0.0
    return lo.power_w + frac * (hi.power_w - lo.power_w)


def pick_profile(model: RigModel, power_w: float) -> str:
    """The highest profile at or below power_w, else the lowest one (LuxOS profiles)."""
    if not model.profiles:
        raise ValueError(f"model {model.name} has no power profiles")
    best = model.profiles[0]
    for prof in model.profiles:
        if prof.power_w <= power_w + 1e-6:
            best = prof
    return best.name
