"""`minerd status|quota --token-file` takes the tokens file the simulator writes (one
`role = "token"` line per role), picks a role, and never prints a token when it fails."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from ops_site import TOKENS, OpsSite, ServedSite
from servers import free_port

from minerd.cli import quota_cli

ALL_TOKENS = tuple(TOKENS.values())


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServedSite]:
    site = OpsSite(tmp_path / "minerd.sqlite")
    with ServedSite(site, free_port()) as srv:
        yield srv
    site.close()


def sim_tokens_file(path: Path) -> Path:
    """The layout minerd.sim.config.write_site_config writes."""
    lines = ["# Plain API bearer tokens for this simulated site. Keep private."]
    lines += [f'{role} = "{TOKENS[role]}"' for role in ("grid", "operator", "viewer")]
    path.write_text("\n".join(lines) + "\n")
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = quota_cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


def assert_no_token(text: str) -> None:
    for token in (*ALL_TOKENS, "plain-secret-token"):
        assert token not in text


def test_status_with_the_simulators_tokens_file(
    served: ServedSite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tokens = sim_tokens_file(tmp_path / "site.toml.tokens")
    code, out = cli(capsys, "status", "--url", served.url, "--token-file", str(tokens))
    assert code == 0, out
    assert out.startswith("site ops-site at ")
    assert "in force      60.0 kW (quota q-now)" in out
    code, out = cli(
        capsys, "status", "--url", served.url, "--token-file", str(tokens), "--role", "viewer"
    )
    assert code == 0 and "site ops-site" in out
    # quota commands default to the grid token: a grid call is admitted
    code, out = cli(capsys, "quota", "--url", served.url, "--token-file", str(tokens), "show")
    assert code == 0 and "q-now" in out
    assert_no_token(out)


def test_a_single_token_file_still_works(
    served: ServedSite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = tmp_path / "operator.token"
    one.write_text(TOKENS["operator"] + "\n")
    code, out = cli(capsys, "status", "--url", served.url, "--token-file", str(one))
    assert code == 0 and "site ops-site" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('grid = "ops-grid"\nviewer = "ops-viewer-secret"\n', "has no operator token"),
        ("ops-operator-secret\nops-viewer-secret\n", 'expected `role = "token"` lines'),
        ("# only a comment\n\n", "holds no token"),
        ('operator = "ops operator secret"\n', "not one word of printable characters"),
        ("plain-secret-token with-a-space\n", "not one word of printable characters"),
    ],
)
def test_token_file_errors_name_the_file_never_a_token(
    served: ServedSite,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
    message: str,
) -> None:
    path = tmp_path / "bad.tokens"
    path.write_text(content)
    code, out = cli(capsys, "status", "--url", served.url, "--token-file", str(path))
    assert code == quota_cli.EXIT_USAGE
    assert message in out and str(path) in out
    assert "Traceback" not in out
    assert_no_token(out)
    assert "ops operator secret" not in out


def test_refused_and_unreachable_calls_print_no_token(
    served: ServedSite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tokens = sim_tokens_file(tmp_path / "site.toml.tokens")
    # a viewer may not set a quota: the refusal names no token
    code, out = cli(
        capsys,
        "quota",
        "--url",
        served.url,
        "--token-file",
        str(tokens),
        "--role",
        "viewer",
        "set",
        "50",
    )
    assert code == quota_cli.EXIT_API and "HTTP 403" in out
    assert_no_token(out)
    code, out = cli(
        capsys, "status", "--url", f"http://127.0.0.1:{free_port()}", "--token-file", str(tokens)
    )
    assert code == quota_cli.EXIT_API and "cannot reach" in out
    assert_no_token(out)
