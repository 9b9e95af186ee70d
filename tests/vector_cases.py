"""The contract's test vectors (copied from the specification into tests/vectors), and the
all-versions-and-deletes feed's, in the same form (tests/vectors/README.md)."""

import json
from pathlib import Path

_VECTORS = Path(__file__).parent / "vectors"
CASES = [case for name in ("cases.json", "all_versions_and_deletes.json")
         for case in json.loads((_VECTORS / name).read_text(encoding="utf-8"))]


def case_id(case: dict) -> str:
    return case["name"]
