"""Storage benchmark: command-journal batch insert rate against one transaction per intent,
single-row write latency (synchronous=FULL versus NORMAL), and the restart query."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from minerd.model import RigAction, RigCommand
from minerd.storage import AuditLog, CommandJournal, Database


def _cmds(n: int, base: int = 0) -> list[RigCommand]:
    return [
        RigCommand(f"rig-{(base + k) % 5000:05d}", RigAction.SET_POWER, power_w=3000.0, reason="r")
        for k in range(n)
    ]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Path(tmp) / "bench.db")
        journal = CommandJournal(db)
        audit = AuditLog(db)

        # Baseline: one transaction (one fsync) per intent.
        n_single = 300
        cmds = _cmds(n_single)
        t0 = time.perf_counter()
        for c in cmds:
            journal.intent(c, 1.0)
        single_rate = n_single / (time.perf_counter() - t0)

        # Batches of 1000 intents, one transaction each.
        batches, size = 50, 1000
        t0 = time.perf_counter()
        for b in range(batches):
            journal.intents(_cmds(size, b * size), 2.0 + b)
        batch_rate = batches * size / (time.perf_counter() - t0)

        # Single-row audit insert latency, FULL (default) then NORMAL.
        full: list[float] = []
        for i in range(300):
            t0 = time.perf_counter()
            audit.record(float(i), "bench", "quota.create", "q", "{}")
            full.append(time.perf_counter() - t0)
        normal: list[float] = []
        for i in range(300):
            t0 = time.perf_counter()
            with db.transaction("bench normal", durable=False) as conn:
                conn.execute(
                    "INSERT INTO audit(at_s, actor, action, subject, detail) VALUES (?,?,?,?,?)",
                    (float(i), "bench", "quota.create", "q", "{}"),
                )
            normal.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        latest = journal.latest_intent_per_rig()
        restart_ms = (time.perf_counter() - t0) * 1000
        rows = journal.count()
        db.close()

    print(f"journal intents, 1 per transaction : {single_rate:10.0f} /s (baseline)")
    print(f"journal intents, batches of {size}  : {batch_rate:10.0f} /s")
    print(f"  ratio batch / single             : {batch_rate / single_rate:10.1f} x")
    print(
        f"single-row insert, synchronous=FULL   median {statistics.median(full) * 1e3:.3f} ms"
        f"  p99 {sorted(full)[int(len(full) * 0.99)] * 1e3:.3f} ms"
    )
    print(
        f"single-row insert, synchronous=NORMAL median {statistics.median(normal) * 1e3:.3f} ms"
        f"  p99 {sorted(normal)[int(len(normal) * 0.99)] * 1e3:.3f} ms"
    )
    ratio = statistics.median(full) / statistics.median(normal)
    print(f"  ratio FULL / NORMAL (median)     : {ratio:.1f} x")
    print(f"latest_intent_per_rig over {rows} rows, {len(latest)} rigs: {restart_ms:.1f} ms")


if __name__ == "__main__":
    main()
