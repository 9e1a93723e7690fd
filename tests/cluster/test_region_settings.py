"""region.toml and a site's [region] table: every problem names its key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from minerd.cli.check import summary
from minerd.cli.entry import main
from minerd.clock import ManualClock
from minerd.daemon.coordinator import CoordinatorService
from minerd.errors import ConfigError
from minerd.settings import settings_from_dict
from minerd.settings.region import RegionSiteSettings, load_region_config

GOOD = """
[region]
name = "alatau"
nats_url = "nats://127.0.0.1:4222"
limit_kw = 20000

[coordinator]
id = "coord-a"
lease_s = 30
interval_s = 5
audit_db = "audit/region.sqlite"
control_token_env = "REGION_TOKEN"
"""


def test_a_good_region_config_loads_with_its_token_and_paths(tmp_path: Path) -> None:
    path = tmp_path / "region.toml"
    path.write_text(GOOD)
    s = load_region_config(path, environ={"REGION_TOKEN": "t0k"})
    assert s.region.name == "alatau" and s.region.limit_kw == 20000.0
    assert s.coordinator.id == "coord-a" and s.control_token == "t0k"
    assert s.coordinator.audit_db == tmp_path.resolve() / "audit/region.sqlite"
    assert s.coordinator.regive_slack_s == 10.0  # the default


def test_the_regive_slack_is_a_key_the_coordinator_gets(tmp_path: Path) -> None:
    (tmp_path / "audit").mkdir()
    path = tmp_path / "region.toml"
    path.write_text(GOOD.replace("interval_s = 5", "interval_s = 5\nregive_slack_s = 2.5"))
    settings = load_region_config(path, environ={"REGION_TOKEN": "t0k"})
    assert settings.coordinator.regive_slack_s == 2.5
    service = CoordinatorService(settings, ManualClock(1_000.0))
    try:
        assert service.node.regive_slack_s == 2.5
    finally:
        service.db.close()


@pytest.mark.parametrize(
    ("text", "env", "words"),
    [
        (
            GOOD.replace("limit_kw = 20000", "limit_kw = -1"),
            {"REGION_TOKEN": "x"},
            "region.limit_kw",
        ),
        (GOOD.replace('name = "alatau"', 'name = "a.b"'), {"REGION_TOKEN": "x"}, "region.name"),
        (GOOD.replace("lease_s = 30", "lease_s = 6"), {"REGION_TOKEN": "x"}, "lease_s"),
        (GOOD, {}, "coordinator.control_token_env"),
        (GOOD.replace("[region]", "[regoin]"), {"REGION_TOKEN": "x"}, "regoin"),
        (GOOD.replace("nats://", "http://"), {"REGION_TOKEN": "x"}, "region.nats_url"),
        (
            GOOD.replace("interval_s = 5", "interval_s = 5\nregive_slack_s = -1"),
            {"REGION_TOKEN": "x"},
            "coordinator.regive_slack_s",
        ),
    ],
)
def test_every_problem_names_its_key(
    tmp_path: Path, text: str, env: dict[str, str], words: str
) -> None:
    path = tmp_path / "region.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_region_config(path, environ=env)
    assert any(words in p for p in err.value.problems), err.value.problems


def test_the_coordinator_command_refuses_a_bad_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "region.toml"
    path.write_text("[region]\nname = 'x'\n")
    assert main(["coordinator", "--config", str(path)]) != 0
    assert "region.limit_kw" in capsys.readouterr().err


def test_a_site_without_region_answers_to_none() -> None:
    assert not RegionSiteSettings().enabled
    assert RegionSiteSettings(name="alatau").enabled


SITE: dict[str, Any] = {
    "site": {"name": "alatau-1"},
    "grid": {"contracted_limit_kw": 100.0, "failsafe_limit_kw": 50.0},
    "meters": [{"name": "grid", "profile": "x", "endpoint": "tcp://127.0.0.1:502", "role": "grid"}],
}


def test_a_site_region_table_loads_and_check_shows_it() -> None:
    s = settings_from_dict(
        {**SITE, "region": {"name": "alatau", "nats_url": "nats://10.0.0.5:4222"}},
        base_dir=Path("."),
        check_profiles=False,
    )
    assert s.region.enabled and s.region.offer_interval_s == 5.0
    assert "region: region alatau on nats://10.0.0.5:4222, offer every 5 s" in summary(s)
    plain = settings_from_dict(SITE, base_dir=Path("."), check_profiles=False)
    assert "region:" not in summary(plain)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"name": "a b"}, "region.name"),
        ({"name": "alatau", "offer_interval_s": 0}, "region.offer_interval_s"),
        ({"name": "alatau", "nats_url": "mqtt://x"}, "region.nats_url"),
        ({"name": "alatau", "lease": 3}, "region.lease"),
    ],
)
def test_site_region_problems_name_their_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings_from_dict({**SITE, "region": table}, base_dir=Path("."), check_profiles=False)
    assert key in str(err.value)
