"""minerd as an OpenADR 2.0b VEN on openleadr: registers with the VTN, polls for events,
turns them into quotas (openadr_events), opts in or out as configured, and reports the
site's power and what it can shed within 5 s / 60 s / 10 min as TELEMETRY_USAGE.

openleadr is asyncio-native and runs on the daemon's loop; its handlers are short.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from datetime import timedelta
from typing import Any

from openleadr import OpenADRClient

from minerd.gridlink.openadr_events import (
    Event,
    event_id,
    event_orders,
    event_steps,
    modification,
    reference_prefix,
    status,
)
from minerd.gridlink.orders import GridOrders, Refused
from minerd.model import QuotaSource
from minerd.runtime.service import SiteService
from minerd.settings.models import OpenAdrSettings

log = logging.getLogger(__name__)

BACKOFF_MAX_S = 60.0
REPORT_DURATION = timedelta(hours=1)
SHED_HORIZONS_S = (5.0, 60.0, 600.0)  # reported as r_id shed-5s, shed-60s, shed-600s


class OpenAdrVen:
    def __init__(self, settings: OpenAdrSettings, service: SiteService, contracted_kw: float):
        self.settings = settings
        self.service = service
        self.contracted_kw = contracted_kw
        self.orders = GridOrders(service, QuotaSource.OPENADR)
        self.client: Any = None  # the running OpenADRClient (untyped library)
        self.registered = asyncio.Event()
        self.vtn_id = ""  # as the VTN names itself in its messages
        self.events_seen = 0

    # ------------------------------------------------------------ events

    @property
    def actor(self) -> str:
        return f"openadr:{self.vtn_id or 'vtn'}"

    async def on_event(self, event: Event) -> str:
        return self.handle(event)

    async def on_update_event(self, event: Event) -> str:
        return self.handle(event)

    def handle(self, event: Event) -> str:
        """Apply one event (new, modified or cancelled); returns optIn or optOut."""
        self.events_seen += 1
        self.service.note_grid_contact()
        ev_id, mod, state = event_id(event), modification(event), status(event)
        prefix = reference_prefix(ev_id)
        mine = self.orders.in_force(lambda q: (q.reference or "").startswith(prefix))
        current = f"{prefix}{mod}:"
        stale = [q for q in mine if not (q.reference or "").startswith(current)]
        if state == "cancelled":
            n = self.orders.withdraw(mine, self.actor)
            log.info("openadr: event %s cancelled, %d quota(s) withdrawn", ev_id, n)
            return "optIn"
        if self.settings.opt == "out":
            self.orders.withdraw(mine, self.actor)
            log.info("openadr: event %s: opted out ([openadr] opt = out)", ev_id)
            return "optOut"
        steps = event_steps(event, self.settings.simple_level_kw, self.contracted_kw)
        if isinstance(steps, Refused):
            log.warning("openadr: event %s: opted out: %s", ev_id, steps.reason)
            return "optOut"
        self.orders.withdraw(stale, self.actor)  # a modification replaces the old steps
        have = {q.reference for q in mine}
        now_s = self.service.clock.now_s()
        for order in event_orders(steps, ev_id, mod, now_s):
            if order.reference in have:
                continue  # re-delivered: already stored
            out = self.orders.submit(order, self.actor)
            if isinstance(out, Refused):
                log.warning("openadr: event %s: step not stored: %s", ev_id, out.reason)
        log.info("openadr: event %s (modification %d): %d step(s)", ev_id, mod, len(steps))
        return "optIn"

    # ------------------------------------------------------------ reports

    def _site_import_kw(self) -> float:
        return self.service.status().grid_import_kw

    def _rig_power_kw(self) -> float:
        return self.service.status().rig_power_kw

    def _shed_kw(self, horizon_s: float) -> float:
        shed = self.service.status().shed
        return shed.within_kw(horizon_s) if shed is not None else 0.0

    def _client(self) -> Any:
        s = self.settings
        client = OpenADRClient(
            ven_name=s.ven_name,
            vtn_url=s.vtn_url,
            ven_id=s.ven_id or None,
            cert=str(s.cert_file) if s.cert_file else None,
            key=str(s.key_file) if s.key_file else None,
            ca_file=str(s.ca_file) if s.ca_file else None,
            vtn_fingerprint=s.vtn_fingerprint or None,
            show_fingerprint=False,
        )
        client.add_handler("on_event", self.on_event)
        client.add_handler("on_update_event", self.on_update_event)
        client.add_hook("after_parse_xml", self._heard)
        rate = timedelta(seconds=s.report_interval_s)
        for resource, fetch in (("site", self._site_import_kw), ("rigs", self._rig_power_kw)):
            client.add_report(
                callback=fetch,
                resource_id=resource,
                measurement="power_real",
                unit="W",
                scale="k",
                report_specifier_id=f"minerd-{resource}-telemetry",
                r_id=f"{resource}-power",
                report_duration=REPORT_DURATION,
                sampling_rate=rate,
            )
        # What the site can shed within 5 s / 60 s / 10 min (site import kW), as telemetry.
        for horizon_s in SHED_HORIZONS_S:
            r_id = f"shed-{horizon_s:g}s"
            client.add_report(
                callback=functools.partial(self._shed_kw, horizon_s),
                resource_id="site",
                measurement="power_real",
                unit="W",
                scale="k",
                report_specifier_id=f"minerd-{r_id}-capacity",
                r_id=r_id,
                report_duration=REPORT_DURATION,
                sampling_rate=rate,
            )
        return client

    async def _heard(self, _message_type: str, payload: object) -> None:
        self.service.note_grid_contact()  # every VTN answer counts as the grid heard from
        if isinstance(payload, dict) and isinstance(payload.get("vtn_id"), str):
            self.vtn_id = payload["vtn_id"]

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        clock = self.service.clock
        backoff_s = 1.0
        warned = False
        while True:
            client = self._client()
            self.client = client
            try:
                await client.run()
                if client.registration_id is None:
                    raise ConnectionError(f"VTN {self.settings.vtn_url} did not register us")
                log.info(
                    "openadr: registered with %s as ven_id %s", self.settings.vtn_url, client.ven_id
                )
                self.registered.set()
                backoff_s, warned = 1.0, False
                await asyncio.Event().wait()  # openleadr polls and reports on its own
            except (OSError, ConnectionError, ValueError) as exc:
                level = logging.DEBUG if warned else logging.WARNING
                log.log(level, "openadr: %s; retrying in %.0f s", exc, backoff_s)
                warned = True
            finally:
                self.registered.clear()
                await _stop(client)
            await clock.sleep(backoff_s * random.uniform(0.8, 1.2))
            backoff_s = min(BACKOFF_MAX_S, backoff_s * 2)


async def _stop(client: Any) -> None:
    try:
        if client.scheduler.running:
            client.scheduler.shutdown(wait=False)
        if client.report_queue_task:
            client.report_queue_task.cancel()
        if client.client_session is not None:
            await client.client_session.close()
    except Exception as exc:  # closing a half-started client must not mask why it stopped
        log.debug("openadr: stopping the client: %s", exc)
