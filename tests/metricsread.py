"""Reading `/metrics` in tests: the exposition parsed by prometheus-client's own text parser
(never by hand), as samples by name and labels; and the shapes no label value may take."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

# What server/ids.py makes: a prefix and url-safe base64 of 12 bytes (16 characters), and
# token ids (base64 of 16 bytes). A label value shaped like one would name a consult or person.
ID_SHAPE = re.compile(r"(?:^|[^A-Za-z0-9])[a-z]{1,4}_[A-Za-z0-9_-]{16}(?:$|[^A-Za-z0-9_-])")
# (Random base64 has a capital or a digit; an error code of 22 letters has neither.)
TOKEN_ID_SHAPE = re.compile(r"^(?=.*[A-Z0-9])[A-Za-z0-9_-]{22}$")
# Route patterns name their ids as parameters, never as values.
ROUTE_SHAPE = re.compile(r"^(?:unmatched|/[A-Za-z0-9_./{}-]*)$")
# Every other label value: a short lower-case word (a state, kind, outcome, error code).
WORD_SHAPE = re.compile(r"^[a-z][a-z_]{0,39}$")
STATUS_SHAPE = re.compile(r"^[1-5][0-9]{2}$")
METHOD_SHAPE = re.compile(r"^(?:GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS|other)$")
# Histogram buckets: a number or +Inf.
LE_SHAPE = re.compile(r"^(?:\+Inf|[0-9.e+-]+)$")

Key = tuple[str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True)
class Scrape:
    text: str
    samples: dict[Key, float]

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 when it is not there (yet)."""
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def total(self, name: str, **labels: str) -> float:
        """The sum over every sample of `name` whose labels include `labels`."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and wanted <= set(ls))

    def label_values(self) -> Iterable[tuple[str, str, str]]:
        for name, labels in self.samples:
            for label, value in labels:
                yield name, label, value


def parse(text: str) -> Scrape:
    samples: dict[Key, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return Scrape(text, samples)


def label_problems(scrape: Scrape) -> list[str]:
    """Every label value that is not of its label's fixed shape, or looks like an id."""
    problems = []
    for name, label, value in scrape.label_values():
        shape = {
            "route": ROUTE_SHAPE,
            "status": STATUS_SHAPE,
            "method": METHOD_SHAPE,
            "le": LE_SHAPE,
        }.get(label, WORD_SHAPE)
        if not shape.fullmatch(value) or ID_SHAPE.search(value) or TOKEN_ID_SHAPE.match(value):
            problems.append(f"{name} {label}={value!r}")
    return problems
