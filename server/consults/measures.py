"""Check-in questionnaires: PHQ-9 (depression) and GAD-7 (anxiety), scored on the server.

Pure: no I/O. Every item is answered 0-3 ("not at all" .. "nearly every day"); the total is the
sum. Severity bands (Kroenke et al. 2001; Spitzer et al. 2006): PHQ-9 0-27 with 5/10/15/20 marking
mild / moderate / moderately severe / severe; GAD-7 0-21 with 5/10/15 marking mild / moderate /
severe. PHQ-9 item 9 (thoughts of self-harm) above zero is flagged on its own, whatever the total.

The LOINC codes are kept here, beside the instruments they name, for the FHIR export.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..errors import ErrorCode, FieldError, TriadError

MAX_ANSWER = 3


class Instrument(StrEnum):
    PHQ9 = "phq9"
    GAD7 = "gad7"

    @property
    def items(self) -> int:
        return ITEM_COUNTS[self]

    @property
    def max_total(self) -> int:
        return ITEM_COUNTS[self] * MAX_ANSWER

    @property
    def label(self) -> str:
        return LABELS[self]


class Severity(StrEnum):
    MINIMAL = "minimal"
    MILD = "mild"
    MODERATE = "moderate"
    MODERATELY_SEVERE = "moderately_severe"
    SEVERE = "severe"


ITEM_COUNTS: dict[Instrument, int] = {Instrument.PHQ9: 9, Instrument.GAD7: 7}
LABELS: dict[Instrument, str] = {Instrument.PHQ9: "PHQ-9", Instrument.GAD7: "GAD-7"}

# The lowest total of each band, highest first: the first floor a total reaches is its band.
_BANDS: dict[Instrument, tuple[tuple[int, Severity], ...]] = {
    Instrument.PHQ9: (
        (20, Severity.SEVERE),
        (15, Severity.MODERATELY_SEVERE),
        (10, Severity.MODERATE),
        (5, Severity.MILD),
        (0, Severity.MINIMAL),
    ),
    Instrument.GAD7: (
        (15, Severity.SEVERE),
        (10, Severity.MODERATE),
        (5, Severity.MILD),
        (0, Severity.MINIMAL),
    ),
}

# The item flagged on its own: PHQ-9 item 9, thoughts of being better off dead or of self-harm.
SAFETY_ITEM = 9

LOINC_SYSTEM = "http://loinc.org"
# The total score (the FHIR Observation's code), and PHQ-9 item 9 (its component).
LOINC_TOTAL: dict[Instrument, tuple[str, str]] = {
    Instrument.PHQ9: (
        "44261-6",
        "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]",
    ),
    Instrument.GAD7: (
        "70274-6",
        "Generalized anxiety disorder 7 item (GAD-7) total score [Reported.PHQ]",
    ),
}
LOINC_PHQ9_ITEM9 = (
    "44260-8",
    "Thoughts that you would be better off dead, or of hurting yourself in some way",
)


def severity_of(instrument: Instrument, total: int) -> Severity:
    if not 0 <= total <= instrument.max_total:
        raise ValueError(f"a {instrument.label} total is 0-{instrument.max_total}")
    return next(severity for floor, severity in _BANDS[instrument] if total >= floor)


@dataclass(frozen=True)
class MeasureScore:
    instrument: Instrument
    answers: tuple[int, ...]
    total: int
    severity: Severity
    item9_positive: bool

    def __post_init__(self) -> None:
        instrument = Instrument(self.instrument)
        object.__setattr__(self, "instrument", instrument)
        object.__setattr__(self, "severity", Severity(self.severity))
        if len(self.answers) != instrument.items:
            raise ValueError(f"{instrument.label} has {instrument.items} answers")
        if not all(_is_answer(a) for a in self.answers):
            raise ValueError(f"answers are whole numbers 0-{MAX_ANSWER}")
        if self.total != sum(self.answers):
            raise ValueError("the total is the sum of the answers")
        if self.severity != severity_of(instrument, self.total):
            raise ValueError("the severity is the band of the total")
        if self.item9_positive != _item9_positive(instrument, self.answers):
            raise ValueError("item9_positive is PHQ-9 item 9 above zero")

    def to_json(self) -> dict[str, Any]:
        return {
            "instrument": str(self.instrument),
            "answers": list(self.answers),
            "total": self.total,
            "severity": str(self.severity),
            "item9_positive": self.item9_positive,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MeasureScore:
        """Read back a stored score; it is checked again on construction."""
        return cls(
            instrument=Instrument(data["instrument"]),
            answers=tuple(data["answers"]),
            total=data["total"],
            severity=Severity(data["severity"]),
            item9_positive=data["item9_positive"],
        )


def _is_answer(value: object) -> bool:
    # bool is an int in Python, but True is not an answer a questionnaire has.
    return type(value) is int and 0 <= value <= MAX_ANSWER


def _item9_positive(instrument: Instrument, answers: tuple[int, ...]) -> bool:
    return instrument == Instrument.PHQ9 and answers[SAFETY_ITEM - 1] > 0


def _invalid(message: str, location: str) -> TriadError:
    return TriadError(ErrorCode.MEASURE_INVALID, message, [FieldError(location, message)])


def score(instrument: str, answers: object) -> MeasureScore:
    """Score a questionnaire; `measure_invalid` for an unknown instrument, a wrong number of
    answers, or an answer that is not a whole number 0-3. Messages name positions, never
    values (the answers are clinical)."""
    try:
        kind = Instrument(instrument)
    except ValueError:
        raise _invalid("the instrument must be phq9 or gad7", "/instrument") from None
    if not isinstance(answers, list | tuple):
        raise _invalid("answers must be a list", "/answers")
    if len(answers) != kind.items:
        raise _invalid(f"{kind.label} takes exactly {kind.items} answers", "/answers")
    for i, answer in enumerate(answers):
        if not _is_answer(answer):
            raise _invalid(f"each answer is a whole number 0-{MAX_ANSWER}", f"/answers/{i}")
    values = tuple(int(a) for a in answers)
    total = sum(values)
    return MeasureScore(
        instrument=kind,
        answers=values,
        total=total,
        severity=severity_of(kind, total),
        item9_positive=_item9_positive(kind, values),
    )
