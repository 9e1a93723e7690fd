"""[cluster]: roles, shard selection and the problems named by key; `minerd check` shows it."""

from __future__ import annotations

import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

from minerd.cli.check import summary
from minerd.errors import ConfigError
from minerd.settings import Settings, settings_from_dict
from minerd.settings.cluster import shard_index

BASE: dict[str, Any] = {
    "site": {"name": "alatau-1"},
    "grid": {"contracted_limit_kw": 100.0, "failsafe_limit_kw": 50.0},
    "meters": [{"name": "grid", "profile": "x", "endpoint": "tcp://127.0.0.1:502", "role": "grid"}],
    "rigs": [
        {"name": "row-a", "driver": "luxos", "profile": "x", "hosts": ["127.0.0.1"]},
    ],
}


def load(cluster: dict[str, Any], **over: Any) -> Settings:
    return settings_from_dict(
        {**BASE, **over, "cluster": cluster}, base_dir=Path("."), check_profiles=False
    )


def problems(cluster: dict[str, Any], **over: Any) -> str:
    with pytest.raises(ConfigError) as e:
        load(cluster, **over)
    return str(e.value)


def test_single_is_the_default_and_check_says_so() -> None:
    s = settings_from_dict(BASE, base_dir=Path("."), check_profiles=False)
    assert s.cluster.role == "single"
    assert "cluster: single process" in summary(s)


def test_a_shard_and_a_controller_load_and_check_describes_them() -> None:
    shard = load({"role": "shard", "shards": ["s1", "s2"], "shard_id": "s2"})
    assert "cluster: shard of site [site] name on nats://127.0.0.1:4222" in summary(shard)
    assert "this is s2, rigs by crc32(rig id), hold 3 cycles" in summary(shard)
    ctl = load({"role": "controller", "shards": ["s1", "s2"], "nats_url": "nats://10.0.0.2"})
    assert "controller of site [site] name on nats://10.0.0.2, shards s1, s2" in summary(ctl)


@pytest.mark.parametrize(
    ("cluster", "expected"),
    [
        ({"role": "shard", "shards": ["s1"]}, 'cluster: role = "shard" needs shard_id'),
        ({"role": "shard", "shards": ["s1"], "shard_id": "s9"}, "shard_id 's9' is not in shards"),
        ({"role": "controller"}, 'cluster: role = "controller" needs shards'),
        ({"role": "controller", "shards": ["a", "a"]}, "listed twice"),
        ({"role": "leader"}, "cluster.role: Input should be 'single', 'controller' or 'shard'"),
        ({"role": "controller", "shards": ["a.b"]}, "cluster.shards[0]: 'a.b' must be 1-64"),
        ({"nats_url": "http://x:4222"}, "cluster.nats_url: 'http://x:4222' is not a NATS URL"),
        ({"lease_ttl_s": 0.1}, "cluster.lease_ttl_s"),
        (
            {"role": "shard", "shards": ["s1"], "shard_id": "s1", "rig_groups": ["row-z"]},
            "cluster.rig_groups: 'row-z' is not a [[rigs]] group name",
        ),
        (
            {"role": "controller", "shards": ["s1"], "shard_id": "s1"},
            'shard_id and rig_groups are for role = "shard" only',
        ),
        ({"role": "controller", "shards": ["s1"], "bogus": 1}, "cluster.bogus"),
    ],
)
def test_problems_name_the_key(cluster: dict[str, Any], expected: str) -> None:
    assert expected in problems(cluster)


def test_a_site_name_that_is_no_subject_token_needs_cluster_site() -> None:
    text = problems({"role": "controller", "shards": ["s1"]}, site={"name": "Alatau 1"})
    assert "cluster.site: [site] name 'Alatau 1' is not one NATS subject token" in text
    ok = load({"role": "controller", "shards": ["s1"], "site": "alatau1"}, site={"name": "A 1"})
    assert ok.cluster.site == "alatau1"


def test_rigs_are_split_by_a_stable_hash_or_by_group() -> None:
    shards = ["s1", "s2", "s3"]
    owners = {}
    for k in range(300):
        rig = f"c{k // 50:03d}-r{k % 50:03d}"
        owned = [
            s
            for s in shards
            if load({"role": "shard", "shards": shards, "shard_id": s}).cluster.owns(rig, "row-a")
        ]
        assert len(owned) == 1  # every rig has exactly one shard
        owners[rig] = owned[0]
        assert shard_index(rig, 3) == zlib.crc32(rig.encode()) % 3  # the same on any machine
    counts = [list(owners.values()).count(s) for s in shards]
    assert min(counts) >= 70, counts  # evenly spread (300 rigs over 3)
    by_group = load({"role": "shard", "shards": shards, "shard_id": "s1", "rig_groups": ["row-a"]})
    assert by_group.cluster.owns("any", "row-a") and not by_group.cluster.owns("any", "row-b")


def test_the_daemon_starts_without_nats_py_unless_a_cluster_role_is_set() -> None:
    """nats-py is the [cluster] extra: a single-process daemon must not need it."""
    code = (
        "import sys; sys.modules['nats'] = None\n"
        "import minerd.daemon.app, minerd.cli.entry\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
