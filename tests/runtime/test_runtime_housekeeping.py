"""Housekeeping deletes old journal rows and sent notifications, never what a restart needs."""

from __future__ import annotations

from pathlib import Path

from minerd.model import Alert, RigAction, RigCommand, Severity
from minerd.runtime.housekeeping import DAY_S, Retention, prune_once
from minerd.storage import Database, Stores

NOW_S = 1_800_000_000.0


def test_prunes_old_rows_and_keeps_each_rigs_newest_intent(tmp_path: Path) -> None:
    stores = Stores.open(Database(tmp_path / "hk.sqlite"))
    old, recent = NOW_S - 30 * DAY_S, NOW_S - DAY_S
    # r1: two old intents; r2: one old, one recent.
    stores.journal.intents(
        [RigCommand("r1", RigAction.SLEEP), RigCommand("r2", RigAction.WAKE)], old
    )
    stores.journal.intents([RigCommand("r1", RigAction.WAKE)], old + 60)
    stores.journal.intents([RigCommand("r2", RigAction.SLEEP)], recent)
    for alert_id in ("a1", "a2", "a3"):
        stores.alerts.upsert(
            Alert(alert_id, "RigOffline", Severity.WARNING, (("rig", "r1"),), "s", "d", old)
        )
    sent_old = stores.alerts.enqueue("webhook", "a1", "{}")
    stores.alerts.mark_sent(sent_old, old)
    sent_recent = stores.alerts.enqueue("webhook", "a2", "{}")
    stores.alerts.mark_sent(sent_recent, recent)
    unsent = stores.alerts.enqueue("webhook", "a3", "{}")

    journal, outbox = prune_once(stores, NOW_S, Retention())

    assert (journal, outbox) == (2, 1)
    latest = stores.journal.latest_intent_per_rig()
    assert latest["r1"].command.action is RigAction.WAKE  # old, but the newest r1 has
    assert latest["r2"].command.action is RigAction.SLEEP
    assert stores.journal.count() == 2
    assert [i.outbox_id for i in stores.alerts.due("webhook", NOW_S)] == [unsent]
    assert stores.alerts.pending_count() == 1
