"""The InfluxDB / VictoriaMetrics sink: bounded queue, batching, spool and in-order replay.

Three stages, none of which can block the caller:
1. `offer()` puts the event in a bounded queue with put_nowait; when the queue is full the
   event is encoded and spooled on the spot (a short SQLite transaction), not lost.
2. The builder task turns events into line-protocol chunks (rig lines in slices of
   batch_size, yielding to the loop between slices).
3. The sender task batches chunks by size and time and writes one batch at a time. A batch
   that fails goes to the spool; while the spool holds anything, new chunks are appended
   behind it and the spool is replayed oldest first, so the server sees points in order.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass

from minerd.clock import Clock, system_clock
from minerd.errors import SinkError, StorageError
from minerd.sinks.base import ErrorLog, SinkStats
from minerd.sinks.events import (
    AlertEvent,
    CommandsEvent,
    ComplianceEvent,
    SettlementEvent,
    SnapshotEvent,
    TelemetryEvent,
)
from minerd.sinks.points import PointEncoder
from minerd.sinks.writers import BatchRejected, LineWriter
from minerd.storage.spool import PointClass, SpoolChunk, TelemetrySpool

log = logging.getLogger(__name__)

_SLICE = 250  # rigs encoded between two yields to the event loop


@dataclass(frozen=True)
class InfluxSinkConfig:
    batch_size: int = 5000  # points per write
    flush_interval_s: float = 1.0  # a partial batch waits at most this long
    queue_size: int = 1000  # events waiting for the builder
    rig_interval_s: float = 15.0  # per-rig points at most this often (0: every snapshot)
    min_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 300.0  # cap on a server's Retry-After


class InfluxSink:
    def __init__(
        self,
        writer: LineWriter,
        spool: TelemetrySpool,
        encoder: PointEncoder,
        config: InfluxSinkConfig | None = None,
        *,
        name: str = "influx",
        clock: Clock = system_clock,
    ) -> None:
        self.name = name
        self._clock = clock
        self.config = cfg = config or InfluxSinkConfig()
        self._writer = writer
        self._spool = spool
        self._encoder = encoder
        self._events: asyncio.Queue[TelemetryEvent] = asyncio.Queue(cfg.queue_size)
        self._chunks: asyncio.Queue[SpoolChunk] = asyncio.Queue(64)
        self._last_rig_s: float | None = None
        self._failures = 0
        self._errors = ErrorLog(log, f"sink {name} ({writer.name})")
        self._spool_errors = ErrorLog(log, f"sink {name} spool")
        self.points_lost = 0  # could not even be spooled (database error)
        self.points_written = 0
        self.batches_written = 0
        self.points_rejected = 0
        self.write_errors = 0
        self.dropped_events = 0
        self.overflow_spooled_events = 0
        self._building = False
        self._sending = False

    # ------------------------------------------------------------ caller side

    def offer(self, event: TelemetryEvent) -> None:
        try:
            self._events.put_nowait(event)
        except asyncio.QueueFull:
            # Slow or down server and a busy builder: keep the data, on disk, now.
            self.overflow_spooled_events += 1
            if not self._spool_chunks(list(self._encode(event))):
                self.dropped_events += 1

    @property
    def spool(self) -> TelemetrySpool:
        return self._spool

    def stats(self) -> SinkStats:
        return SinkStats(
            name=self.name,
            healthy=not self._errors.failing,
            queued=self._events.qsize(),
            dropped_events=self.dropped_events,
            points_written=self.points_written,
            points_rejected=self.points_rejected,
            write_errors=self.write_errors,
            spool_points=self._spool.points,
            spool_fill_ratio=self._spool.fill_ratio,
            spool_dropped_points=self._spool.dropped_points,
            last_error=self._errors.last_error,
            kind="tsdb",
        )

    def idle(self) -> bool:
        """Nothing queued, built, spooled or in flight: everything offered was delivered."""
        return (
            self._events.empty()
            and self._chunks.empty()
            and self._spool.points == 0
            and not self._building
            and not self._sending
        )

    # ------------------------------------------------------------ tasks

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._build_loop(), name=f"{self.name}-build")
                tg.create_task(self._send_loop(), name=f"{self.name}-send")
        finally:
            # Shutdown or crash: whatever is still in memory goes to the spool.
            self._spool_pending_chunks()
            leftovers: list[SpoolChunk] = []
            while not self._events.empty():
                leftovers.extend(self._encode(self._events.get_nowait()))
            self._spool_chunks(leftovers)
            await self._writer.close()

    async def _build_loop(self) -> None:
        while True:
            event = await self._events.get()
            self._building = True
            try:
                if isinstance(event, SnapshotEvent):
                    await self._build_snapshot(event)
                else:
                    for chunk in self._encode(event):
                        await self._chunks.put(chunk)
            except Exception:  # a value the encoder chokes on costs one event, not the sink
                self.dropped_events += 1
                log.exception("sink %s: could not encode %s", self.name, type(event).__name__)
            finally:
                self._building = False

    async def _build_snapshot(self, event: SnapshotEvent) -> None:
        """Like _encode, yielding to the loop every _SLICE rigs so that the sender's
        responses (and everything else on the loop) wait at most about a millisecond."""
        chunks = self._encode(event, rigs=False)
        for chunk in chunks:
            await self._chunks.put(chunk)
        snap = event.snapshot
        if not snap.rigs or not self._rigs_due(snap.taken_at_s):
            return
        ts = round(snap.taken_at_s * 1000.0)
        size = self.config.batch_size
        for start in range(0, len(snap.rigs), size):
            lines: list[str] = []
            for i in range(start, min(start + size, len(snap.rigs)), _SLICE):
                self._encoder.rig_lines(snap.rigs[i : min(i + _SLICE, start + size)], ts, lines)
                await asyncio.sleep(0)
            await self._chunks.put(_chunk(PointClass.RIG, lines))

    async def _send_loop(self) -> None:
        while True:
            if self._spool.points > 0:
                await self._replay_once()
                continue
            batch = await self._collect()
            await self._send(batch)

    async def _collect(self) -> list[SpoolChunk]:
        """Wait for one chunk, then take more until batch_size points or flush_interval_s."""
        cfg = self.config
        first = await self._chunks.get()
        self._sending = True  # held by the sender from now on: not idle
        batch = [first]
        points = first.points
        deadline = self._clock.monotonic_s() + cfg.flush_interval_s
        try:
            while points < cfg.batch_size:
                if self._chunks.empty():
                    remaining = deadline - self._clock.monotonic_s()
                    if remaining <= 0:
                        break
                    try:
                        async with self._clock.timeout(remaining):
                            chunk = await self._chunks.get()
                    except TimeoutError:
                        break
                else:
                    chunk = self._chunks.get_nowait()
                batch.append(chunk)
                points += chunk.points
        except asyncio.CancelledError:
            self._spool_chunks(batch)  # stopping: what was taken goes to disk
            self._sending = False
            raise
        return batch

    async def _send(self, batch: list[SpoolChunk]) -> None:
        points = sum(c.points for c in batch)
        body = b"\n".join(c.body for c in batch)
        self._sending = True
        try:
            await self._writer.write(body, points)
        except BatchRejected as exc:
            self._rejected(points, exc)
        except SinkError as exc:
            self._spool_chunks(batch)
            await self._backoff(exc)
        except Exception as exc:  # a writer bug: keep the data, slow down, say why
            log.exception("sink %s: write failed unexpectedly", self.name)
            self._spool_chunks(batch)
            await self._backoff(SinkError(self.name, f"{type(exc).__name__}: {exc}"))
        except asyncio.CancelledError:
            self._spool_chunks(batch)  # may be a duplicate: the server dedupes same points
            raise
        else:
            self._written(points)
        finally:
            self._sending = False

    async def _replay_once(self) -> None:
        self._spool_pending_chunks()  # newer data goes behind the spooled data
        batch = self._spool.peek(self.config.batch_size)
        if batch is None:
            return
        self._sending = True
        try:
            await self._writer.write(batch.body, batch.points)
        except BatchRejected as exc:
            self._spool.ack(batch)
            self._rejected(batch.points, exc)
        except SinkError as exc:
            await self._backoff(exc)
        except Exception as exc:
            log.exception("sink %s: replay failed unexpectedly", self.name)
            await self._backoff(SinkError(self.name, f"{type(exc).__name__}: {exc}"))
        else:
            self._spool.ack(batch)
            self._written(batch.points)
        finally:
            self._sending = False

    async def _backoff(self, exc: SinkError) -> None:
        """Wait before the next try, moving new chunks into the spool meanwhile."""
        cfg = self.config
        self.write_errors += 1
        self._failures += 1
        self._errors.failed(str(exc))
        if exc.retry_after_s is not None:
            delay = min(exc.retry_after_s, cfg.max_retry_after_s)
        else:
            delay = min(cfg.max_backoff_s, cfg.min_backoff_s * 2 ** (self._failures - 1))
            delay *= random.uniform(0.8, 1.2)  # jitter, not crypto
        deadline = self._clock.monotonic_s() + delay
        while (remaining := deadline - self._clock.monotonic_s()) > 0:
            try:
                async with self._clock.timeout(remaining):
                    chunk = await self._chunks.get()
            except TimeoutError:
                break
            self._spool_chunks([chunk, *self._take_pending_chunks()])

    # ------------------------------------------------------------ helpers

    def _written(self, points: int) -> None:
        self._failures = 0
        self.points_written += points
        self.batches_written += 1
        self._errors.ok()

    def _rejected(self, points: int, exc: SinkError) -> None:
        self.points_rejected += points
        log.warning("sink %s: dropped %d points the server refused: %s", self.name, points, exc)

    def _take_pending_chunks(self) -> list[SpoolChunk]:
        out: list[SpoolChunk] = []
        while not self._chunks.empty():
            out.append(self._chunks.get_nowait())
        return out

    def _spool_pending_chunks(self) -> None:
        self._spool_chunks(self._take_pending_chunks())

    def _spool_chunks(self, chunks: list[SpoolChunk]) -> bool:
        """Spool chunks; False (data lost, logged) when the database itself fails."""
        if not chunks:
            return True
        try:
            self._spool.append(chunks)
        except StorageError as exc:
            self.points_lost += sum(c.points for c in chunks)
            self._spool_errors.failed(str(exc))
            return False
        self._spool_errors.ok()
        return True

    def _encode(self, event: TelemetryEvent, *, rigs: bool = True) -> Iterator[SpoolChunk]:
        enc = self._encoder
        if isinstance(event, SnapshotEvent):
            snap = event.snapshot
            core = [enc.site_line(snap, event.limit, event.budget_w, event.failsafe, event.totals)]
            core += enc.meter_lines(snap)
            if event.economics is not None:
                core.append(enc.economics_line(event.economics, snap.taken_at_s))
            yield _chunk(PointClass.CORE, core)
            if rigs and snap.rigs and self._rigs_due(snap.taken_at_s):
                ts = round(snap.taken_at_s * 1000.0)
                size = self.config.batch_size
                for i in range(0, len(snap.rigs), size):
                    yield _chunk(PointClass.RIG, enc.rig_lines(snap.rigs[i : i + size], ts))
        elif isinstance(event, CommandsEvent):
            lines = enc.command_lines(event.commands, event.at_s)
            if lines:
                yield _chunk(PointClass.EVENT, lines)
        elif isinstance(event, ComplianceEvent):
            yield _chunk(PointClass.CORE, [enc.compliance_line(event.record)])
        elif isinstance(event, SettlementEvent):
            yield _chunk(PointClass.CORE, [enc.settlement_line(event.record)])
        elif isinstance(event, AlertEvent):
            yield _chunk(PointClass.EVENT, [enc.alert_line(event.alert, event.at_s)])

    def _rigs_due(self, t_s: float) -> bool:
        every = self.config.rig_interval_s
        if every > 0 and self._last_rig_s is not None and t_s - self._last_rig_s < every:
            return False
        self._last_rig_s = t_s
        return True


def _chunk(cls: PointClass, lines: list[str]) -> SpoolChunk:
    return SpoolChunk(cls, len(lines), "\n".join(lines).encode())
