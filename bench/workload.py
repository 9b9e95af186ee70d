"""Realistic change batches for the bench, built from the contract's test vectors.

Every document is a copy of a document of tests/vectors/cases.json, system
fields included (_rid, _self, _etag, _attachments, _ts, _lsn), with a new id
so that no two documents of a run collapse into one message.

whisks: a redeploy or bulk import: of every 10 documents, 6 actions, 2 actions
in a package, a package, a trigger and a rule (every one yields one message).
subjects: of every 4 documents, 2 subjects with one namespace (1 message), a
blocked subject with two namespaces (2 messages) and a limits document (2
messages).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

from cache_invalidator.translation import ContainerKind, Invalidation, translate

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "vectors" / "cases.json"
# The change feed's _ts of every generated document (seconds); lag is not measured.
TIMESTAMP = 1710342817


@dataclasses.dataclass(frozen=True)
class Batch:
    """One change batch: the host's JSON text, and the messages the app makes of it."""

    kind: ContainerKind
    documents: int
    json: str
    messages: list[Invalidation]


def _templates() -> dict[str, dict]:
    cases = json.loads(CASES.read_text())
    found: dict[str, dict] = {}
    for case in cases:
        if case["poison_documents"] or case["settings"]:
            continue
        for document in case["documents"]:
            if case["container"] == "whisks":
                kind = document.get("entityType")
                if kind == "action" and "/" in document["namespace"]:
                    kind = "package-action"
            elif document["id"].endswith("|limits"):
                kind = "limits"
            else:
                kind = f"subject-{len(document.get('namespaces', []))}"
            found.setdefault(kind, document)
    wanted = {"action", "package-action", "package", "trigger", "rule", "subject-1", "subject-2", "limits"}
    missing = wanted - found.keys()
    if missing:
        raise RuntimeError(f"{CASES} has no template for {sorted(missing)}")
    return found


_TEMPLATES = _templates()
WHISKS_CYCLE = ("action", "package-action", "action", "package-action", "action",
                "action", "package", "trigger", "rule", "action")
SUBJECTS_CYCLE = ("subject-1", "subject-2", "subject-1", "limits")


def _system_fields(document: dict, serial: int) -> None:
    rid = f"Tn8tAKBw{serial:012X}AA=="
    document["_rid"] = rid
    document["_self"] = f"dbs/Tn8tAA==/colls/Tn8tAKBwWrE=/docs/{rid}/"
    document["_etag"] = f'"{serial:08x}-0000-0d00-0000-65f1c2a10000"'
    document["_ts"] = TIMESTAMP
    document["_lsn"] = serial


def whisks_document(serial: int) -> dict:
    kind = WHISKS_CYCLE[serial % len(WHISKS_CYCLE)]
    document = copy.deepcopy(_TEMPLATES[kind])
    namespace = f"bench{serial // 500}"
    package = f"pkg{serial // 50}"
    if kind == "package-action":
        name, path = f"a{serial}", f"{namespace}/{package}"
    elif kind == "package":
        name, path = f"{package}-{serial}", namespace
    else:
        name, path = f"{kind[0]}{serial}", namespace
    document["id"] = f"{path}/{name}".replace("/", "|")
    document["name"] = name
    document["namespace"] = path
    document["_c"] = {"rootns": namespace}
    document["updated"] = TIMESTAMP * 1000 + serial % 1000
    _system_fields(document, serial)
    return document


def subjects_document(serial: int) -> dict:
    kind = SUBJECTS_CYCLE[serial % len(SUBJECTS_CYCLE)]
    document = copy.deepcopy(_TEMPLATES[kind])
    subject = f"user{serial}"
    if kind == "limits":
        document["id"] = f"{subject}|limits"
    else:
        document["id"] = document["subject"] = subject
        for index, entry in enumerate(document["namespaces"]):
            entry["name"] = subject if index == 0 else f"{subject}-dev{index}"
            entry["uuid"] = f"{serial:08x}-0000-4000-8000-{index:012x}"
            entry["key"] = f"{serial:016x}" * 4
    _system_fields(document, serial)
    return document


def make_batches(kind: ContainerKind, size: int, count: int, first_serial: int, settings) -> list[Batch]:
    """count distinct batches of size documents, translated with the app's own settings."""
    make = whisks_document if kind is ContainerKind.WHISKS else subjects_document
    batches = []
    serial = first_serial
    for _ in range(count):
        documents = [make(serial + i) for i in range(size)]
        serial += size
        translated = translate(
            documents, kind,
            instance_id=settings.instance_id,
            cluster_id=settings.cluster_id,
            invalidate_auth_keys=settings.invalidate_auth_keys,
        )
        if translated.poison or len(translated.invalidations) < size:
            raise RuntimeError("the bench workload made a document that yields no message")
        batches.append(Batch(kind, size, json.dumps(documents), translated.invalidations))
    return batches
