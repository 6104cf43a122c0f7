"""Load a conformance suite safely.

``load_suite(path)`` reads ``index.json``, checks the format version, keeps every listed path inside the suite
folder (no absolute path, no ``..``, no symlink that leads out), checks each file's sha256 before parsing it, and
decodes every record (``refquant.conformance.format``).  Every failure is a ``SpecError`` with one of the
conditions ``unknown_format_version``, ``checksum_mismatch``, ``path_outside_suite``, ``malformed_record``; nothing
is returned for a suite that fails.  Only JSON is read: no pickle, no ``np.load``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from refquant.conformance.format import FORMAT_VERSION, Record, decode_record
from refquant.errors import SpecError

__all__ = ["LOAD_CONDITIONS", "MAX_FILE_BYTES", "Suite", "load_suite"]

LOAD_CONDITIONS: Final = ("unknown_format_version", "checksum_mismatch", "path_outside_suite", "malformed_record")
MAX_FILE_BYTES: Final = 64 * 2**20
_SHA: Final = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, eq=False)
class Suite:
    """A loaded suite: its folder, versions, and records sorted by id (``by_id`` indexes them)."""

    root: Path
    format_version: str
    spec_version: str
    records: tuple[Record, ...]

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def by_id(self, record_id: str, /) -> Record:
        """The record ``record_id`` (``KeyError`` when absent)."""
        for r in self.records:
            if r.id == record_id:
                return r
        raise KeyError(record_id)


def _json(data: bytes, where: str) -> Any:
    def no_constants(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    try:
        return json.loads(data.decode("utf-8"), parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise SpecError("malformed_record", f"{where} is not valid JSON: {error}") from None


def _read(path: Path, where: str) -> bytes:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise SpecError("malformed_record", f"{where} is larger than {MAX_FILE_BYTES} bytes")
        return path.read_bytes()
    except OSError as error:
        raise SpecError("malformed_record", f"cannot read {where}: {error.strerror}") from None


def _inside(root: Path, rel: object) -> Path:
    if not isinstance(rel, str) or not rel or "\x00" in rel:
        raise SpecError("malformed_record", f"index.json: file path {rel!r} is not a non-empty string")
    parts = rel.replace("\\", "/").split("/")
    if rel.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", rel) or ".." in parts:
        raise SpecError("path_outside_suite", f"index.json: file path {rel!r} leaves the suite folder")
    full = (root / rel).resolve()
    if not full.is_relative_to(root):
        raise SpecError("path_outside_suite", f"index.json: file path {rel!r} resolves to {full}, outside {root}")
    return full


def load_suite(path: str | Path, /) -> Suite:
    """Load and verify the suite in folder ``path`` (see the module documentation)."""
    root = Path(path).resolve()
    index = _json(_read(root / "index.json", "index.json"), "index.json")
    if not isinstance(index, dict):
        raise SpecError("malformed_record", "index.json is not a JSON object")
    version = index.get("format_version")
    if version != FORMAT_VERSION:
        raise SpecError(
            "unknown_format_version", f"index.json: format_version {version!r}; this reader knows {FORMAT_VERSION!r}"
        )
    if set(index) != {"files", "format_version", "spec_version", "total_records"}:
        raise SpecError(
            "malformed_record",
            f"index.json: keys {sorted(index)} are not files, format_version, spec_version, total_records",
        )
    files, spec_version, total = index["files"], index["spec_version"], index["total_records"]
    if not isinstance(files, list) or not isinstance(spec_version, str) or type(total) is not int:
        raise SpecError(
            "malformed_record", "index.json: files must be a list, spec_version a string, total_records an int"
        )
    records: list[Record] = []
    seen: set[str] = set()
    for entry in files:
        if not isinstance(entry, dict) or set(entry) != {"path", "records", "sha256"}:
            raise SpecError("malformed_record", f"index.json: file entry {entry!r} needs exactly path, records, sha256")
        rel, count, digest = entry["path"], entry["records"], entry["sha256"]
        if type(count) is not int or not isinstance(digest, str) or not _SHA.match(digest):
            raise SpecError(
                "malformed_record", f"index.json: entry {rel!r} needs an int record count and a sha256 hex digest"
            )
        full = _inside(root, rel)
        data = _read(full, str(rel))
        if hashlib.sha256(data).hexdigest() != digest:
            raise SpecError("checksum_mismatch", f"{rel}: sha256 differs from index.json")
        doc = _json(data, str(rel))
        if (
            not isinstance(doc, dict)
            or set(doc) != {"format_version", "records"}
            or not isinstance(doc["records"], list)
        ):
            raise SpecError("malformed_record", f"{rel}: a group file is an object with format_version and records")
        if doc["format_version"] != FORMAT_VERSION:
            raise SpecError("unknown_format_version", f"{rel}: format_version {doc['format_version']!r}")
        if len(doc["records"]) != count:
            raise SpecError("malformed_record", f"{rel}: holds {len(doc['records'])} records, index.json says {count}")
        for obj in doc["records"]:
            r = decode_record(obj)
            if r.id in seen:
                raise SpecError("malformed_record", f"{rel}: record id {r.id!r} appears twice in the suite")
            seen.add(r.id)
            records.append(r)
    if len(records) != total:
        raise SpecError("malformed_record", f"index.json: total_records {total} but the files hold {len(records)}")
    records.sort(key=lambda r: r.id)
    return Suite(root, version, spec_version, tuple(records))
