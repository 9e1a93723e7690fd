"""The HTTP side of `minerd quota` and `minerd status`: the token (flag, file or environment),
one request to the API, and its refusals as CliError without a token in any message.

Standard library only, so the thin clients run on a laptop without the daemon's packages.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import ssl
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8080"
EXIT_OK, EXIT_API, EXIT_USAGE = 0, 1, 2
ROLES = ("grid", "operator", "viewer")
_KEYED_LINE = re.compile(r"([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(.*)")

JsonObj = dict[str, object]


class CliError(Exception):
    """Something the user must fix or know; printed without a traceback."""

    def __init__(self, message: str, code: int = EXIT_API) -> None:
        self.code = code
        super().__init__(message)


class ApiRefused(CliError):
    """The API answered with an error status; `problems` are its (field, error) pairs, e.g.
    ("line 3.interval_start", "not the start of a 3600 s interval in Asia/Almaty")."""

    def __init__(
        self, message: str, status: int, problems: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self.status = status
        self.problems = problems
        super().__init__(message)


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=os.environ.get("MINERD_URL", DEFAULT_URL), help="API base URL")
    tok = p.add_mutually_exclusive_group()
    tok.add_argument("--token", help="API token (visible in the process list: prefer --token-file)")
    tok.add_argument(
        "--token-file",
        type=Path,
        help='file holding the API token, or one `role = "token"` line per role',
    )
    p.add_argument(
        "--role",
        choices=ROLES,
        help="which token of a several-role token file (default operator for status, "
        "grid for quota)",
    )
    p.add_argument("--cacert", type=Path, help="CA bundle to verify an https URL")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    p.add_argument("--json", action="store_true", help="print the API's JSON answer")


# ---------------------------------------------------------------- token


def _token(args: argparse.Namespace) -> str:
    if args.token:
        return _checked(str(args.token), "--token")
    if args.token_file is not None:
        role = args.role or ("operator" if args.command == "status" else "grid")
        return read_token_file(Path(args.token_file), role)
    env = os.environ.get("MINERD_TOKEN", "")
    if env:
        return _checked(env.strip(), "MINERD_TOKEN")
    raise CliError("no token: pass --token-file FILE, --token or set MINERD_TOKEN", EXIT_USAGE)


def read_token_file(path: Path, role: str) -> str:
    """The token in `path`: its only line, or the `role = "token"` line of that role.
    Errors name the file, line and roles, never a token."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read token file {path}: {exc.strerror}", EXIT_USAGE) from None
    except UnicodeDecodeError:
        raise CliError(f"token file {path}: not UTF-8 text", EXIT_USAGE) from None
    lines = [
        (n, line.strip())
        for n, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        raise CliError(f"token file {path} holds no token", EXIT_USAGE)
    by_role: dict[str, str] = {}
    for n, line in lines:
        m = _KEYED_LINE.fullmatch(line)
        if m is None or m.group(1).lower() not in ROLES:
            if len(lines) == 1:
                return _checked(line, str(path))  # a file holding just the token
            raise CliError(
                f'token file {path}:{n}: expected `role = "token"` lines '
                f"(roles {', '.join(ROLES)}) or a single token",
                EXIT_USAGE,
            )
        by_role[m.group(1).lower()] = _unquote(m.group(2).strip())
    if role not in by_role:
        raise CliError(
            f"token file {path} has no {role} token (it has {', '.join(sorted(by_role))}): "
            "choose one with --role",
            EXIT_USAGE,
        )
    return _checked(by_role[role], f"{path} ({role})")


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _checked(token: str, where: str) -> str:
    """A bearer token is one word of printable ASCII; anything else would end up in an
    HTTP library's error message, token and all."""
    if not token or not all(33 <= ord(c) <= 126 for c in token):
        raise CliError(
            f"the token from {where} is not one word of printable characters", EXIT_USAGE
        )
    return token


def redact(text: str, args: argparse.Namespace) -> str:
    """`text` with every token the user could have given replaced (last line of defence)."""
    secrets: list[str] = []
    if getattr(args, "token", None):
        secrets.append(str(args.token))
    if os.environ.get("MINERD_TOKEN"):
        secrets.append(os.environ["MINERD_TOKEN"].strip())
    token_file = getattr(args, "token_file", None)
    if token_file is not None:
        try:
            for line in Path(token_file).read_text(encoding="utf-8").splitlines():
                m = _KEYED_LINE.fullmatch(line.strip())
                secrets.append(_unquote(m.group(2).strip()) if m else line.strip())
        except (OSError, UnicodeDecodeError):
            pass
    for secret in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "<token>")
    return text


# ---------------------------------------------------------------- HTTP


def request(
    args: argparse.Namespace,
    method: str,
    path: str,
    data: bytes | None = None,
    *,
    content_type: str = "application/json",
    accept: str = "application/json",
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """One request; the status and body of a 2xx answer, ApiRefused for any other."""
    url = str(args.url).rstrip("/") + path
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {_token(args)}")
    req.add_header("Accept", accept)
    if data is not None:
        req.add_header("Content-Type", content_type)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    ctx = ssl.create_default_context(cafile=str(args.cacert)) if args.cacert else None
    try:
        with urllib.request.urlopen(req, timeout=args.timeout, context=ctx) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:
        payload = parse_json(exc.read())
        message = str(payload.get("error", exc.reason))
        raise ApiRefused(
            f"{method} {path}: HTTP {exc.code}: {message}", exc.code, _problems(payload)
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        raise CliError(f"cannot reach {url}: {exc}") from None
    except ValueError:
        # http.client quotes a refused header value, which would be the token.
        raise CliError(f"{method} {path}: the request could not be built") from None


def call(
    args: argparse.Namespace,
    method: str,
    path: str,
    body: object | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, JsonObj]:
    """A JSON request and its JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    status, raw = request(args, method, path, data, headers=headers)
    return status, parse_json(raw)


def _problems(payload: JsonObj) -> tuple[tuple[str, str], ...]:
    items = payload.get("problems")
    out = []
    for p in items if isinstance(items, list) else []:
        if isinstance(p, dict):
            out.append((str(p.get("field", "")), str(p.get("error", ""))))
    return tuple(out)


def parse_json(raw: bytes) -> JsonObj:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {"error": raw[:200].decode(errors="replace")}
    return value if isinstance(value, dict) else {"value": value}
