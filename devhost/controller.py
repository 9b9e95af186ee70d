"""Changes OpenWhisk's data as a controller does: the documents its Cosmos DB store writes, put and deleted.

What a controller writes, from apache/openwhisk's sources:
- `CosmosDBArtifactStore.put` turns the entity's `toDocumentRecord` into a Cosmos DB document (`toCosmosDoc`):
  `_id` becomes `id`, escaped by `CosmosDBUtil.escapeId` (every `/` written `|`: `guest/test-package` is
  `guest|test-package`), `_rev` is dropped, the handler's computed fields go under `_c` (for whisks,
  `WhisksHandler.computedFields`: `{"rootns": <the namespace's first segment>}`; none for subjects), and
  `_clusterId` is stamped with `whisk.cosmosdb.cluster-id` when the controller has one. Any `ttl` is removed.
  A new document is created, an existing one replaced (matching its etag).
- An entity's record is `WhiskEntity.entityDocumentRecord` (`name`, `updated` in epoch milliseconds,
  `entityType`) with its own serialiser's fields: `namespace`, `name`, `version` ("0.0.1"), `publish`,
  `annotations` and `parameters` (lists of `{"key", "value"}`), and per type: a package's `binding` (`{}` when
  it binds nothing, `WhiskPackage.optionalBindingSerializer`); an action's `exec` and `limits` (the defaults of
  `application.conf`: 60000 ms, 256 MB, 10 MB of logs, concurrency 1) and the annotations the controller adds
  (`provide-api-key` false, `exec` the kind; `Actions.scala`); a trigger's `limits` (`{}`); a rule's
  `trigger` and `action` as fully qualified names (`{"path", "name"}`).
- A subject (`WhiskAuth`) is `{"subject", "namespaces": [{"name", "uuid", "key"}]}`, id the subject: each
  namespace with a random UUID and a 64-character key (`Secret`), as `wskadmin user create` makes them.
- `del` hard-deletes unless `whisk.cosmosdb.soft-delete-ttl` is set (`softDeleteTTL` None: `hardDelete`);
  with it, `softDelete` reads the document, adds `"_deleted": true`, writes it again through `toCosmosDoc`
  (computed fields and the deleting controller's `_clusterId`) with that `ttl` in seconds, replacing it.

The documents are built here as plain data; `put` and `delete` write them with azure-cosmos. Used by
`scripts/cosmos put|delete`; nothing here depends on pytest.
"""

from __future__ import annotations

import secrets
import string
import time
import uuid
from typing import Optional

ENTITY_TYPES = ("package", "action", "trigger", "rule")
DEFAULT_VERSION = "0.0.1"
# application.conf's whisk.*-limit std values, as the serialisers write them.
DEFAULT_ACTION_LIMITS = {"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1}
DEFAULT_KIND = "nodejs:20"
DEFAULT_CODE = "function main(params) { return params; }"
KEY_LENGTH = 64  # Secret.MIN_LENGTH and MAX_LENGTH
WHISKS, SUBJECTS = "whisks", "subjects"


class EntityNameError(ValueError):
    """A name OpenWhisk would not store as given."""


def escape_id(entity_id: str) -> str:
    """CosmosDBUtil.escapeId: `/` written as `|`; an id holding `|` is refused, as there."""
    if "|" in entity_id:
        raise EntityNameError(f"{entity_id!r}: an OpenWhisk id never holds '|' (CosmosDBUtil.escapeId)")
    return entity_id.replace("/", "|")


def split_name(qualified: str) -> tuple[str, str]:
    """(namespace, name) of `namespace[/package]/name`: the namespace is everything before the last `/`."""
    namespace, _, name = qualified.strip("/").rpartition("/")
    if not namespace or not name:
        raise EntityNameError(f"{qualified!r}: expected namespace/name or namespace/package/name, e.g. "
                              f"guest/test-package")
    return namespace, name


def _fully_qualified(reference: str, namespace: str) -> dict:
    """FullyQualifiedEntityName.serdes of `name` (in the rule's namespace) or `namespace/name`."""
    path, _, name = reference.strip("/").rpartition("/")
    return {"path": path or namespace, "name": name}


def entity_record(qualified: str, entity_type: str = "package", *, now_ms: Optional[int] = None,
                  trigger: str = "", action: str = "", kind: str = DEFAULT_KIND) -> dict:
    """The entity's `toDocumentRecord` (with `_id`, without `_rev`), as a controller creates it through the API."""
    if entity_type not in ENTITY_TYPES:
        raise EntityNameError(f"entity type {entity_type!r}: one of {', '.join(ENTITY_TYPES)}")
    namespace, name = split_name(qualified)
    updated = int(time.time() * 1000) if now_ms is None else now_ms
    record = {"name": name, "updated": updated, "entityType": entity_type, "namespace": namespace,
              "version": DEFAULT_VERSION, "publish": False, "annotations": []}
    if entity_type == "package":
        record.update(binding={}, parameters=[])
    elif entity_type == "action":
        record.update(exec={"kind": kind, "code": DEFAULT_CODE, "binary": False}, parameters=[],
                      limits=dict(DEFAULT_ACTION_LIMITS),
                      annotations=[{"key": "provide-api-key", "value": False}, {"key": "exec", "value": kind}])
    elif entity_type == "trigger":
        record.update(parameters=[], limits={})
    else:
        if not trigger or not action:
            raise EntityNameError("a rule names its trigger and its action")
        record.update(trigger=_fully_qualified(trigger, namespace), action=_fully_qualified(action, namespace))
    record["_id"] = f"{namespace}/{name}"
    return record


def subject_record(subject: str, namespaces: list[str]) -> dict:
    """A subject with its namespaces, each with a new UUID and key, as `wskadmin user create` stores it."""
    if "/" in subject or not subject:
        raise EntityNameError(f"subject {subject!r}: a subject is one name, without '/'")
    alphabet = string.ascii_letters + string.digits
    return {"_id": subject, "subject": subject,
            "namespaces": [{"name": ns, "uuid": str(uuid.uuid4()),
                            "key": "".join(secrets.choice(alphabet) for _ in range(KEY_LENGTH))}
                           for ns in (namespaces or [subject])]}


def cosmos_document(record: dict, kind: str, cluster_id: Optional[str]) -> dict:
    """CosmosDBArtifactStore.toCosmosDoc: the record as the document the store writes."""
    document = {k: v for k, v in record.items() if k not in ("_id", "_rev", "ttl")}
    document["id"] = escape_id(record["_id"])
    if kind == WHISKS and isinstance(record.get("namespace"), str):
        document["_c"] = {"rootns": record["namespace"].split("/")[0]}
    if cluster_id:
        document["_clusterId"] = cluster_id
    return document


def soft_deleted(stored: dict, kind: str, cluster_id: Optional[str], ttl_seconds: int) -> dict:
    """CosmosDBArtifactStore.softDeletePut: the stored document again, `_deleted`, its ttl, stamped anew."""
    # getAsWhiskJson strips every field starting with `_` (and the id) before toCosmosDoc writes it again.
    record = {k: v for k, v in stored.items() if not k.startswith("_") and k != "id"}
    record["_deleted"] = True
    record["_id"] = stored["id"].replace("|", "/")
    document = cosmos_document(record, kind, cluster_id)
    document["ttl"] = ttl_seconds
    return document


def redacted(document: dict) -> dict:
    """The document with every namespace's key replaced, for printing."""
    if isinstance(document.get("namespaces"), list):
        document = {**document, "namespaces": [{**ns, "key": "***"} if isinstance(ns, dict) and "key" in ns else ns
                                               for ns in document["namespaces"]]}
    return document


# -- writing (azure-cosmos) -----------------------------------------------------------------------

def put(container, document: dict) -> str:
    """Creates the document, or replaces the one stored under its id matching its etag, as `put` does;
    returns "created" or "replaced"."""
    from azure.core import MatchConditions
    from azure.cosmos import exceptions

    try:
        stored = container.read_item(document["id"], partition_key=document["id"])
    except exceptions.CosmosResourceNotFoundError:
        container.create_item(document)
        return "created"
    container.replace_item(document["id"], document, etag=stored["_etag"], match_condition=MatchConditions.IfNotModified)
    return "replaced"


def delete(container, entity_id: str, kind: str, cluster_id: Optional[str], soft_delete_ttl: Optional[int]) -> dict:
    """Deletes as `del` does: hard, or soft with a ttl. Returns the stored document (soft: as written again).
    Raises azure-cosmos's CosmosResourceNotFoundError when there is none."""
    from azure.core import MatchConditions

    doc_id = escape_id(entity_id)
    stored = container.read_item(doc_id, partition_key=doc_id)
    if soft_delete_ttl is None:
        container.delete_item(doc_id, partition_key=doc_id, etag=stored["_etag"],
                              match_condition=MatchConditions.IfNotModified)
        return stored
    document = soft_deleted(stored, kind, cluster_id, soft_delete_ttl)
    container.replace_item(doc_id, document, etag=stored["_etag"], match_condition=MatchConditions.IfNotModified)
    return document
