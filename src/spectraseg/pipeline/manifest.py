"""The run folder's `manifest.json`: what went in, which stages ran, and what they made.

The manifest is how a rerun knows what is up to date. Each stage records a *fingerprint*: a
hash of everything its result depends on (its settings, the fingerprints of the stages before
it, the files it reads). A stage whose fingerprint is unchanged, whose status is `done` and
whose outputs are all there is skipped; anything else runs again.

Input files are fingerprinted by size, modification time and SHA-256. Checksums cost a read of
every byte, so a file whose size and mtime match the manifest keeps its recorded checksum: a
rerun that changes nothing reads no image data and takes well under a second.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from spectraseg.errors import ConfigError
from spectraseg.io.atomic import write_text_atomic

__all__ = [
    "MANIFEST_NAME",
    "FileRecord",
    "Manifest",
    "StageRecord",
    "fingerprint",
    "inventory",
]

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
CHUNK_BYTES = 1 << 20

Status = Literal["running", "done", "failed"]


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-able values (dict keys sorted, paths as text).

    Example:
        >>> fingerprint({"b": 1, "a": 2}) == fingerprint({"a": 2, "b": 1})
        True
    """
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class FileRecord:
    """One input file as the run saw it."""

    path: str
    size: int
    mtime_ns: int
    sha256: str


@dataclass
class StageRecord:
    """One stage's last attempt."""

    status: Status
    fingerprint: str
    started: str
    ended: str | None = None
    seconds: float | None = None
    outputs: list[str] = field(default_factory=list)
    summary: str = ""
    error: str | None = None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def inventory(paths: Iterable[Path], known: Mapping[str, FileRecord]) -> list[FileRecord]:
    """Every file under `paths` (files or folders), checksummed unless `known` has it unchanged.

    Hidden files and `.partial` leftovers are not inputs.
    """
    files: list[Path] = []
    for root in paths:
        if root.is_file():
            files.append(root)
        elif root.is_dir():
            files.extend(
                p
                for p in sorted(root.rglob("*"))
                if p.is_file() and not any(part.startswith(".") for part in p.parts[-1:])
            )
    records = []
    for file in files:
        stat = file.stat()
        key = str(file)
        previous = known.get(key)
        unchanged = (
            previous is not None
            and previous.size == stat.st_size
            and previous.mtime_ns == stat.st_mtime_ns
        )
        checksum = previous.sha256 if unchanged and previous is not None else _sha256(file)
        records.append(FileRecord(key, stat.st_size, stat.st_mtime_ns, checksum))
    return records


@dataclass
class Manifest:
    """The manifest of one run folder; `save` writes it atomically."""

    path: Path
    library_version: str
    config_hash: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    data: str = ""
    inputs: dict[str, FileRecord] = field(default_factory=dict)
    stages: dict[str, StageRecord] = field(default_factory=dict)

    @classmethod
    def load(cls, run_dir: Path, library_version: str) -> Manifest:
        """The folder's manifest, or an empty one when the folder has none yet."""
        path = run_dir / MANIFEST_NAME
        if not path.exists():
            return cls(path, library_version)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            inputs = {k: FileRecord(**v) for k, v in document["inputs"].items()}
            stages = {k: StageRecord(**v) for k, v in document["stages"].items()}
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ConfigError(
                f"{path}: not a spectraseg run manifest ({error}); "
                "pass --overwrite to start the run over."
            ) from None
        return cls(
            path,
            library_version,
            config_hash=document.get("config_hash", ""),
            config=document.get("config", {}),
            seed=document.get("seed"),
            data=document.get("data", ""),
            inputs=inputs,
            stages=stages,
        )

    def is_up_to_date(self, stage: str, stage_fingerprint: str) -> bool:
        """Done with the same fingerprint, and every recorded output still there."""
        record = self.stages.get(stage)
        return (
            record is not None
            and record.status == "done"
            and record.fingerprint == stage_fingerprint
            and all(Path(output).exists() for output in record.outputs)
        )

    def start(self, stage: str, stage_fingerprint: str) -> StageRecord:
        record = StageRecord("running", stage_fingerprint, _now())
        self.stages[stage] = record
        self.save()
        return record

    def finish(
        self, stage: str, seconds: float, outputs: Iterable[Path], summary: str = ""
    ) -> None:
        record = self.stages[stage]
        record.status, record.ended, record.seconds = "done", _now(), round(seconds, 2)
        record.outputs = [str(p) for p in outputs]
        record.summary, record.error = summary, None
        self.save()

    def fail(self, stage: str, seconds: float, error: BaseException) -> None:
        record = self.stages[stage]
        record.status, record.ended, record.seconds = "failed", _now(), round(seconds, 2)
        record.error = f"{type(error).__name__}: {error}"
        self.save()

    def save_if_changed(self, before: bytes | None) -> None:
        """Save unless the file already says the same, so a no-op rerun writes nothing."""
        if before is None or before != self._text().encode("utf-8"):
            self.save()

    def save(self) -> None:
        os.makedirs(self.path.parent, exist_ok=True)
        write_text_atomic(self.path, self._text())

    def _text(self) -> str:
        document = {
            "format": MANIFEST_FORMAT,
            "library_version": self.library_version,
            "config_hash": self.config_hash,
            "seed": self.seed,
            "data": self.data,
            "config": self.config,
            "inputs": {k: asdict(v) for k, v in self.inputs.items()},
            "stages": {k: asdict(v) for k, v in self.stages.items()},
        }
        return json.dumps(document, indent=2, default=str) + "\n"
