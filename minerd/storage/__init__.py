"""The one SQLite database: quotas, audit log, command journal, compliance, controller state,
alert state and outbox (and the telemetry spool, in spool.py). Imports only model and errors.

Typical composition (app.py):

    db = Database(settings.storage.path)
    stores = Stores.open(db)      # every repository, every migration applied
    ...
    db.close()
"""

from __future__ import annotations

from dataclasses import dataclass

from minerd.storage.alert_state import AlertStore, OutboxItem
from minerd.storage.audit import AuditEntry, AuditLog
from minerd.storage.awards import AwardConflict, AwardsPut, AwardStore
from minerd.storage.compliance import ComplianceKind, ComplianceStore
from minerd.storage.db import Database, Migration, NotFoundError
from minerd.storage.health import StorageHealth, StorageProblem
from minerd.storage.journal import CommandJournal, JournalEntry
from minerd.storage.quotas import QuotaAdded, QuotaConflict, QuotaStore, ScheduleReplaced
from minerd.storage.state import JsonValue, MaintenanceEntry, MaintenanceStore, StateStore


@dataclass(frozen=True)
class Stores:
    """Every repository on one Database; building it runs every migration."""

    db: Database
    quotas: QuotaStore
    audit: AuditLog
    journal: CommandJournal
    compliance: ComplianceStore
    state: StateStore
    maintenance: MaintenanceStore
    alerts: AlertStore
    awards: AwardStore

    @property
    def health(self) -> StorageHealth:
        """How writes to the one database fare (alerts and metrics read it)."""
        return self.db.health

    @classmethod
    def open(cls, db: Database) -> Stores:
        from minerd.storage.migrations import upgrade

        upgrade(db)  # refuses a newer file; backs up, then migrates an older one
        return cls(
            db=db,
            quotas=QuotaStore(db),
            audit=AuditLog(db),
            journal=CommandJournal(db),
            compliance=ComplianceStore(db),
            state=StateStore(db),
            maintenance=MaintenanceStore(db),
            alerts=AlertStore(db),
            awards=AwardStore(db),
        )


__all__ = [
    "AlertStore",
    "AuditEntry",
    "AuditLog",
    "AwardConflict",
    "AwardStore",
    "AwardsPut",
    "CommandJournal",
    "ComplianceKind",
    "ComplianceStore",
    "Database",
    "JournalEntry",
    "JsonValue",
    "MaintenanceEntry",
    "MaintenanceStore",
    "Migration",
    "NotFoundError",
    "OutboxItem",
    "QuotaAdded",
    "QuotaConflict",
    "QuotaStore",
    "ScheduleReplaced",
    "StateStore",
    "StorageHealth",
    "StorageProblem",
    "Stores",
]
