"""The contract's test vectors (copied from the specification into tests/vectors)."""

import json
from pathlib import Path

CASES = json.loads((Path(__file__).parent / "vectors" / "cases.json").read_text(encoding="utf-8"))


def case_id(case: dict) -> str:
    return case["name"]
