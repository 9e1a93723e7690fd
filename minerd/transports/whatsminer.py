"""Whatsminer (btminer) control clients: API v2 privileged commands on 4028 and API v3 on 4433.

v2 (firmware-apis.md 5.1): `get_token` gives {time, salt, newsalt}; key = md5-crypt hash of
the admin password with `salt`, AES-256 key = sha256(key), sign = md5-crypt hash of key+time
with `newsalt`. A privileged request is {"enc":1,"data":base64(AES-256-ECB(zero-padded JSON
with "token": sign))}; the reply is {"enc": base64(...)} under the same key, or a plain error.
A token lives 30 min on the rig; the client reuses it and renews it five minutes early, or at
once when the rig says 135 (token error: rebooted rig, expired, or a wrong password).

v3 (5.2): 4-byte little-endian length + JSON both ways; `set.*` carry ts, account and token =
first 8 characters of base64(sha256(cmd + password + salt + ts)), salt from get.device.info.

Errors are minerd.errors naming the rig and "host:port"; the password never appears in one.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from minerd.errors import CommandRejected, DeviceUnreachable, ProtocolError
from minerd.transports.deadline import device_deadline
from minerd.transports.md5crypt import md5_crypt_hash

__all__ = [
    "CODE_OK",
    "CODE_TOKEN_ERROR",
    "CODE_TOKEN_OVER_MAX",
    "CODE_WRITE_DENIED",
    "TOKEN_LIFETIME_S",
    "V2Client",
    "V2Token",
    "V3Client",
    "aes_decrypt",
    "aes_encrypt",
    "v2_token",
    "v3_token",
]

CODE_OK = 131
CODE_TOKEN_OK = 134
CODE_TOKEN_ERROR = 135
CODE_TOKEN_OVER_MAX = 136
CODE_INVALID = 14
CODE_WRITE_DENIED = 45
TOKEN_LIFETIME_S = 30 * 60.0
_RENEW_EARLY_S = 5 * 60.0  # never send a token in its last minutes on the rig
MAX_REPLY_BYTES = 1024 * 1024
Reply = dict[str, object]


@dataclass(frozen=True)
class V2Token:
    """One privileged-API token: the sign sent in each request and the AES key."""

    sign: str = field(repr=False)
    aes_key: bytes = field(repr=False)
    issued_s: float = 0.0


def v2_token(password: str, time: str, salt: str, newsalt: str, issued_s: float = 0.0) -> V2Token:
    key = md5_crypt_hash(password, salt)
    sign = md5_crypt_hash(key + time, newsalt)
    return V2Token(sign=sign, aes_key=hashlib.sha256(key.encode()).digest(), issued_s=issued_s)


def aes_encrypt(key: bytes, obj: Mapping[str, object]) -> str:
    """base64(AES-256-ECB(JSON zero-padded to 16 bytes)), as btminer expects."""
    plain = json.dumps(obj, separators=(",", ":")).encode()
    plain += b"\x00" * (-len(plain) % 16)
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return base64.b64encode(enc.update(plain) + enc.finalize()).decode()


def aes_decrypt(key: bytes, data: str) -> object:
    """The JSON inside base64(AES-256-ECB(...)); ValueError if it is not that under this key."""
    raw = base64.b64decode(data)
    if not raw or len(raw) % 16:
        raise ValueError("ciphertext is not a whole number of AES blocks")
    dec = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    plain = (dec.update(raw) + dec.finalize()).rstrip(b"\x00")
    return json.loads(plain)


def v3_token(cmd: str, password: str, salt: str, ts: int) -> str:
    digest = hashlib.sha256(f"{cmd}{password}{salt}{ts}".encode()).digest()
    return base64.b64encode(digest).decode()[:8]


async def _exchange(
    device: str, endpoint: str, host: str, port: int, payload: bytes, what: str, timeout_s: float
) -> bytes:
    """One request on its own connection; the reply read to EOF (v2) or by length (v3)."""
    writer: asyncio.StreamWriter | None = None
    try:
        async with device_deadline(device, endpoint, timeout_s, what):
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError as exc:
                why = exc.strerror or type(exc).__name__
                raise DeviceUnreachable(device, endpoint, f"{what}: {why}") from None
            writer.write(payload)
            await writer.drain()
            if payload[:1] == b"{":
                data = await reader.read(MAX_REPLY_BYTES)
                while data and not data.endswith(b"\x00"):
                    if len(data) > MAX_REPLY_BYTES:  # a rig that never ends its reply
                        raise ProtocolError(device, endpoint, f"{what}: reply over 1 MiB")
                    more = await reader.read(MAX_REPLY_BYTES)
                    if not more:
                        break
                    data += more
                return data.rstrip(b"\x00")
            head = await reader.readexactly(4)
            (size,) = struct.unpack("<I", head)
            if size > MAX_REPLY_BYTES:
                raise ProtocolError(device, endpoint, f"{what}: frame of {size} bytes")
            return await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise ProtocolError(device, endpoint, f"{what}: reply cut short") from None
    except (ConnectionError, OSError) as exc:
        raise DeviceUnreachable(device, endpoint, f"{what}: {type(exc).__name__}") from None
    finally:
        if writer is not None:
            writer.transport.abort()


def _json(device: str, endpoint: str, what: str, data: bytes) -> Reply:
    try:
        obj = json.loads(data)
    except ValueError:
        raise ProtocolError(device, endpoint, f"{what}: reply is not JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolError(device, endpoint, f"{what}: reply is {type(obj).__name__}")
    return obj


def _status(reply: Mapping[str, object]) -> tuple[str, int, object]:
    """(letter, code, Msg) of a btminer reply whose STATUS is a string or a cgminer list."""
    head: object = reply
    status = reply.get("STATUS")
    if isinstance(status, list) and status and isinstance(status[0], dict):
        head = status[0]
        letter = head.get("STATUS", "")
    else:
        letter = status
    assert isinstance(head, Mapping)
    code = head.get("Code", 0)
    return (
        letter if isinstance(letter, str) else "",
        code if isinstance(code, int) else 0,
        head.get("Msg", ""),
    )


class _Link:
    """One rig's API port: where it is, the admin password, and one request-reply over it."""

    def __init__(self, device: str, host: str, port: int, password: str, timeout_s: float) -> None:
        self.device = device
        self.host = host
        self.port = port
        self.endpoint = f"{host}:{port}"
        self._password = password
        self.timeout_s = timeout_s

    async def _roundtrip(self, payload: bytes, what: str, timeout_s: float | None = None) -> Reply:
        data = await _exchange(
            self.device,
            self.endpoint,
            self.host,
            self.port,
            payload,
            what,
            self.timeout_s if timeout_s is None else timeout_s,
        )
        return _json(self.device, self.endpoint, what, data)


class V2Client(_Link):
    """Privileged API v2 of one rig: one token reused until near its end, renewed on 135."""

    def __init__(
        self,
        device: str,
        host: str,
        port: int,
        password: str,
        monotonic_s: Callable[[], float],
        timeout_s: float,
    ) -> None:
        super().__init__(device, host, port, password, timeout_s)
        self._monotonic_s = monotonic_s
        self._token: V2Token | None = None
        self.tokens_fetched = 0

    async def _request(self, payload: Mapping[str, object], what: str) -> Reply:
        return await self._roundtrip(json.dumps(payload, separators=(",", ":")).encode(), what)

    async def token(self) -> V2Token:
        now = self._monotonic_s()
        tok = self._token
        if tok is not None and now - tok.issued_s < TOKEN_LIFETIME_S - _RENEW_EARLY_S:
            return tok
        reply = await self._request({"cmd": "get_token"}, "get_token")
        letter, code, msg = _status(reply)
        if letter != "S" or not isinstance(msg, Mapping):
            raise CommandRejected(
                self.device, self.endpoint, f"get_token: {msg or 'refused'} (code {code})", code
            )
        try:
            tok = v2_token(
                self._password, str(msg["time"]), str(msg["salt"]), str(msg["newsalt"]), now
            )
        except KeyError as exc:
            raise ProtocolError(self.device, self.endpoint, f"get_token: no {exc}") from None
        self._token = tok
        self.tokens_fetched += 1
        return tok

    async def command(self, cmd: str, **params: object) -> Reply:
        """Send one privileged command; its decrypted reply (Code 131). Retries once on 135."""
        for attempt in (0, 1):
            tok = await self.token()
            frame = {
                "enc": 1,
                "data": aes_encrypt(tok.aes_key, {"cmd": cmd, **params, "token": tok.sign}),
            }
            reply = await self._request(frame, cmd)
            enc = reply.get("enc")
            if isinstance(enc, str):
                try:
                    plain = aes_decrypt(tok.aes_key, enc)
                except ValueError:
                    raise ProtocolError(
                        self.device, self.endpoint, f"{cmd}: undecryptable reply"
                    ) from None
                if not isinstance(plain, dict):
                    raise ProtocolError(
                        self.device, self.endpoint, f"{cmd}: reply is not an object"
                    )
                reply = plain
            letter, code, msg = _status(reply)
            if letter == "S" and code in (CODE_OK, 0):
                return reply
            if code == CODE_TOKEN_ERROR and attempt == 0:
                self._token = None  # rig rebooted or forgot it: one fresh token, then give up
                continue
            raise CommandRejected(self.device, self.endpoint, _explain(cmd, code, msg), code)
        raise AssertionError("unreachable")


def _explain(cmd: str, code: int, msg: object) -> str:
    hint = {
        CODE_TOKEN_ERROR: "token refused: wrong admin password?",
        CODE_TOKEN_OVER_MAX: "too many tokens for this client on the rig",
        CODE_WRITE_DENIED: "write API not enabled (WhatsMinerTool) or default password unchanged",
        CODE_INVALID: "invalid command or data",
    }.get(code, "")
    text = f"{cmd}: {msg or 'refused'} (code {code})"
    return f"{text}: {hint}" if hint else text


class V3Client(_Link):
    """API v3 of one rig (TCP 4433): salt fetched once and refetched after an auth error."""

    def __init__(
        self,
        device: str,
        host: str,
        port: int,
        password: str,
        account: str,
        wall_s: Callable[[], float],
        timeout_s: float,
    ) -> None:
        super().__init__(device, host, port, password, timeout_s)
        self.account = account
        self._wall_s = wall_s
        self._salt: str | None = None

    async def request(
        self, cmd: str, param: object = None, *, timeout_s: float | None = None
    ) -> Reply:
        body: dict[str, object] = {"cmd": cmd, "param": param}
        if cmd.startswith("set."):
            salt = await self.salt()
            ts = int(self._wall_s())
            body.update(ts=ts, account=self.account, token=v3_token(cmd, self._password, salt, ts))
        raw = json.dumps(body, separators=(",", ":")).encode()
        reply = await self._roundtrip(struct.pack("<I", len(raw)) + raw, cmd, timeout_s)
        code = reply.get("code")
        if code != 0:
            if cmd.startswith("set."):
                self._salt = None  # a new salt after a reboot is the usual cause
            msg = reply.get("msg", "refused")
            raise CommandRejected(
                self.device,
                self.endpoint,
                f"{cmd}: {msg} (code {code})",
                code if isinstance(code, int) else 0,
            )
        return reply

    async def salt(self, *, timeout_s: float | None = None) -> str:
        if self._salt is None:
            reply = await self.request("get.device.info", "salt", timeout_s=timeout_s)
            msg = reply.get("msg")
            salt = msg.get("salt") if isinstance(msg, Mapping) else None
            if not isinstance(salt, str):
                raise ProtocolError(self.device, self.endpoint, "get.device.info: no salt")
            self._salt = salt
        return self._salt
