"""The oracle itself: OpenWhisk's parser reads what upstream reads and refuses what upstream refuses.

These pin why the app writes U+FFFF as an escape: spray-json's parser takes a
raw U+FFFF for the end of its input.
"""

from tests.openwhisk_oracle import ParsedMessage, ParseFailure


def value(text: str) -> bytes:
    return text.encode("utf-8")


def test_openwhisk_parser_reads_a_message_to_its_key_and_sender(openwhisk_parser):
    parsed = openwhisk_parser.parse(value('{"instanceId":"controller0","key":{"mainId":"guest/hello"}}'))
    assert parsed == ParsedMessage("guest/hello", None, "controller0",
                                   '{"instanceId":"controller0","key":{"mainId":"guest/hello"}}')


def test_openwhisk_parser_reads_a_secondary_id(openwhisk_parser):
    parsed = openwhisk_parser.parse(value('{"key":{"secondaryId":"k","mainId":"u"},"instanceId":"i"}'))
    assert (parsed.main_id, parsed.secondary_id, parsed.instance_id) == ("u", "k", "i")


def test_openwhisk_parser_takes_a_raw_uffff_for_the_end_of_input(openwhisk_parser):
    for raw in ('{"instanceId":"cache-invalidator","key":{"mainId":"guest/a\uffffb"}}',
                '{"instanceId":"cache-invalidator","key":{"mainId":"u","secondaryId":"k\uffff"}}'):
        parsed = openwhisk_parser.parse(value(raw))
        assert isinstance(parsed, ParseFailure), parsed
        assert "ParsingException: Unexpected end-of-input" in parsed.summary


def test_openwhisk_parser_reads_an_escaped_uffff_as_the_character(openwhisk_parser):
    parsed = openwhisk_parser.parse(
        value('{"instanceId":"cache-invalidator","key":{"mainId":"guest/a\\uffffb","secondaryId":"k\\uffff"}}'))
    assert (parsed.main_id, parsed.secondary_id) == ("guest/a\uffffb", "k\uffff")


def test_openwhisk_parser_reads_a_raw_ufffe_as_the_character(openwhisk_parser):
    parsed = openwhisk_parser.parse(value('{"instanceId":"cache-invalidator","key":{"mainId":"a\ufffeb"}}'))
    assert parsed.main_id == "a\ufffeb"


def test_openwhisk_parser_refuses_a_message_without_instance_id(openwhisk_parser):
    parsed = openwhisk_parser.parse(value('{"key":{"mainId":"guest/hello"}}'))
    assert parsed == ParseFailure("spray.json.DeserializationException: Object is missing required member 'instanceId'")


def test_openwhisk_parser_decodes_malformed_utf8_as_replacement_characters(openwhisk_parser):
    # new String(bytes, UTF_8), as removeFromLocalCache does: a bad byte is read as U+FFFD, not refused.
    parsed = openwhisk_parser.parse(b'{"instanceId":"i","key":{"mainId":"a\xffb"}}')
    assert parsed.main_id == "a\ufffdb"


def test_openwhisk_parser_answers_a_long_batch_in_order(openwhisk_parser):
    ids = [f"guest/action-{i}-{'漢' * (i % 300)}" for i in range(5000)]
    parsed = openwhisk_parser.parse_all(
        [value(f'{{"instanceId":"cache-invalidator","key":{{"mainId":"{main_id}"}}}}') for main_id in ids])
    assert [p.main_id for p in parsed] == ids
