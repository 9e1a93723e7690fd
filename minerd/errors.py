"""The one error hierarchy of minerd.

Every error that concerns a device names the device and its endpoint, so a log line or an
API answer tells a technician where to look without a stack trace.
"""

from __future__ import annotations


class MinerdError(Exception):
    """Base of every error minerd raises on purpose."""


class ConfigError(MinerdError):
    """The site config is wrong. Holds every problem found, each with its key path."""

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = list(problems)
        self.source = source
        head = f"{source}: " if source else ""
        super().__init__(head + "; ".join(self.problems))


class ProfileError(MinerdError):
    """A device profile (drivers/*.toml) is invalid. Holds every problem found."""

    def __init__(self, profile: str, problems: list[str]) -> None:
        self.profile = profile
        self.problems = list(problems)
        super().__init__(f"profile {profile}: " + "; ".join(self.problems))


class DeviceError(MinerdError):
    """A device could not be read or commanded. Names the device and the endpoint."""

    reason = "error"

    def __init__(self, device: str, endpoint: str, message: str) -> None:
        self.device = device
        self.endpoint = endpoint
        self.message = message
        super().__init__(f"{device} at {endpoint}: {message}")


class DeviceUnreachable(DeviceError):
    """Nothing listens, the connection was refused or reset: the device is offline."""

    reason = "offline"


class DeviceTimeout(DeviceError):
    """The device accepted the connection but did not answer in time (hung or slow)."""

    reason = "timeout"


class ProtocolError(DeviceError):
    """The reply could not be understood (broken JSON beyond repair, truncated frame)."""

    reason = "protocol"


class CommandRejected(DeviceError):
    """The device answered and refused the request (cgminer STATUS E/F, bad session...)."""

    reason = "rejected"

    def __init__(self, device: str, endpoint: str, message: str, code: int = 0) -> None:
        self.code = code
        super().__init__(device, endpoint, message)


class ModbusException(DeviceError):
    """The Modbus device answered with an exception code (illegal address, busy...)."""

    reason = "modbus-exception"

    def __init__(self, device: str, endpoint: str, message: str, exception_code: int) -> None:
        self.exception_code = exception_code
        super().__init__(device, endpoint, message)


class StorageError(MinerdError):
    """The SQLite state database could not be read or written."""


class QuotaError(MinerdError):
    """A quota request is invalid (limit, times, overlap). Says which field and why."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class SinkError(MinerdError):
    """A telemetry or alert sink could not deliver (the data goes to the spool or retries)."""

    def __init__(self, sink: str, message: str, retry_after_s: float | None = None) -> None:
        self.sink = sink
        self.message = message
        self.retry_after_s = retry_after_s
        super().__init__(f"{sink}: {message}")


class FeedError(MinerdError):
    """A market data feed (the hashprice) could not be read or its reply was not usable."""

    def __init__(self, url: str, message: str) -> None:
        self.url = url
        self.message = message
        super().__init__(f"feed {url}: {message}")


class ClusterError(MinerdError):
    """A peer of a split site (shard or controller) or the NATS server failed or sent a
    message that could not be used. Names the peer and the subject or bucket."""

    def __init__(self, peer: str, subject: str, message: str) -> None:
        self.peer = peer
        self.subject = subject
        self.message = message
        super().__init__(f"{peer} on {subject}: {message}")
