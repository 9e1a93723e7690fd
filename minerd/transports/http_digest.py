"""A small HTTP/1.1 client with Digest authentication (RFC 7616 / RFC 2617, qop=auth).

Made for rig web APIs such as stock Antminer's CGI (realm "antMiner Configuration"): few
requests, JSON bodies, one connection per request (`Connection: close`), so nothing is pooled
and nothing leaks between rigs. The challenge (nonce) is kept and reused with an increasing
nonce count; a 401 on a reused nonce (expired, stale) fetches a fresh one and retries once; a
401 on a fresh nonce means the login is wrong and raises CommandRejected (code 401).

Errors (minerd.errors, naming the device and "host:port/path"): DeviceUnreachable (refused,
reset), DeviceTimeout (no reply in time), ProtocolError (not HTTP, not JSON), CommandRejected
(an HTTP status other than 200). The password is never put in an error or a repr.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from minerd.errors import (
    CommandRejected,
    DeviceError,
    DeviceUnreachable,
    ProtocolError,
)
from minerd.transports.deadline import device_deadline

__all__ = [
    "Challenge",
    "DigestClient",
    "HttpReply",
    "digest_authorization",
    "digest_supported",
    "parse_challenge",
]

MAX_BODY_BYTES = 1_048_576
_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


@dataclass(frozen=True)
class Challenge:
    """One `WWW-Authenticate: Digest ...` challenge."""

    realm: str
    nonce: str
    qop: str = ""  # "auth" when offered, "" for RFC 2069 servers
    opaque: str | None = None
    algorithm: str = "MD5"  # MD5, MD5-sess, SHA-256, SHA-256-sess
    stale: bool = False


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes = field(repr=False)

    def json(self) -> object:
        return json.loads(self.body.decode("utf-8", errors="replace"))


def parse_challenge(header: str) -> Challenge | None:
    """The Digest challenge in a WWW-Authenticate value, None when it offers none."""
    text = header.strip()
    if not text.lower().startswith("digest"):
        return None
    params = {
        m[1].lower(): (m[2].replace('\\"', '"') if m[2] is not None else m[3])
        for m in _PARAM.finditer(text[len("digest") :])
    }
    if "nonce" not in params:
        return None
    qops = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
    algorithm = params.get("algorithm", "MD5").upper()
    return Challenge(
        realm=params.get("realm", ""),
        nonce=params["nonce"],
        qop="auth" if "auth" in qops else "",
        opaque=params.get("opaque"),
        algorithm=algorithm,
        stale=params.get("stale", "").lower() == "true",
    )


def digest_supported(challenge: Challenge) -> bool:
    """Whether digest_authorization can answer this challenge's algorithm."""
    return challenge.algorithm.removesuffix("-SESS") in _HASHES


def digest_authorization(
    challenge: Challenge,
    method: str,
    uri: str,
    username: str,
    password: str,
    nc: int,
    cnonce: str,
) -> str:
    """The `Authorization` header value answering `challenge` (RFC 7616 section 3.4)."""
    base = challenge.algorithm.removesuffix("-SESS")
    hasher = _HASHES.get(base)
    if hasher is None:
        raise ValueError(f"digest algorithm {challenge.algorithm} not supported")

    def h(text: str) -> str:
        return hasher(text.encode()).hexdigest()

    ha1 = h(f"{username}:{challenge.realm}:{password}")
    if challenge.algorithm.endswith("-SESS"):
        ha1 = h(f"{ha1}:{challenge.nonce}:{cnonce}")
    ha2 = h(f"{method}:{uri}")
    nc_text = f"{nc:08x}"
    if challenge.qop:
        response = h(f"{ha1}:{challenge.nonce}:{nc_text}:{cnonce}:{challenge.qop}:{ha2}")
    else:
        response = h(f"{ha1}:{challenge.nonce}:{ha2}")
    parts = [
        f'username="{username}"',
        f'realm="{challenge.realm}"',
        f'nonce="{challenge.nonce}"',
        f'uri="{uri}"',
        f'response="{response}"',
        f"algorithm={challenge.algorithm}",
    ]
    if challenge.qop:
        parts += [f"qop={challenge.qop}", f"nc={nc_text}", f'cnonce="{cnonce}"']
    if challenge.opaque is not None:
        parts.append(f'opaque="{challenge.opaque}"')
    return "Digest " + ", ".join(parts)


class DigestClient:
    """HTTP requests to one rig's web server with a kept Digest challenge."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        device: str,
        username: str,
        password: str,
        timeout_s: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.device = device
        self.username = username
        self._password = password
        self.timeout_s = timeout_s
        self._challenge: Challenge | None = None
        self._nc = 0
        self.challenges = 0  # fresh challenges fetched (tests see the nonce reused)

    def __repr__(self) -> str:
        return f"<DigestClient {self.device} {self.host}:{self.port} user={self.username!r}>"

    def endpoint(self, path: str) -> str:
        return f"{self.host}:{self.port}{path}"

    async def get_json(self, path: str, timeout_s: float | None = None) -> object:
        reply = await self.request("GET", path, timeout_s=timeout_s)
        return self._json(reply, path)

    async def post_json(
        self, path: str, body: Mapping[str, object], timeout_s: float | None = None
    ) -> object:
        data = json.dumps(body, separators=(",", ":")).encode()
        reply = await self.request("POST", path, data, timeout_s=timeout_s)
        return self._json(reply, path)

    async def request(
        self, method: str, path: str, body: bytes = b"", timeout_s: float | None = None
    ) -> HttpReply:
        """One authenticated request; the whole exchange (retry included) under one timeout."""
        limit_s = self.timeout_s if timeout_s is None else timeout_s
        async with device_deadline(self.device, self.endpoint(path), limit_s):
            return await self._authenticated(method, path, body)

    async def _authenticated(self, method: str, path: str, body: bytes) -> HttpReply:
        reply = await self._exchange(method, path, body, self._authorization(method, path))
        if reply.status == 401:
            challenge = parse_challenge(reply.headers.get("www-authenticate", ""))
            if challenge is None:
                raise self._rejected(path, reply, "401 without a Digest challenge")
            if not digest_supported(challenge):
                # a DeviceError, not a ValueError: a caller shedding many rigs counts it
                raise self._rejected(
                    path, reply, f"digest algorithm {challenge.algorithm} not supported"
                )
            # First contact, or our kept nonce expired: answer the new challenge once.
            self._challenge, self._nc = challenge, 0
            self.challenges += 1
            reply = await self._exchange(method, path, body, self._authorization(method, path))
            if reply.status == 401:
                self._challenge = None
                raise self._rejected(
                    path, reply, f"login refused for user {self.username!r} (digest auth)"
                )
        if reply.status != 200:
            raise self._rejected(path, reply, f"HTTP {reply.status}")
        return reply

    def _authorization(self, method: str, path: str) -> str | None:
        if self._challenge is None:
            return None
        self._nc += 1
        return digest_authorization(
            self._challenge,
            method,
            path,
            self.username,
            self._password,
            self._nc,
            os.urandom(8).hex(),
        )

    def _rejected(self, path: str, reply: HttpReply, message: str) -> CommandRejected:
        return CommandRejected(self.device, self.endpoint(path), message, code=reply.status)

    def _json(self, reply: HttpReply, path: str) -> object:
        try:
            return reply.json()
        except ValueError as exc:
            raise ProtocolError(self.device, self.endpoint(path), f"not JSON: {exc}") from None

    async def _exchange(
        self, method: str, path: str, body: bytes, authorization: str | None
    ) -> HttpReply:
        endpoint = self.endpoint(path)
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        except OSError as exc:
            raise DeviceUnreachable(self.device, endpoint, f"connect: {exc}") from None
        try:
            head = [
                f"{method} {path} HTTP/1.1",
                f"Host: {self.host}",
                "Connection: close",
                "Accept: application/json",
            ]
            if authorization is not None:
                head.append(f"Authorization: {authorization}")
            if body or method == "POST":
                head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            await writer.drain()
            return await _read_reply(reader, self.device, endpoint)
        except DeviceError:
            raise
        except (ConnectionError, OSError) as exc:
            raise DeviceUnreachable(self.device, endpoint, f"connection lost: {exc}") from None
        finally:
            writer.close()


async def _read_reply(reader: asyncio.StreamReader, device: str, endpoint: str) -> HttpReply:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise DeviceUnreachable(device, endpoint, "closed before any reply") from None
        raise ProtocolError(device, endpoint, "reply headers cut short") from None
    except asyncio.LimitOverrunError:
        raise ProtocolError(device, endpoint, "reply headers too long") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ProtocolError(device, endpoint, f"not an HTTP reply: {lines[0][:60]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader, device, endpoint)
    elif "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise ProtocolError(device, endpoint, "bad Content-Length") from None
        if length > MAX_BODY_BYTES:
            raise ProtocolError(device, endpoint, f"reply of {length} bytes is too large")
        try:
            body = await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            raise ProtocolError(device, endpoint, "reply body cut short") from None
    else:
        # No length (Connection: close): the body ends where the server closes. One read()
        # returns only what has arrived so far, so read to EOF, bounded.
        body = await reader.read(MAX_BODY_BYTES + 1)
        while body and len(body) <= MAX_BODY_BYTES:
            more = await reader.read(MAX_BODY_BYTES + 1 - len(body))
            if not more:
                break
            body += more
        if len(body) > MAX_BODY_BYTES:
            raise ProtocolError(device, endpoint, "reply too large")
    return HttpReply(int(parts[1]), headers, body)


async def _read_chunked(reader: asyncio.StreamReader, device: str, endpoint: str) -> bytes:
    out = bytearray()
    try:
        while True:
            size_line = await reader.readline()
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                await reader.readline()
                return bytes(out)
            out += await reader.readexactly(size)
            await reader.readexactly(2)
            if len(out) > MAX_BODY_BYTES:
                raise ProtocolError(device, endpoint, "reply too large")
    except (ValueError, asyncio.IncompleteReadError):
        raise ProtocolError(device, endpoint, "bad chunked reply") from None
