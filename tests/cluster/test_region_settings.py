"""region.toml and a site's [region] table: every problem names its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from minerd.cli.entry import main
from minerd.errors import ConfigError
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
