"""PHQ-9 and GAD-7 scoring against hand-computed cases at every band edge, the item-9 flag, and
every malformed submission refused with `measure_invalid`."""

from __future__ import annotations

from typing import Any

import pytest

from server.consults.measures import (
    LOINC_PHQ9_ITEM9,
    LOINC_TOTAL,
    Instrument,
    MeasureScore,
    Severity,
    score,
)
from server.errors import ErrorCode, TriadError

MIN, MILD, MOD, MODSEV, SEV = (
    Severity.MINIMAL,
    Severity.MILD,
    Severity.MODERATE,
    Severity.MODERATELY_SEVERE,
    Severity.SEVERE,
)

# (answers, total, severity), each total worked out by hand; both sides of every band edge.
PHQ9_CASES = [
    ([0, 0, 0, 0, 0, 0, 0, 0, 0], 0, MIN),
    ([1, 1, 1, 1, 0, 0, 0, 0, 0], 4, MIN),
    ([1, 1, 1, 1, 1, 0, 0, 0, 0], 5, MILD),
    ([3, 3, 3, 0, 0, 0, 0, 0, 0], 9, MILD),
    ([2, 2, 2, 2, 2, 0, 0, 0, 0], 10, MOD),
    ([2, 2, 2, 2, 2, 2, 2, 0, 0], 14, MOD),
    ([3, 3, 3, 3, 3, 0, 0, 0, 0], 15, MODSEV),
    ([3, 3, 3, 3, 3, 2, 2, 0, 0], 19, MODSEV),
    ([3, 3, 3, 3, 3, 3, 2, 0, 0], 20, SEV),
    ([3, 3, 3, 3, 3, 3, 3, 3, 0], 24, SEV),
]
GAD7_CASES = [
    ([0, 0, 0, 0, 0, 0, 0], 0, MIN),
    ([1, 1, 1, 1, 0, 0, 0], 4, MIN),
    ([2, 2, 1, 0, 0, 0, 0], 5, MILD),
    ([3, 3, 3, 0, 0, 0, 0], 9, MILD),
    ([2, 2, 2, 2, 2, 0, 0], 10, MOD),
    ([2, 2, 2, 2, 2, 2, 2], 14, MOD),
    ([3, 3, 3, 3, 3, 0, 0], 15, SEV),
    ([3, 3, 3, 3, 3, 3, 3], 21, SEV),
]


@pytest.mark.parametrize(("answers", "total", "severity"), PHQ9_CASES)
def test_phq9_totals_and_bands(answers: list[int], total: int, severity: Severity) -> None:
    result = score("phq9", answers)
    assert (result.instrument, result.total, result.severity) == (Instrument.PHQ9, total, severity)
    assert result.answers == tuple(answers)
    assert result.item9_positive is False


@pytest.mark.parametrize(("answers", "total", "severity"), GAD7_CASES)
def test_gad7_totals_and_bands(answers: list[int], total: int, severity: Severity) -> None:
    result = score("gad7", answers)
    assert (result.instrument, result.total, result.severity) == (Instrument.GAD7, total, severity)
    assert result.item9_positive is False


def test_phq9_maximum_is_severe_and_flags_item_9() -> None:
    result = score("phq9", [3] * 9)
    assert (result.total, result.severity, result.item9_positive) == (27, SEV, True)


@pytest.mark.parametrize("answer", [1, 2, 3])
def test_phq9_item_9_above_zero_is_flagged_whatever_the_total(answer: int) -> None:
    result = score("phq9", [0, 0, 0, 0, 0, 0, 0, 0, answer])
    assert (result.total, result.severity, result.item9_positive) == (answer, MIN, True)


def test_only_item_9_raises_the_flag() -> None:
    # Every other item at its highest, item 9 at zero: severe, but no flag.
    result = score("phq9", [3, 3, 3, 3, 3, 3, 3, 3, 0])
    assert (result.severity, result.item9_positive) == (SEV, False)
    # GAD-7 has no item 9; its last item at 3 flags nothing.
    assert score("gad7", [0, 0, 0, 0, 0, 0, 3]).item9_positive is False


def invalid(instrument: Any, answers: Any) -> TriadError:
    with pytest.raises(TriadError) as raised:
        score(instrument, answers)
    assert raised.value.code == ErrorCode.MEASURE_INVALID
    return raised.value


@pytest.mark.parametrize("instrument", ["phq2", "PHQ9", "", "gad-7", None, 9])
def test_an_unknown_instrument_is_refused(instrument: Any) -> None:
    error = invalid(instrument, [0] * 9)
    assert [f.location for f in error.field_errors] == ["/instrument"]


@pytest.mark.parametrize(
    ("instrument", "count"), [("phq9", 8), ("phq9", 10), ("phq9", 7), ("gad7", 9), ("gad7", 0)]
)
def test_a_wrong_number_of_answers_is_refused(instrument: str, count: int) -> None:
    error = invalid(instrument, [1] * count)
    assert [f.location for f in error.field_errors] == ["/answers"]


@pytest.mark.parametrize("answers", [None, "000000000", {"0": 1}, 9, b"\x00" * 9])
def test_answers_that_are_not_a_list_are_refused(answers: Any) -> None:
    invalid("phq9", answers)


@pytest.mark.parametrize("bad", [-1, 4, 10, True, False, 1.0, 2.5, "1", None, [1]])
def test_an_answer_outside_0_to_3_or_not_a_whole_number_is_refused(bad: Any) -> None:
    answers: list[Any] = [0, 1, 2, 3, 0, 1, 2, 3, 0]
    answers[4] = bad
    error = invalid("phq9", answers)
    # The position is named; the value (clinical) is not echoed.
    assert [f.location for f in error.field_errors] == ["/answers/4"]
    assert repr(bad) not in error.message


def test_a_score_checks_itself_and_reads_back_from_json() -> None:
    result = score("phq9", [1, 2, 3, 0, 1, 2, 3, 0, 1])
    assert MeasureScore.from_json(result.to_json()) == result
    assert result.to_json() == {
        "instrument": "phq9",
        "answers": [1, 2, 3, 0, 1, 2, 3, 0, 1],
        "total": 13,
        "severity": "moderate",
        "item9_positive": True,
    }
    wrong: list[dict[str, Any]] = [
        {"total": 12},
        {"severity": "mild"},
        {"item9_positive": False},
        {"answers": [1, 2, 3, 0, 1, 2, 3, 0]},
        {"answers": [1, 2, 3, 0, 1, 2, 3, 0, 4], "total": 16},
    ]
    for change in wrong:
        with pytest.raises(ValueError, match=r"answers|total|severity|item9"):
            MeasureScore.from_json({**result.to_json(), **change})


def test_loinc_codes() -> None:
    assert LOINC_TOTAL[Instrument.PHQ9][0] == "44261-6"
    assert LOINC_TOTAL[Instrument.GAD7][0] == "70274-6"
    assert LOINC_PHQ9_ITEM9[0] == "44260-8"
