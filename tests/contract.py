"""The contract's message form, written independently of the app's translation."""

import json


def contract_json(message: dict) -> str:
    """Compact JSON, keys in the given order, non-ASCII as UTF-8, U+FFFF escaped (spray-json reads a raw one as end of input)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).replace("\uffff", "\\uffff")
