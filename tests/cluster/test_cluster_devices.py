"""Which devices each [cluster] role builds: the controller the meters, a shard its rigs."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

from minerd.daemon.app import cycle_config
from minerd.daemon.cluster_devices import build_role_devices, role_cycle_config
from minerd.settings import Settings, settings_from_dict

SHARDS = ["s1", "s2", "s3"]


def settings(cluster: dict[str, Any]) -> Settings:
    raw = {
        "site": {"name": "site1"},
        "grid": {"contracted_limit_kw": 900.0, "failsafe_limit_kw": 300.0},
        "meters": [
            {
                "name": "grid",
                "profile": "eastron-sdm630",
                "endpoint": "tcp://127.0.0.1:1502",
                "role": "grid",
            }
        ],
        "rigs": [
            {"name": "row-a", "driver": "luxos", "profile": "bitmain-s19jpro",
             "hosts": ["127.0.0.1-127.0.0.40"]},
            {"name": "row-b", "driver": "luxos", "profile": "bitmain-s21",
             "hosts": ["127.0.1.1-127.0.1.20"]},
        ],
        "cluster": cluster,
    }  # fmt: skip
    return settings_from_dict(raw, base_dir=Path("."))


def test_the_controller_builds_the_meters_and_no_rig() -> None:
    d = build_role_devices(settings({"role": "controller", "shards": SHARDS}), None, None)
    assert [m.name for m in d.meter_infos] == ["grid"]
    assert d.rigs == [] and d.rig_infos == [] and d.models == {}


def test_hash_shards_split_every_rig_once_and_read_no_meter() -> None:
    seen: dict[str, str] = {}
    for s in SHARDS:
        d = build_role_devices(
            settings({"role": "shard", "shards": SHARDS, "shard_id": s}), None, None
        )
        assert d.meters == [] and d.meter_infos == []
        assert [r.rig_id for r in d.rigs] == [i.rig_id for i in d.rig_infos]
        assert set(d.models) == {i.rig_id for i in d.rig_infos}
        for info in d.rig_infos:
            assert info.rig_id not in seen
            seen[info.rig_id] = s
            assert SHARDS[zlib.crc32(info.rig_id.encode()) % 3] == s
    assert len(seen) == 60  # 40 + 20 rigs, each in exactly one shard


def test_a_shard_by_rig_group_builds_only_its_groups() -> None:
    cfg = {"role": "shard", "shards": SHARDS, "shard_id": "s2", "rig_groups": ["row-b"]}
    d = build_role_devices(settings(cfg), None, None)
    assert len(d.rig_infos) == 20
    assert {i.model for i in d.rig_infos} == {"bitmain-s21"}


def test_a_shards_last_resort_fail_safe_limit_is_its_share() -> None:
    s = settings({"role": "shard", "shards": SHARDS, "shard_id": "s1"})
    config = role_cycle_config(s, cycle_config(s))
    assert config.failsafe_limit_kw == 100.0 and config.loop.failsafe_limit_kw == 100.0
    ctl = settings({"role": "controller", "shards": SHARDS})
    assert role_cycle_config(ctl, cycle_config(ctl)).failsafe_limit_kw == 300.0
