"""The targets topic's record format: key = target name, value = versioned JSON, None = delete.

    {"v": "1.0", "target": {<the same table as one [[targets]] entry in the targets file>}}

A value is checked with the targets file's own rules (`target_from_dict`), so the topic can
never hold a target the file would refuse. A record that breaks them is a `BadRecord`: the
reader skips it, counts it and shows why, and the agent keeps going.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from engine.errors import ConfigError
from engine.errors import escape_controls as one_line
from engine.targets import Target, target_from_dict, target_to_dict

RECORD_VERSION = "1.0"
RECORD_MAJOR = 1
MAX_RECORD_BYTES = 100_000


class BadRecord(Exception):
    """A targets-topic record that cannot be used; `reason` is one short line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def encode_target(target: Target) -> tuple[bytes, bytes]:
    """The (key, value) that publishes `target`."""
    value = orjson.dumps({"v": RECORD_VERSION, "target": target_to_dict(target)})
    return target.name.encode("utf-8"), value


def tombstone(name: str) -> tuple[bytes, None]:
    """The (key, value) that deletes the target called `name` (compaction drops it later)."""
    return name.encode("utf-8"), None


def decode_target(key: bytes | None, value: bytes | None, base_dir: Path) -> Target | None:
    """The target a record carries, None for a tombstone; raises BadRecord otherwise.

    `base_dir` resolves a relative `ca_file`, as the targets file's directory does.
    """
    if key is None:
        raise BadRecord("record has no key (the key must be the target name)")
    try:
        name = key.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRecord("key is not UTF-8 text") from None
    if value is None:
        return None
    if len(value) > MAX_RECORD_BYTES:
        raise BadRecord(f"target {name!r}: record larger than {MAX_RECORD_BYTES} bytes")
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise BadRecord(one_line(f"target {name!r}: value is not JSON")) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("target"), dict):
        raise BadRecord(one_line(f"target {name!r}: value must be {{'v': ..., 'target': {{...}}}}"))
    version = doc.get("v")
    if not isinstance(version, str) or version.split(".", 1)[0] != str(RECORD_MAJOR):
        raise BadRecord(one_line(f"target {name!r}: unknown record version {version!r}"[:200]))
    try:
        target = target_from_dict(doc["target"], where=f"target {name!r}:", base_dir=base_dir)
    except ConfigError as exc:
        raise BadRecord(str(exc)) from None
    if target.name != name:
        raise BadRecord(one_line(f"target {name!r}: key and name {target.name!r} differ"))
    return target
