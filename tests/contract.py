"""The contract's message form and keys, written independently of the app's translation."""

import json
from collections.abc import Mapping
from typing import Optional


def contract_json(message: dict) -> str:
    """Compact JSON, keys in the given order, non-ASCII as UTF-8, U+FFFF escaped (spray-json reads a raw one as end of input)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).replace("\uffff", "\\uffff")


def utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_poison(document) -> bool:
    """The contract's poison documents (a lone surrogate cannot be a UTF-8 Kafka key, so it is one too)."""
    if not isinstance(document, Mapping) or "id" not in document:
        return True
    doc_id = document["id"]
    return not isinstance(doc_id, str) or not doc_id or "/" in doc_id or not utf8(doc_id)


def describe(documents, index: int) -> str:
    """A document as a failure names it: its place in the batch and its id."""
    element = documents[index]
    if is_feed_item(element):
        metadata = element["metadata"]
        return f"change #{index} ({metadata.get('operationType')} of {metadata.get('id')!r:.80})"
    return f"document #{index} (id {element['id']!r:.80})"


def is_feed_item(element) -> bool:
    """An element of the all-versions-and-deletes feed: {"current", "metadata", "previous"?}, which has no id."""
    return isinstance(element, Mapping) and "metadata" in element and "id" not in element


def contract_reading(element):
    """(document, deleted): what the contract reads an element as; None for poison.

    A feed item's create or replace is its `current` document; a delete is a document holding only
    metadata.id, with the previous image's namespaces where one is kept, and no _clusterId.
    """
    if not is_feed_item(element):
        return None if is_poison(element) else (element, False)
    metadata = element["metadata"]
    if not isinstance(metadata, Mapping) or not isinstance(metadata.get("operationType"), str):
        return None
    if metadata["operationType"] != "delete":
        current = element.get("current")
        return None if is_poison(current) else (current, False)
    previous = element.get("previous") if isinstance(element.get("previous"), Mapping) else {}
    deleted = {"id": metadata.get("id"), "namespaces": previous.get("namespaces")}
    return None if is_poison(deleted) else (deleted, True)


def intended_keys(documents, subjects: bool, cluster_id: Optional[str], auth_keys: bool) -> dict:
    """(mainId, secondaryId) -> the first document that means it, as the contract reads the batch."""
    keys = {}

    def mean(key, index):
        keys.setdefault(key, describe(documents, index))

    for index, element in enumerate(documents):
        reading = contract_reading(element)
        if reading is None:
            continue
        document, deleted = reading
        if not deleted and cluster_id is not None and document.get("_clusterId") == cluster_id:
            continue
        doc_id = document["id"]
        mean((doc_id.replace("|", "/"), None), index)
        if not subjects:
            continue
        namespaces = document.get("namespaces")
        entries = [e for e in namespaces if isinstance(e, Mapping)] if isinstance(namespaces, list) else []
        for entry in entries:
            name = entry.get("name")
            if isinstance(name, str) and name and utf8(name):
                mean((name, None), index)
        if doc_id.count("|") == 1 and doc_id.endswith("|limits") and doc_id != "|limits":
            mean((doc_id[: -len("|limits")], None), index)
        for entry in entries if auth_keys else []:
            uuid, secret = entry.get("uuid"), entry.get("key")
            if isinstance(uuid, str) and uuid and isinstance(secret, str) and utf8(uuid) and utf8(secret):
                mean((uuid, secret), index)
    return keys
