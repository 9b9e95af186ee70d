"""Turns a change batch into cache-invalidation messages, as CONTRACT.md says.

Pure: documents and options in, messages and counts out. No I/O, no clock, no
logging; the caller reports what was skipped. It never raises on a document,
because a document that raises would be handed again forever and block its
lease of the change feed.
"""

from __future__ import annotations

import dataclasses
import enum
from collections import UserDict
from collections.abc import Iterable, Mapping
from json.encoder import encode_basestring  # what json.dumps(ensure_ascii=False) uses for a str
from typing import Any, NamedTuple, Optional


# Cosmos DB's _ts is seconds since 1970, an unsigned 64-bit number; anything
# else is no timestamp (and beyond 64 bits orjson reads a float where json reads an int).
_TS_LIMIT = 2**64


class ContainerKind(enum.Enum):
    """Which OpenWhisk container a batch comes from; it decides the keys."""

    WHISKS = "whisks"
    SUBJECTS = "subjects"


class Invalidation(NamedTuple):
    """One Kafka message: the cache key's mainId as message key, the contract JSON as value."""

    key: bytes
    value: bytes


@dataclasses.dataclass(frozen=True)
class SkippedDocument:
    """A poison document: its place in the batch and why it can never be invalidated."""

    position: int
    reason: str


@dataclasses.dataclass(frozen=True)
class SkippedNamespace:
    """A namespace entry of a subject document that yields no key; the document itself is still invalidated."""

    position: int
    document_id: str
    entry: int
    reason: str


class FeedVersion(NamedTuple):
    """A created or replaced document from the all-versions-and-deletes feed, and the feed's time of it."""

    document: Any  # the envelope's `current`: a document as the latest-version feed hands it
    timestamp: Optional[float]  # metadata.crts, seconds since 1970


class Deletion(NamedTuple):
    """A hard delete from the all-versions-and-deletes feed: an id, no body, no writer's `_clusterId`."""

    doc_id: Any  # metadata.id
    previous: Optional[Mapping]  # the document before the delete, where the container keeps previous images
    timestamp: Optional[float]  # metadata.crts


class UnreadableChange(NamedTuple):
    """An element of an all-versions-and-deletes batch that names no change: poison."""

    reason: str


class TranslatedBatch(NamedTuple):
    """What a change batch becomes (a tuple: one is made per batch, and a frozen dataclass costs more to make)."""

    invalidations: list[Invalidation]
    documents: int
    own_cluster: int
    poison: list[SkippedDocument]
    skipped_namespaces: list[SkippedNamespace]
    # Seconds since 1970: the newest `_ts`, or `metadata.crts` of the all-versions-and-deletes feed.
    newest_timestamp: Optional[float]


def translate(
    documents: Iterable[Any],
    kind: ContainerKind,
    *,
    instance_id: str,
    cluster_id: Optional[str] = None,
    invalidate_auth_keys: bool = False,
) -> TranslatedBatch:
    """The invalidations for a change batch, in document order, each exact message once.

    An element is a document, as the latest-version feed hands it, or a change of the
    all-versions-and-deletes feed that envelope.py unwrapped: a FeedVersion, a Deletion or an
    UnreadableChange.
    """
    # A batch can hold a thousand documents and every one passes here, so the
    # common case (a dict with a plain string id) is written out inline; any
    # other document takes _poison_reason's slower, exact path.
    messages: dict[bytes, bytes] = {}  # value -> key; a dict keeps the first place of each
    remember = messages.setdefault
    poison: list[SkippedDocument] = []
    skipped_namespaces: list[SkippedNamespace] = []
    own_cluster = 0
    newest: Optional[int] = None
    count = 0
    subjects = kind is ContainerKind.SUBJECTS

    message_start = '{"instanceId":' + _json_string(instance_id) + ',"key":{"mainId":'

    def add(main_id: str, secondary_id: Optional[str] = None) -> None:
        text = message_start + _json_string(main_id)
        if secondary_id is not None:
            text += ',"secondaryId":' + _json_string(secondary_id)
        remember((text + "}}").encode("utf-8"), main_id.encode("utf-8"))

    for position, document in enumerate(documents):
        count += 1
        feed_time = None
        if type(document) is not dict:
            if type(document) is FeedVersion:
                feed_time = document.timestamp
                document = document.document
            elif type(document) is Deletion:
                main_id = _deleted_id(document.doc_id)
                if main_id is None:
                    poison.append(SkippedDocument(position, _deletion_poison_reason(document.doc_id)))
                    continue
                if document.timestamp is not None and (newest is None or document.timestamp > newest):
                    newest = document.timestamp
                # No writer's stamp: every region invalidates a delete, the one that made it included.
                add(main_id)
                if subjects:
                    # The limits rule needs the id only; namespace names need the previous image, where kept.
                    _subject_keys(document.previous or {}, main_id, position, add, skipped_namespaces,
                                  invalidate_auth_keys)
                continue
            elif type(document) is UnreadableChange:
                poison.append(SkippedDocument(position, document.reason))
                continue
            if type(document) is not dict:
                document = _as_dict(document)
        doc_id = document.get("id") if type(document) is dict else None
        if not (isinstance(doc_id, str) and doc_id and "/" not in doc_id):
            poison.append(SkippedDocument(position, _poison_reason(document)))
            continue
        main_id = doc_id.replace("|", "/")
        try:
            key = main_id.encode("utf-8")
        except UnicodeEncodeError:
            poison.append(SkippedDocument(position, "its id is not valid Unicode (a lone surrogate)"))
            continue
        if feed_time is not None:
            if newest is None or feed_time > newest:
                newest = feed_time
        else:
            timestamp = document.get("_ts")
            if type(timestamp) is int and 0 <= timestamp < _TS_LIMIT and (newest is None or timestamp > newest):
                newest = timestamp
        if cluster_id is not None and document.get("_clusterId") == cluster_id:
            own_cluster += 1
            continue
        # Compact, keys in the contract's order, non-ASCII as UTF-8: as spray-json prints it.
        remember((message_start + _json_string(main_id) + "}}").encode("utf-8"), key)
        if subjects:
            _subject_keys(document, main_id, position, add, skipped_namespaces, invalidate_auth_keys)

    return TranslatedBatch(
        invalidations=[Invalidation(key, value) for value, key in messages.items()],
        documents=count,
        own_cluster=own_cluster,
        poison=poison,
        skipped_namespaces=skipped_namespaces,
        newest_timestamp=newest,
    )


def _json_string(text: str) -> str:
    """A JSON string as spray-json prints it, but with U+FFFF escaped.

    spray-json's parser takes a raw U+FFFF for the end of its input and fails
    on the message, so that one character is written as the escape it reads.
    """
    return encode_basestring(text).replace("\uffff", "\\uffff")


def _as_dict(document: Any) -> Any:
    """A mapping document as a dict; anything else as it is."""
    if isinstance(document, UserDict):
        # The converter's Documents are UserDicts; their backing dict reads several times faster.
        return document.data
    if isinstance(document, Mapping):
        return dict(document)
    return document


def _poison_reason(document: Any) -> str:
    """Why a document whose id is not a plain, non-empty string without '/' can never yield a key."""
    if document is None:
        return "the document is null"
    if not isinstance(document, Mapping):
        return f"the document is a {_json_type(document)}, not an object"
    if "id" not in document:
        return "the document has no id"
    return _id_problem(document["id"], "its id")


def _deleted_id(doc_id: Any) -> Optional[str]:
    """The cache key's mainId of a deleted document's id, None when the id could never name one."""
    if isinstance(doc_id, str) and doc_id and "/" not in doc_id and _encodable(doc_id):
        return doc_id.replace("|", "/")
    return None


def _deletion_poison_reason(doc_id: Any) -> str:
    return "a delete without metadata.id" if doc_id is None else _id_problem(doc_id, "a delete whose metadata.id")


def _id_problem(doc_id: Any, what: str) -> str:
    """Why an id (named `what` in the reason) can name no cache entry."""
    if not isinstance(doc_id, str):
        return f"{what} is a {_json_type(doc_id)}, not a string"
    if not doc_id:
        return f"{what} is empty"
    if "/" in doc_id:
        return f"{what} contains '/', which an escaped OpenWhisk id never does"
    return f"{what} is not valid Unicode (a lone surrogate)"


def _subject_keys(document, main_id, position, add, skipped, invalidate_auth_keys) -> None:
    """Adds the namespace keys of a subject or limits document, in the contract's order."""
    namespaces = document.get("namespaces")
    entries: list[Mapping] = []
    if namespaces is not None:
        if isinstance(namespaces, list):
            entries = list(namespaces)
        else:
            skipped.append(SkippedNamespace(position, main_id, -1, f"namespaces is a {_json_type(namespaces)}, not a list"))

    usable: list[Mapping] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            skipped.append(SkippedNamespace(position, main_id, index, f"the entry is a {_json_type(entry)}, not an object"))
            continue
        usable.append(entry)
        name = entry.get("name")
        if not isinstance(name, str):
            skipped.append(SkippedNamespace(position, main_id, index, "it has no string name"))
        elif not name:
            skipped.append(SkippedNamespace(position, main_id, index, "its name is empty"))
        elif not _encodable(name):
            skipped.append(SkippedNamespace(position, main_id, index, "its name is not valid Unicode"))
        else:
            add(name)

    namespace, slash, rest = main_id.partition("/")
    if slash and rest == "limits" and namespace:
        add(namespace)

    if invalidate_auth_keys:
        for entry in usable:
            uuid, secret = entry.get("uuid"), entry.get("key")
            # The key is an API key's secret: it is sent, never described.
            if isinstance(uuid, str) and isinstance(secret, str) and uuid and _encodable(uuid) and _encodable(secret):
                add(uuid, secret)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__
