"""A watched folder for award files: how a market operator's export is often handed on.

Every poll, each *.csv and *.json file in the folder whose size and time have not changed
since the poll before (a file still being written is left alone) is imported through the
same parser and command as the HTTP API, then moved:
- to processed/ when stored (or when it repeats a file already imported: the file's
  SHA-256 is its idempotency key, so the same content is never imported twice, even if
  minerd stopped between storing it and moving it);
- to rejected/ when refused, with `<name>.error.txt` next to it naming every bad line and
  what is wrong;
- nowhere when storage is down: it stays and is tried again at the next poll (nothing lost).
Files are read and moved in a worker thread; the loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from minerd.clock import Clock
from minerd.errors import QuotaError, StorageError
from minerd.model import QuotaSource
from minerd.runtime.award_input import (
    AwardBatch,
    AwardInputError,
    Problem,
    Rules,
    parse_csv_text,
    parse_json_text,
)
from minerd.runtime.commands import PutAwards, execute
from minerd.runtime.service import SiteService

log = logging.getLogger("minerd.awards")

SUFFIXES = (".csv", ".json")
MAX_FILE_BYTES = 4_194_304
PROCESSED = "processed"
REJECTED = "rejected"

Fate = Literal["imported", "repeated", "rejected", "retry"]


@dataclass(frozen=True)
class InboxResult:
    name: str
    fate: Fate
    detail: str = ""  # what was stored, or why not


class AwardInbox:
    def __init__(
        self,
        service: SiteService,
        folder: Path,
        rules: Rules,
        clock: Clock,
        *,
        poll_s: float = 10.0,
        actor: str = "award-inbox",
    ) -> None:
        self.service = service
        self.folder = folder
        self.rules = rules
        self.clock = clock
        self.poll_s = poll_s
        self.actor = actor
        self._seen: dict[str, tuple[int, int]] = {}  # name -> (size, mtime_ns) last poll
        self._warned = False

    async def run(self) -> None:
        """Poll until cancelled; a folder that cannot be read is logged, not fatal."""
        log.info("award inbox: watching %s every %.0f s", self.folder, self.poll_s)
        while True:
            try:
                await self.poll_once()
                self._warned = False
            except OSError as exc:
                level = logging.DEBUG if self._warned else logging.WARNING
                log.log(level, "award inbox %s: %s", self.folder, exc)
                self._warned = True
            await self.clock.sleep(self.poll_s)

    async def poll_once(self) -> list[InboxResult]:
        """Import every file that has settled since the last poll."""
        ready = await asyncio.to_thread(self._settled_files)
        results = []
        for path in ready:
            results.append(await self._import(path))
        return results

    # ------------------------------------------------------------ one file

    async def _import(self, path: Path) -> InboxResult:
        try:
            content = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            return InboxResult(path.name, "retry", f"cannot read: {exc}")
        digest = hashlib.sha256(content).hexdigest()
        try:
            batch = self._parse(path, content)
            out = await execute(
                self.service,
                PutAwards(batch, f"{self.actor}:{path.name}", QuotaSource.FILE, f"file:{digest}"),
            )
        except AwardInputError as exc:
            reason = "\n".join(str(p) for p in exc.problems)
            return await self._reject(path, reason)
        except StorageError as exc:
            # Not stored: the file stays where it is and is tried again.
            log.warning("award inbox: %s not imported yet: %s", path.name, exc)
            return InboxResult(path.name, "retry", str(exc))
        except QuotaError as exc:  # a conflict: an award id reused for other energy
            return await self._reject(path, f"{exc.field}: {exc.message}")
        new = sum(out.created)
        fate: Fate = "imported" if new or out.withdrawn else "repeated"
        detail = f"{new} new, {len(out.created) - new} repeated, {len(out.superseded)} replaced"
        await asyncio.to_thread(_move, path, self.folder / PROCESSED)
        log.info("award inbox: %s %s (%s)", path.name, fate, detail)
        return InboxResult(path.name, fate, detail)

    def _parse(self, path: Path, content: bytes) -> AwardBatch:
        if len(content) > MAX_FILE_BYTES:
            raise AwardInputError([Problem("", "file", f"is larger than {MAX_FILE_BYTES} bytes")])
        if path.suffix.lower() == ".json":
            return parse_json_text(content, self.rules)
        return parse_csv_text(content, self.rules)

    async def _reject(self, path: Path, reason: str) -> InboxResult:
        log.warning("award inbox: %s rejected: %s", path.name, reason.replace("\n", "; "))
        await asyncio.to_thread(_move, path, self.folder / REJECTED, reason)
        return InboxResult(path.name, "rejected", reason)

    # ------------------------------------------------------------ folder

    def _settled_files(self) -> list[Path]:
        """Files unchanged since the last poll, oldest name first; remembers the rest."""
        seen: dict[str, tuple[int, int]] = {}
        ready: list[Path] = []
        for path in sorted(self.folder.iterdir()):
            name = path.name
            if name.startswith(".") or path.suffix.lower() not in SUFFIXES:
                continue
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if not path.is_file():
                continue
            stamp = (st.st_size, st.st_mtime_ns)
            if self._seen.get(name) == stamp:
                ready.append(path)
            else:
                seen[name] = stamp
        self._seen = seen
        return ready


def _move(path: Path, to_dir: Path, error: str | None = None) -> None:
    """Move into to_dir (never overwriting an earlier file of the same name), with the
    reason beside it when refused."""
    to_dir.mkdir(exist_ok=True)
    target = to_dir / path.name
    n = 1
    while target.exists():
        target = to_dir / f"{path.stem}.{n}{path.suffix}"
        n += 1
    if error is not None:
        # The reason first: a crash between the two leaves the file to be tried again.
        (to_dir / f"{target.name}.error.txt").write_text(error + "\n", encoding="utf-8")
    path.replace(target)
    with contextlib.suppress(OSError):
        _fsync_dir(to_dir)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
