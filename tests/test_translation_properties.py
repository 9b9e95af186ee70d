"""Property-based tests of translation: any JSON as a document, any string as an id, any nesting of namespaces.

A document that makes translation raise would fail its batch forever and
block its lease, so translation must never raise; and whatever it emits
must be a message of the contract's exact form, which OpenWhisk's own parser
(tests/openwhisk_oracle.py) reads as the key its document meant. The expected
keys are computed by an independent, literal reading of the contract
(tests/contract.py).
"""

import json

import pytest
from hypothesis import HealthCheck, example, find, given, settings
from hypothesis import strategies as st

from cache_invalidator.handler import change_documents
from cache_invalidator.translation import ContainerKind, translate
from tests.contract import contract_json, intended_keys, is_poison, utf8
from tests.openwhisk_oracle import assert_openwhisk_reads_as_intended

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Enough draws that a character the strategies draw at all is found; no database, so it is found afresh.
FIND_SETTINGS = settings(max_examples=2000, database=None, deadline=None)

# Characters a JSON writer or reader can get wrong, drawn on purpose: uniform
# code points would hit any one of them about once in a million draws.
# U+FFFF is spray-json's end-of-input marker, U+FFFE its neighbour; U+2028 and
# U+2029 end lines in JavaScript; controls, quotes and backslashes must be
# escaped; U+0085 and DEL need not be.
SPECIAL_CHARACTERS = ["\uffff", "\ufffe", "\u2028", "\u2029", "\x00", "\x01", "\x1f", "\x7f", "\x85", "\b", "\f",
                      "\n", "\r", "\t", '"', "\\", "/", "|", "😀"]
LONE_SURROGATES = ["\ud800", "\udfff"]


def text_of(characters, **size):
    """Strings of these characters. Not st.text: it merges an alphabet of one_of(characters(), sampled_from())
    into one range drawn uniformly, and the special characters would then almost never come up."""
    return st.lists(characters, **size).map("".join)


# Any code point, lone surrogates included (Python strings can hold them, and
# a JSON "\ud800" escape decodes to one).
ANY_TEXT = text_of(st.one_of(st.characters(exclude_categories=()), st.sampled_from(SPECIAL_CHARACTERS + LONE_SURROGATES)),
                   max_size=12)
# Ids that look like OpenWhisk's more often: `|`, `/`, non-ASCII, and the limits suffix.
ID_TEXT = st.one_of(
    ANY_TEXT,
    st.text(st.sampled_from(["|", "/", "a", "é", "ß", "漢", "😀", "\ud800", " ", "\\", '"', "\uffff", "\ufffe",
                             "\u2028", "\u2029", "\x00", "\x1f", "\x7f"]), max_size=8),
    st.builds(lambda ns: f"{ns}|limits", ANY_TEXT),
)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), ANY_TEXT)
JSON = st.recursive(SCALARS, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(ANY_TEXT, children, max_size=4)), max_leaves=12)

NAMESPACE_ENTRY = st.one_of(
    JSON,
    st.fixed_dictionaries({}, optional={"name": st.one_of(ID_TEXT, JSON), "uuid": st.one_of(ID_TEXT, JSON),
                                        "key": st.one_of(ID_TEXT, JSON), "extra": JSON}),
)
NAMESPACES = st.one_of(JSON, st.lists(NAMESPACE_ENTRY, max_size=4),
                       st.lists(st.lists(NAMESPACE_ENTRY, max_size=2), max_size=2))
CLUSTERS = st.sampled_from([None, "west", "east"])
DOCUMENT_OBJECT = st.fixed_dictionaries({}, optional={
    "id": st.one_of(ID_TEXT, JSON),
    "namespaces": NAMESPACES,
    "_clusterId": st.one_of(CLUSTERS, JSON),
    "_ts": st.one_of(st.integers(), JSON),
    "subject": JSON,
})
# Mostly well-formed subjects, so that names, limits and API keys are exercised, not only poison.
PLAIN_TEXT = text_of(st.one_of(st.characters(exclude_categories=("Cs",), exclude_characters="/"),
                              st.sampled_from([c for c in SPECIAL_CHARACTERS if c != "/"])), min_size=1, max_size=10)
GOOD_ID = st.one_of(PLAIN_TEXT, st.builds(lambda ns: f"{ns}|limits", PLAIN_TEXT.filter(lambda t: "|" not in t)))
GOOD_ENTRY = st.fixed_dictionaries({"name": st.one_of(PLAIN_TEXT, ID_TEXT, JSON)},
                                   optional={"uuid": st.one_of(PLAIN_TEXT, ID_TEXT, JSON),
                                             "key": st.one_of(PLAIN_TEXT, ID_TEXT, JSON)})
SUBJECT_OBJECT = st.fixed_dictionaries(
    {"id": st.one_of(GOOD_ID, ID_TEXT),
     "namespaces": st.one_of(st.lists(st.one_of(GOOD_ENTRY, NAMESPACE_ENTRY), max_size=4), NAMESPACES)},
    optional={"_clusterId": CLUSTERS})
DOCUMENT_OBJECT = st.one_of(DOCUMENT_OBJECT, SUBJECT_OBJECT)
DOCUMENT = st.one_of(JSON, DOCUMENT_OBJECT)
KINDS = st.sampled_from(list(ContainerKind))


def expected_keys(documents, kind, cluster_id, auth_keys):
    """The set of (mainId, secondaryId) the contract asks for."""
    return set(intended_keys(documents, kind is ContainerKind.SUBJECTS, cluster_id, auth_keys))


def check_contract(batch, documents, kind, instance_id, cluster_id, auth_keys, openwhisk_parser):
    """Every message is contract JSON, each exact message once, exactly the expected keys are there, and
    OpenWhisk's own parser reads each message as the key its document meant."""
    seen = set()
    for invalidation in batch.invalidations:
        text = invalidation.value.decode("utf-8")  # raises on anything but UTF-8
        message = json.loads(text)
        assert list(message) == ["instanceId", "key"], text
        assert message["instanceId"] == instance_id
        key = message["key"]
        assert list(key) in (["mainId"], ["mainId", "secondaryId"]), text
        assert isinstance(key["mainId"], str) and key["mainId"], text
        if "secondaryId" in key:
            assert auth_keys and isinstance(key["secondaryId"], str), text
        # Compact separators, non-ASCII as UTF-8, keys in this order: re-encoding gives the same bytes.
        assert contract_json(message).encode("utf-8") == invalidation.value
        assert invalidation.key == key["mainId"].encode("utf-8")
        assert invalidation.value not in seen, f"exact duplicate sent twice: {text}"
        seen.add(invalidation.value)
    sent = {(json.loads(i.value)["key"]["mainId"], json.loads(i.value)["key"].get("secondaryId"))
            for i in batch.invalidations}
    assert sent == expected_keys(documents, kind, cluster_id, auth_keys)
    assert batch.documents == len(documents)
    assert len(batch.poison) == sum(map(is_poison, documents))
    assert_openwhisk_reads_as_intended(
        openwhisk_parser, [(i.key, i.value) for i in batch.invalidations],
        intended_keys(documents, kind is ContainerKind.SUBJECTS, cluster_id, auth_keys), instance_id,
        f"a {kind.value} batch")


# Written out, so that they run every time: what a controller must read back exactly.
EVERY_SPECIAL = "".join(SPECIAL_CHARACTERS)
UFFFF_SUBJECT = {"id": "guest|a\uffffb", "namespaces": [{"name": "ns\uffff", "uuid": "uuid-\uffff", "key": "key-\uffff"}]}


@SETTINGS
@given(documents=st.lists(DOCUMENT, max_size=8), kind=KINDS, instance_id=ANY_TEXT.filter(utf8),
       cluster_id=CLUSTERS, auth_keys=st.booleans())
@example(documents=[UFFFF_SUBJECT], kind=ContainerKind.SUBJECTS, instance_id="cache-\uffff", cluster_id=None,
         auth_keys=True)
@example(documents=[{"id": f"guest|{EVERY_SPECIAL}", "namespaces": [
    {"name": f"ns{EVERY_SPECIAL}", "uuid": f"u{EVERY_SPECIAL}", "key": f"k{EVERY_SPECIAL}"}]}],
         kind=ContainerKind.SUBJECTS, instance_id=EVERY_SPECIAL, cluster_id=None, auth_keys=True)
def test_any_json_documents_never_raise_and_yield_contract_messages(documents, kind, instance_id, cluster_id, auth_keys,
                                                                     openwhisk_parser):
    batch = translate(documents, kind, instance_id=instance_id, cluster_id=cluster_id, invalidate_auth_keys=auth_keys)
    check_contract(batch, documents, kind, instance_id, cluster_id, auth_keys, openwhisk_parser)


@SETTINGS
@given(doc_id=st.one_of(ANY_TEXT, ID_TEXT), kind=KINDS)
@example(doc_id="\uffff", kind=ContainerKind.WHISKS)
@example(doc_id="guest|\ufffe\uffff", kind=ContainerKind.WHISKS)
@example(doc_id="\u2028|\u2029", kind=ContainerKind.SUBJECTS)
@example(doc_id=EVERY_SPECIAL.replace("/", ""), kind=ContainerKind.WHISKS)
def test_any_string_id_is_either_its_unescaped_key_or_reported_poison(doc_id, kind, openwhisk_parser):
    batch = translate([{"id": doc_id}], kind, instance_id="cache-invalidator")
    if is_poison({"id": doc_id}):
        assert batch.invalidations == [] and len(batch.poison) == 1
    else:
        assert batch.poison == []
        assert batch.invalidations[0].key == doc_id.replace("|", "/").encode("utf-8")
    check_contract(batch, [{"id": doc_id}], kind, "cache-invalidator", None, False, openwhisk_parser)


@SETTINGS
@given(documents=st.lists(st.one_of(st.none(), DOCUMENT_OBJECT, st.dictionaries(ANY_TEXT, JSON, max_size=3), JSON),
                          max_size=6),
       kind=KINDS, cluster_id=CLUSTERS, auth_keys=st.booleans())
@example(documents=[UFFFF_SUBJECT], kind=ContainerKind.SUBJECTS, cluster_id=None, auth_keys=True)
# Beyond 64 bits orjson reads a float where json reads an int.
@example(documents=[{"_ts": -9_223_372_036_854_775_809, "id": "0"}, -9_223_372_036_854_775_809],
         kind=ContainerKind.WHISKS, cluster_id=None, auth_keys=False)
def test_documents_as_the_host_sends_them_translate_as_the_json_says(documents, kind, cluster_id, auth_keys,
                                                                      openwhisk_parser):
    # The function receives the host's JSON text (`changes: str`); the handler
    # parses it (orjson, or json where orjson refuses, as for a lone surrogate).
    text = json.dumps(documents)
    as_sent = json.loads(text)
    batch = translate(change_documents(text, kind.value), kind, instance_id="cache-invalidator",
                      cluster_id=cluster_id, invalidate_auth_keys=auth_keys)
    check_contract(batch, as_sent, kind, "cache-invalidator", cluster_id, auth_keys, openwhisk_parser)
    assert batch == translate(as_sent, kind, instance_id="cache-invalidator", cluster_id=cluster_id,
                              invalidate_auth_keys=auth_keys)


@pytest.mark.parametrize("character", SPECIAL_CHARACTERS + LONE_SURROGATES, ids=lambda c: f"U+{ord(c):04X}")
def test_the_id_strategies_draw_every_special_character(character):
    for strategy in (ANY_TEXT, ID_TEXT, *([PLAIN_TEXT] if character not in LONE_SURROGATES + ["/"] else [])):
        assert character in find(strategy, lambda text: character in text, settings=FIND_SETTINGS)

