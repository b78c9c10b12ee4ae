"""Every case of ../shared/reliability-cases.md has a test named after its number."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
CASES = TESTS.parents[1] / "shared" / "reliability-cases.md"
CASE_LINE = re.compile(r"^(\d+)\.\s+\*\*", re.M)
# `test_case_12_x`, or one test for several cases: `test_case_10_and_15_x`, `test_case_10_13_x`.
CASE_TEST = re.compile(r"^\s*(?:async\s+)?def\s+test_case_(\d+(?:_(?:and_)?\d+)*)_\w+\s*\(", re.M)


def case_numbers(text: str) -> list[int]:
    """The numbers of the cases in the document (`12. **Title.** ...` lines)."""
    return sorted({int(n) for n in CASE_LINE.findall(text)})


def numbers_with_tests(root: Path) -> set[int]:
    """Case numbers that some `def test_case_NN_...` under root names."""
    found: set[int] = set()
    for path in root.rglob("test_*.py"):
        for numbers in CASE_TEST.findall(path.read_text(encoding="utf-8")):
            found.update(int(n) for n in re.findall(r"\d+", numbers))
    return found


def test_case_parsing_on_a_sample() -> None:
    sample = "### Upgrade\n\n9. **Preflight.** Lab: x.\n10. **apt lock.**\n- 11. not a case\n"
    assert case_numbers(sample) == [9, 10]
    assert CASE_TEST.findall("def test_case_09_preflight(lab):\n    def test_case_7_x() ->") == [
        "09",
        "7",
    ]
    assert CASE_TEST.findall("def test_case_10_and_15_lock(lab):\ndef test_case_10_13_x():") == [
        "10_and_15",
        "10_13",
    ]


def test_every_reliability_case_has_a_test() -> None:
    if not CASES.is_file():
        pytest.skip(f"the reliability cases are not here: {CASES}")
    numbers = case_numbers(CASES.read_text(encoding="utf-8"))
    assert numbers, f"no case found in {CASES}"
    missing = sorted(set(numbers) - numbers_with_tests(TESTS))
    print(f"cases without a test_case_NN_ test: {missing}")
    assert not missing, f"cases without a test_case_NN_ test: {missing}"
