"""MD5-crypt (`$1$salt$hash`, Poul-Henning Kamp's FreeBSD scheme), written from the published
algorithm: the Whatsminer API v2 token derives its keys from it (firmware-apis.md 5.1).

Pure function, no I/O. Kept here so that minerd does not need passlib (unmaintained) at
runtime; tests check it against passlib, which pyasic pulls into the dev environment.
"""

from __future__ import annotations

import hashlib

__all__ = ["md5_crypt", "md5_crypt_hash"]

_MAGIC = b"$1$"
_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Byte triples of the final digest, in the order the scheme encodes them.
_TRIPLES = ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5))


def _to64(value: int, count: int) -> str:
    out = []
    for _ in range(count):
        out.append(_ITOA64[value & 0x3F])
        value >>= 6
    return "".join(out)


def md5_crypt(password: str, salt: str) -> str:
    """The full `$1$<salt>$<hash>` string (salt cut to 8 characters, as the scheme does)."""
    pw = password.encode()
    sl = salt.encode()[:8]
    alt = hashlib.md5(pw + sl + pw).digest()
    ctx = bytearray(pw + _MAGIC + sl)
    for left in range(len(pw), 0, -16):
        ctx += alt[: min(16, left)]
    n = len(pw)
    while n:
        ctx += b"\x00" if n & 1 else pw[:1]
        n >>= 1
    final = hashlib.md5(ctx).digest()
    for i in range(1000):  # the scheme's deliberate slow-down
        step = bytearray(pw if i & 1 else final)
        if i % 3:
            step += sl
        if i % 7:
            step += pw
        step += final if i & 1 else pw
        final = hashlib.md5(step).digest()
    encoded = "".join(_to64(final[a] << 16 | final[b] << 8 | final[c], 4) for a, b, c in _TRIPLES)
    encoded += _to64(final[11], 2)
    return f"$1${sl.decode()}${encoded}"


def md5_crypt_hash(password: str, salt: str) -> str:
    """Only the hash part of `$1$<salt>$<hash>` (what the Whatsminer token flow uses)."""
    return md5_crypt(password, salt).rsplit("$", 1)[1]
