"""Write the conformance suite: ``conformance/v1/<chapter>/<group>.json`` and ``index.json``.

Deterministic: the records come from ``refquant.conformance.cases`` (spec only, random draws seeded from each
record id), files hold their records sorted by id, one record per line as compact JSON with sorted keys, so a
changed record is one changed line in a diff.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from refquant.conformance.cases import all_cases
from refquant.conformance.format import FORMAT_VERSION, Record, encode_record

__all__ = ["dumps_group", "dumps_index", "generate", "group_path"]


def group_path(record: Record, /) -> str:
    """The suite-relative file of a record: its id's first two components, ``affine/quantize.json``."""
    chapter, group = record.id.split("/")[:2]
    return f"{chapter}/{group}.json"


def _line(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def dumps_group(records: Iterable[Record], /) -> str:
    """The text of one group file: a header line, then one record per line."""
    lines = [_line(encode_record(r)) for r in sorted(records, key=lambda r: r.id)]
    return '{"format_version":"' + FORMAT_VERSION + '","records":[\n' + ",\n".join(lines) + "\n]}\n"


def dumps_index(files: list[dict[str, Any]], spec_version: str, /) -> str:
    """The text of ``index.json``."""
    obj = {
        "files": files,
        "format_version": FORMAT_VERSION,
        "spec_version": spec_version,
        "total_records": sum(int(f["records"]) for f in files),
    }
    return json.dumps(obj, sort_keys=True, indent=1) + "\n"


def generate(out_dir: str | Path, /) -> dict[str, int]:
    """Write the whole suite into ``out_dir`` (created; existing suite files are overwritten, others left).

    Returns the record count per file (suite-relative path).
    """
    from refquant import SPEC_VERSION

    out = Path(out_dir)
    groups: dict[str, list[Record]] = {}
    for r in all_cases():
        groups.setdefault(group_path(r), []).append(r)
    files: list[dict[str, Any]] = []
    for rel in sorted(groups):
        data = dumps_group(groups[rel]).encode("ascii")
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files.append({"path": rel, "records": len(groups[rel]), "sha256": hashlib.sha256(data).hexdigest()})
    (out / "index.json").write_bytes(dumps_index(files, SPEC_VERSION).encode("ascii"))
    return {str(f["path"]): int(str(f["records"])) for f in files}
