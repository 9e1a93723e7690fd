"""`minerd region forget`: the way out after the coordinator's JetStream store was wiped.

Through the site's real SQLite state (a tmp dir): the site saved an allocation of revision
57 as the daemon saves it; a coordinator restarted on an empty store sends revision 1 and
the restarted site refuses it (fenced). The command refuses while the database is held open
(the daemon runs) and changes nothing; with the daemon stopped it removes the saved
allocation, says what it removed, audits it; the next start takes revision 1.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from nats.aio.client import Client

from minerd.clock import ManualClock
from minerd.cluster.region import Allocation, allocation_subject, encode_allocation
from minerd.cluster.region_site import RegionSiteNode
from minerd.control.region_lease import RegionalGrant, RegionalLease
from minerd.daemon.region_role import STATE_LEASE, restore_lease
from minerd.storage import Database, Stores
from minerd.storage.state import JsonValue

REPO = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000.0
REGION, SITE = "alatau", "plant"
OLD_REVISION = 57


def save_old_allocation(stores: Stores) -> None:
    """What the daemon's region role saved after taking revision 57's grant (seq 812)."""
    lease = RegionalLease()
    grant = RegionalGrant("coord-a", OLD_REVISION, 812, T0, 30.0, 40.0)
    assert lease.accept(grant, T0) == ""
    saved = lease.saved()
    assert saved is not None
    value: dict[str, JsonValue] = {"region": REGION, "site": SITE, **saved.to_state()}
    stores.state.set_many({STATE_LEASE: value})


def site_start(stores: Stores, now_s: float) -> tuple[RegionalLease, RegionSiteNode]:
    """A site's start: its lease restored from the state, its node taking allocations."""
    lease = RegionalLease()
    restore_lease(lease, stores.state, REGION, SITE, now_s)
    return lease, RegionSiteNode(Client(), REGION, SITE, lease, ManualClock(now_s))


def wiped_coordinator_allocation(now_s: float, kw: float) -> bytes:
    """The first allocation of a coordinator whose leadership store restarted: revision 1."""
    a = Allocation(REGION, SITE, "coord-a", 1, 1, now_s, 30.0, kw * 1000.0, 500_000.0)
    return encode_allocation(a)


def forget(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "minerd", "region", "forget", "--config", str(config), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def test_forget_lets_a_site_take_a_wiped_coordinators_allocations(tmp_path: Path) -> None:
    config = tmp_path / "site.toml"
    config.write_text('[storage]\npath = "site.sqlite"\n')
    db_path = tmp_path / "site.sqlite"
    subject = allocation_subject(REGION, SITE)

    db = Database(db_path)  # the daemon, running
    stores = Stores.open(db)
    save_old_allocation(stores)
    now_s = T0 + 600.0  # the site restarted after the store was wiped
    lease, node = site_start(stores, now_s)
    assert lease.newest_revision == OLD_REVISION
    assert not node.take(wiped_coordinator_allocation(now_s, 35.0), subject)
    assert lease.refused == 1 and lease.allocation_kw(now_s) is None  # fail-safe: safe side

    # The daemon holds the database open: refused, nothing removed. --dry-run shows it.
    busy = forget(config)
    assert busy.returncode == 1, busy.stdout + busy.stderr
    assert "in use" in busy.stderr and "stop the daemon" in busy.stderr
    assert stores.state.get(STATE_LEASE) is not None
    shown = forget(config, "--dry-run")
    assert shown.returncode == 0, shown.stderr
    assert f"revision {OLD_REVISION}, seq 812" in shown.stdout
    assert stores.state.get(STATE_LEASE) is not None
    db.close()  # the daemon stops

    done = forget(config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("removed the saved regional allocation of site plant in ")
    assert f"region {REGION}: coordinator coord-a, revision {OLD_REVISION}, seq 812" in (
        done.stdout
    )
    assert "40 kW, lease end 2027-01-15T08:00:30+00:00" in done.stdout  # T0 + 30 s

    with Database(db_path) as db:  # the daemon starts again
        stores = Stores.open(db)
        assert stores.state.get(STATE_LEASE) is None
        entries = stores.audit.query(action="region.forgotten")
        assert len(entries) == 1 and entries[0].actor == "cli" and entries[0].subject == REGION
        detail = json.loads(entries[0].detail)
        assert (detail["lease_revision"], detail["seq"], detail["site"]) == (
            OLD_REVISION,
            812,
            SITE,
        )
        now_s += 60.0
        lease, node = site_start(stores, now_s)
        assert lease.newest_revision == 0
        assert node.take(wiped_coordinator_allocation(now_s, 35.0), subject)
        assert lease.allocation_kw(now_s) == 35.0 and lease.newest_revision == 1

    again = forget(config)  # nothing saved now: nothing to do, still a success
    assert again.returncode == 0, again.stderr
    assert "no saved regional allocation: nothing to remove" in again.stdout


def test_forget_refuses_what_is_not_a_minerd_database(tmp_path: Path) -> None:
    config = tmp_path / "site.toml"
    config.write_text('[storage]\npath = "other.sqlite"\n')
    with sqlite3.connect(tmp_path / "other.sqlite") as conn:
        conn.execute("CREATE TABLE kv (key TEXT, value TEXT)")
    conn.close()
    out = forget(config)
    assert out.returncode == 1 and "not a minerd database" in out.stderr
    missing = forget(tmp_path / "nope.toml")
    assert missing.returncode == 2 and "cannot read the config" in missing.stderr
