"""The manifest of a collection job: ``DST/manifest.jsonl``, one JSON object per file.

JSON Lines rather than Parquet because it needs no dependency, can be appended to one
line per finished file (so a crash loses nothing that was recorded), and is still read
directly by pandas (``pd.read_json(path, lines=True)``) and Ray Data
(``ray.data.read_json(path)``). The fields are listed in docs/scale-out.md.

Only the driver process writes the manifest; workers return records to it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import NeurocodecError

#: File name of the manifest, at the top of the destination folder.
MANIFEST_NAME = "manifest.jsonl"
#: ``status`` values of a record.
OK, FAILED = "ok", "failed"


class CollectionError(NeurocodecError):
    """A collection job cannot run as asked (bad source, a destination holding another
    job's files, a damaged manifest...). Failures of single files are not raised: they are
    recorded in the manifest."""


def read_manifest(path: str | Path) -> list[dict]:
    """Records of a manifest (a ``manifest.jsonl`` file or the folder holding it), one dict
    per file, the latest record of each ``path`` only, in file order.

    A last line cut short by a crash is ignored; any other unreadable line raises
    :class:`CollectionError`.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    return list(_load(path).values())


def _load(path: Path) -> dict[str, dict]:
    records: dict[str, dict] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return records
    lines = text.split("\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            key = record["path"]
        except (ValueError, KeyError, TypeError):
            if number == len(lines):  # no newline after it: a write cut short by a crash
                continue
            raise CollectionError(f"{path}: line {number} is not a manifest record; "
                                  "move the file away to start the collection afresh") from None
        records.pop(key, None)  # a later record of a path replaces the earlier one
        records[key] = record
    return records


class Manifest:
    """The manifest of one destination folder, open for appending.

    On opening, the file is rewritten (atomically) with one line per path, which drops
    superseded records and a torn last line; then records are appended one line at a time
    and flushed, so that a killed job keeps every record it wrote.
    """

    #: fsync after this many appended records (flush after every record).
    SYNC_EVERY = 32

    def __init__(self, folder: Path):
        self.path = Path(folder) / MANIFEST_NAME
        self.records = _load(self.path)
        self._file = None
        self._unsynced = 0

    def open(self) -> None:
        """Compact the file and open it for appending (creates the folder)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{MANIFEST_NAME}.part")
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in self.records.values())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._file = open(self.path, "a", encoding="utf-8")

    def append(self, record: dict) -> None:
        """Record one file (replacing any earlier record of the same ``path``)."""
        self.records.pop(record["path"], None)
        self.records[record["path"]] = record
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        self._unsynced += 1
        if self._unsynced >= self.SYNC_EVERY:
            os.fsync(self._file.fileno())
            self._unsynced = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
