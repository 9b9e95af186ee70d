"""The all-versions-and-deletes feed's envelopes, unwrapped where the batch text is parsed.

In that mode the Cosmos DB extension (Microsoft.Azure.WebJobs.Extensions.CosmosDB 4.16.1,
`CosmosDBTriggerValueBinder`) hands a `str` parameter `JArray.FromObject` of its
`ChangeFeedItem<JObject>` list, written by Newtonsoft.Json with the property names of
azure-cosmos-dotnet-v3's `ChangeFeedItem.cs` and `ChangeFeedMetadata.cs`
(Microsoft.Azure.Cosmos/src/Resource/FullFidelity/):

    {"current": {...} | null,
     "metadata": {"crts": <double>, "lsn": <long>, "operationType": "create" | "replace" | "delete",
                  "previousImageLSN": <long>, "timeToLiveExpired": <bool>,
                  "id": <string>, "partitionKey": {...}},          (id and partitionKey: deletes only)
     "previous": {...}}                                            (only where the container keeps it)

`current` is always written, null on a delete. Microsoft's Java processor (`ChangeFeedProcessorItem`)
and azure-cosmos for Python use the same three names.

Translation never sees an envelope: a create or replace becomes its `current` document, exactly
as the latest-version feed hands it, and a delete becomes a `Deletion`. What an element is, is
decided by its shape alone (`is_envelope`), in either mode, so that no change is lost when the
host's mode is not the app's; the handler reports such a mismatch.
"""

from __future__ import annotations

from collections import UserDict
from collections.abc import Mapping
from typing import Any, NamedTuple, Optional

from .translation import Deletion, FeedVersion, UnreadableChange


class UnwrappedBatch(NamedTuple):
    """A batch's elements as translation reads them, in order, and how many of them were envelopes."""

    changes: list
    envelopes: int


def is_envelope(element: Any) -> bool:
    """The one rule: an object with `metadata` and no `id` is an envelope, anything else a document.

    Every OpenWhisk document has an id (without one it is poison), and ChangeFeedItem has no `id`
    member but always writes `metadata` (ChangeFeedItem.cs), so neither is ever taken for the other.
    """
    if isinstance(element, UserDict):  # a func.Document, from the library's converter
        element = element.data
    return isinstance(element, Mapping) and "metadata" in element and "id" not in element


def unwrap(elements: list) -> UnwrappedBatch:
    """Each envelope as the plain change it carries; documents are left as they are."""
    # Every batch passes here: a latest-version batch of plain dicts is looked over at the cost of two key tests
    # each (the same rule as is_envelope's), and handed on as it is.
    for element in elements:
        if type(element) is dict:
            if "id" not in element and "metadata" in element:
                break
        elif is_envelope(element):
            break
    else:
        return UnwrappedBatch(elements, 0)
    changes, envelopes = [], 0
    for element in elements:
        if is_envelope(element):
            envelopes += 1
            changes.append(_change(element.data if isinstance(element, UserDict) else element))
        else:
            changes.append(element)
    return UnwrappedBatch(changes, envelopes)


def _change(envelope: Mapping) -> Any:
    metadata = envelope["metadata"]
    if not isinstance(metadata, Mapping):
        return UnreadableChange("its metadata is not an object")
    operation = metadata.get("operationType")
    timestamp = _crts(metadata.get("crts"))
    if operation == "delete":
        # A delete has no body: its id is in the metadata, and a previous image where the container keeps one.
        previous = envelope.get("previous")
        return Deletion(metadata.get("id"), previous if isinstance(previous, Mapping) else None, timestamp)
    if not isinstance(operation, str):
        return UnreadableChange("its metadata has no operationType")
    # create and replace (and any operation added later) name their document in `current`.
    return FeedVersion(envelope.get("current"), timestamp)


def _crts(value: Any) -> Optional[float]:
    """metadata.crts, the change's time in seconds (a double), or None when it is no such number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 2**64:
        return None
    return float(value)
