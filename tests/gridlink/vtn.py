"""openleadr's own VTN in the test process: registers one VEN, records its reports and
opt responses, and sends events made from simulated times."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from openleadr import OpenADRServer

VEN_ID = "ven-minerd-1"
VTN_ID = "TEST-VTN"


@dataclass
class Vtn:
    port: int
    reports: list[tuple[str, float]] = field(default_factory=list)  # (r_id, value)
    opts: list[tuple[str, str]] = field(default_factory=list)  # (event_id, opt)
    registered: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.server = OpenADRServer(
            vtn_id=VTN_ID,
            http_port=self.port,
            http_host="127.0.0.1",
            requested_poll_freq=timedelta(seconds=1),
            show_fingerprint=False,
        )
        self.server.add_handler("on_create_party_registration", self._register)
        self.server.add_handler("on_register_report", self._register_report)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/OpenADR2/Simple/2.0b"

    async def _register(self, info: dict[str, object]) -> tuple[str, str]:
        self.registered.append(str(info.get("ven_name")))
        return VEN_ID, "reg-1"

    async def _register_report(self, report: dict[str, object]) -> list[object]:
        wanted = []
        for d in report["report_descriptions"]:  # type: ignore[attr-defined]
            r_id = str(d["r_id"])

            async def receive(data: list[tuple[datetime, float]], r_id: str = r_id) -> None:
                self.reports.extend((r_id, float(v)) for _, v in data)

            wanted.append((r_id, receive, timedelta(seconds=1)))
        return wanted

    def _opt(self, ven_id: str, event_id: str, opt_type: str) -> None:
        self.opts.append((event_id, opt_type))

    def send(
        self,
        intervals: list[tuple[float, float, float]],
        signal_name: str = "simple",
        signal_type: str = "level",
    ) -> str:
        """intervals: (start_s, duration_s, payload) on the daemon's (simulated) time axis."""
        event_id: str = self.server.add_event(
            ven_id=VEN_ID,
            signal_name=signal_name,
            signal_type=signal_type,
            intervals=[
                {
                    "dtstart": datetime.fromtimestamp(start_s, UTC),
                    "duration": timedelta(seconds=duration_s),
                    "signal_payload": payload,
                }
                for start_s, duration_s, payload in intervals
            ],
            callback=self._opt,
        )
        return event_id

    def cancel(self, event_id: str) -> None:
        self.server.cancel_event(VEN_ID, event_id)

    async def start(self) -> None:
        await self.server.run_async()

    async def stop(self) -> None:
        await self.server.stop()
