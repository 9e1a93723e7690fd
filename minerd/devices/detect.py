"""Tell a rig's firmware family and model from what it answers (firmware-apis.md 1.4, 2, 3.1,
4, 5.1/5.2, 6.1).

The 4028 `version` reply comes first (the caller has it); it names LuxOS (`LUXminer`),
Braiins (`BOSminer`/`BOSer`), Whatsminer (`btminer`) and Vnish (a "(vnish x.y.z)" Type suffix)
outright. A plain cgminer/bmminer answer is stock Antminer only when the web port answers a
401 whose Digest realm is "antMiner Configuration"; a Vnish rig without the suffix shows in
`/api/v1/info`. Braiins OS+ needs its gRPC port open (a TCP connect, no gRPC call): legacy
BOSminer without it can only be read. Anything else is cgminer, read only.

Every probe runs under the caller's short timeout; a probe that fails or hangs only makes
the answer less specific (it says why in `note`), it never raises.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from minerd.devices.rig_cgminer import model_matches, normalise_model_type, profile_for_model_type
from minerd.errors import DeviceError, ProfileError
from minerd.model import RigProtocol
from minerd.profiles.loader import RIGS_SUBDIR, list_profiles, load_rig_model
from minerd.transports.cgminer import CgminerClient, CgminerReply
from minerd.transports.http_digest import parse_challenge
from minerd.transports.whatsminer import V3Client

__all__ = ["DETECTABLE", "Detection", "FamilyPorts", "detect_family", "profile_for"]

# The families discover can tell apart, in the order its report lists them.
DETECTABLE = (
    RigProtocol.LUXOS,
    RigProtocol.STOCK,
    RigProtocol.VNISH,
    RigProtocol.WHATSMINER,
    RigProtocol.BRAIINS,
    RigProtocol.CGMINER,
)
# Stock firmware's Digest realm is "antMiner Configuration"; pyasic matches the prefix.
STOCK_REALM_PREFIX = "antminer"
_MAX_WEB_BYTES = 65_536


@dataclass(frozen=True)
class FamilyPorts:
    """The ports a family's second API listens on (the firmware defaults)."""

    web_port: int = 80  # stock CGI, Vnish REST
    api_port: int = 4433  # Whatsminer API v3
    grpc_port: int = 50051  # Braiins OS+ gRPC


@dataclass(frozen=True)
class Detection:
    family: RigProtocol
    model_type: str  # normalised model ("Antminer S19j Pro"), "" when the rig names none
    profile: str | None  # drivers/rigs profile for the model, None when none fits
    firmware: str  # what the firmware calls itself ("LUXminer 2025.4.8", "vnish 1.2.6")
    note: str = ""  # why the family is less specific than it might be (a probe failed)


@functools.lru_cache(maxsize=256)
def profile_for(model_type: str, profiles_dir: Path | None = None) -> str | None:
    """The profile for a model: the site's own (`[site] profiles_dir`, searched first, as the
    config does), else a shipped one; looked up once per model (a scan sees few models)."""
    if profiles_dir is not None:
        folder = profiles_dir / RIGS_SUBDIR
        for name in list_profiles(folder):
            try:
                if model_matches(model_type, load_rig_model(name, folder)):
                    return name
            except ProfileError:
                continue  # `minerd check` names a broken profile; discover only skips it
    return profile_for_model_type(model_type)


def _first(reply: Mapping[str, object], section: str) -> Mapping[str, object]:
    items = reply.get(section)
    if isinstance(items, list) and items and isinstance(items[0], dict):
        return items[0]
    return {}


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _type_suffix(raw: str) -> str:
    """What a Type's parenthesis names: "Antminer S9 (vnish 3.8.6)" -> "vnish 3.8.6"."""
    return raw.split(" (", 1)[1].split(")", 1)[0].strip() if " (" in raw else ""


def _whatsminer_model(code: str) -> str:
    """API v3 `miner.type` "M60S_VK40" (board version after '_' or '.') -> "Whatsminer M60S"."""
    model = re.split(r"[_.]", code, maxsplit=1)[0].strip()
    return f"Whatsminer {model}" if model and not model.lower().startswith("whatsminer") else model


async def _cgminer(host: str, port: int, command: str, timeout_s: float) -> CgminerReply | None:
    client = CgminerClient(host, port, timeout_s=timeout_s, connect_timeout_s=timeout_s)
    try:
        return await client.command(command)
    except DeviceError:
        return None


async def _tcp_open(host: str, port: int, timeout_s: float) -> bool:
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout_s):
            _reader, writer = await asyncio.open_connection(host, port)
        return True
    except (OSError, TimeoutError):
        return False
    finally:
        if writer is not None:
            writer.transport.abort()


@dataclass(frozen=True)
class _WebAnswer:
    status: int
    realm: str  # the Digest realm of a 401, case-folded
    body: bytes


def _complete(data: bytes) -> bool:
    """Enough of a reply: the headers of anything but a 200, or a 200's Content-Length body."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    lines = head.decode("latin-1").split("\r\n")
    if " 200" not in lines[0]:
        return True  # the status and a 401's challenge are all the probe reads
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length" and value.strip().isdigit():
            return len(body) >= int(value.strip())
    return False


async def _web_get(host: str, port: int, path: str, timeout_s: float) -> _WebAnswer | str:
    """One unauthenticated GET (Connection: close): status, realm and at most 64 KiB of body,
    or why there is none ("" when nothing listens: a plain cgminer rig has no web server)."""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
                "Accept: application/json\r\n\r\n".encode()
            )
            await writer.drain()
            data = b""
            # Up to EOF, or less: a server that keeps the connection open despite
            # `Connection: close` must not turn into a timeout.
            while len(data) < _MAX_WEB_BYTES and not _complete(data):
                more = await reader.read(_MAX_WEB_BYTES)
                if not more:
                    break
                data += more
    except TimeoutError:
        return f"web port {port} did not answer within {timeout_s:g}s"
    except ConnectionRefusedError:
        return ""
    except OSError as exc:
        return f"web port {port}: {exc.strerror or type(exc).__name__}"
    finally:
        if writer is not None:
            writer.transport.abort()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        return f"web port {port} does not answer HTTP"
    realm = ""
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "www-authenticate":
            challenge = parse_challenge(value.strip())
            if challenge is not None:
                realm = challenge.realm.casefold()
    return _WebAnswer(int(parts[1]), realm, body)


def _vnish_info(answer: _WebAnswer) -> tuple[str, str] | None:
    """(model, "vnish x.y.z") from a Vnish `/api/v1/info`, None when it is not one."""
    if answer.status != 200:
        return None
    text = answer.body.decode("utf-8", errors="replace")
    try:
        # raw_decode: a chunked body's trailing size line after the object is ignored
        info = json.JSONDecoder().raw_decode(text[text.find("{") :])[0] if "{" in text else None
    except ValueError:
        info = None
    if isinstance(info, dict):
        name = _text(info.get("fw_name"))
        if "vnish" in name.lower() or "anthill" in name.lower():
            version = _text(info.get("fw_version"))
            return normalise_model_type(info.get("miner")), f"vnish {version}".strip()
    if "anthillos" in text.lower():
        return "", "vnish"
    return None


async def _stats_model(host: str, port: int, timeout_s: float) -> str:
    reply = await _cgminer(host, port, "stats", timeout_s)
    return normalise_model_type(_first(reply, "STATS").get("Type")) if reply else ""


def _found(family: RigProtocol, model: str, firmware: str, note: str = "") -> Detection:
    return Detection(family, model, None, firmware, note)


async def detect_family(
    host: str,
    port: int,
    version: CgminerReply,
    ports: FamilyPorts,
    timeout_s: float,
    profiles_dir: Path | None = None,
) -> Detection:
    """The family, model and profile of a rig that answered `version` on host:port."""
    found = await _detect(host, port, version, ports, timeout_s)
    if not found.model_type:
        return found
    return dataclasses.replace(found, profile=profile_for(found.model_type, profiles_dir))


async def _detect(
    host: str, port: int, version: CgminerReply, ports: FamilyPorts, timeout_s: float
) -> Detection:
    v = _first(version, "VERSION")
    raw_type = _text(v.get("Type"))
    model = normalise_model_type(raw_type)
    blob = json.dumps(version).lower()
    suffix = _type_suffix(raw_type)

    if "LUXminer" in v or "luxminer" in blob:
        model = model or await _stats_model(host, port, timeout_s)
        return _found(RigProtocol.LUXOS, model, f"LUXminer {_text(v.get('LUXminer'))}".strip())

    if "bosminer" in blob or "boser" in blob or "braiins" in blob:
        firmware = next((f"{k} {_text(val)}" for k, val in v.items() if "BOS" in k), "BOSminer")
        details = await _cgminer(host, port, "devdetails", timeout_s)
        model = model or normalise_model_type(_first(details or {}, "DEVDETAILS").get("Model"))
        if await _tcp_open(host, ports.grpc_port, timeout_s):
            return _found(RigProtocol.BRAIINS, model, firmware)
        note = f"Braiins without gRPC on port {ports.grpc_port} (not OS+?): read only"
        return _found(RigProtocol.CGMINER, model, firmware, note)

    if "btminer" in blob or "bitmicro" in blob:
        note = ""
        try:
            info = await V3Client(
                f"{host}:{port}", host, ports.api_port, "", "", lambda: 0.0, timeout_s
            ).request("get.device.info")
            miner = info.get("msg")
            code = miner.get("miner") if isinstance(miner, Mapping) else None
            code = code.get("type") if isinstance(code, Mapping) else None
            if isinstance(code, str) and code.strip():
                model = normalise_model_type(_whatsminer_model(code)) or model
        except DeviceError as exc:
            note = f"API v3 on port {ports.api_port}: {exc.message}"
        if not model:  # API v3 off: btminer's devdetails `Model` (as pyasic reads it), stats
            details = await _cgminer(host, port, "devdetails", timeout_s)
            code = _text(_first(details or {}, "DEVDETAILS").get("Model"))
            model = normalise_model_type(_whatsminer_model(code)) if code else ""
        if not model:
            model = await _stats_model(host, port, timeout_s)
        return _found(RigProtocol.WHATSMINER, model, "btminer", note)

    if "vnish" in suffix.lower() or "vnish" in blob:
        model = model or await _stats_model(host, port, timeout_s)
        return _found(RigProtocol.VNISH, model, suffix or "vnish")

    # cgminer/bmminer on 4028: stock Antminer when its web port asks for Bitmain's digest login.
    firmware = next((f"{k} {_text(v[k])}" for k in ("BMMiner", "CGMiner", "Cgminer") if k in v), "")
    model = model or await _stats_model(host, port, timeout_s)
    web = await _web_get(host, ports.web_port, "/api/v1/info", timeout_s)
    if isinstance(web, str):
        return _found(RigProtocol.CGMINER, model, firmware, web)
    if web.status == 401 and web.realm.startswith(STOCK_REALM_PREFIX):
        return _found(RigProtocol.STOCK, model, firmware or "stock")
    vnish = _vnish_info(web)
    if vnish is not None:
        return _found(RigProtocol.VNISH, model or vnish[0], vnish[1])
    note = f"web port {ports.web_port} is neither stock (digest realm) nor Vnish"
    return _found(RigProtocol.CGMINER, model, firmware, note)
