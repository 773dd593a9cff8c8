"""The plan as Markdown, for people and for systems that file documents.

Text typed in the consult is escaped so that it reads as written: a `#` or `<script>` typed into
a field renders as those characters, never as a heading or HTML.
"""

from __future__ import annotations

import re

from ..auth.roles import Role
from .plan import PlanMeasure, PlanView

_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>&~])")
ROLE_TITLES = {
    Role.CLIENT: "Client",
    Role.THERAPIST: "Therapist",
    Role.PSYCHIATRIST: "Psychiatrist",
    Role.GUARDIAN: "Guardian",
    Role.INTERPRETER: "Interpreter",
}
SECTION_TITLES = {
    "summary": "Presenting summary",
    "diagnoses": "Diagnoses",
    "medications": "Medications",
    "therapy_focus": "Therapy focus",
    "therapy_goals": "Therapy goals",
    "monitoring": "Monitoring",
    "follow_up": "Follow-up",
    "safety": "Safety considerations",
    "client_questions": "Client's questions",
    "client_goals": "Client's goals",
}


def escape(text: str) -> str:
    """Escape Markdown and HTML syntax; keep line breaks as hard breaks."""
    lines = [_SPECIAL.sub(r"\\\1", line) for line in text.splitlines()]
    return "  \n".join(lines)


def _para(text: str) -> list[str]:
    return [escape(text) if text else "_None recorded._", ""]


def _list(items: list[str]) -> list[str]:
    return [*(f"- {item}" for item in items), ""] if items else ["_None recorded._", ""]


def score_line(m: PlanMeasure) -> str:
    """`PHQ-9: 12 (moderate), 2026-11-22`, and the item-9 flag when it is raised."""
    s = m.score
    line = f"{s.instrument.label}: {s.total} ({str(s.severity).replace('_', ' ')}), "
    line += m.recorded_at.strftime("%Y-%m-%d")
    if s.item9_positive:
        line += "; **item 9 (thoughts of self-harm) above zero**"
    return line


def render(plan: PlanView) -> str:
    c = plan.content
    names = {a.participant_id: a.name for a in plan.attendance}
    out = [
        "# Treatment plan",
        "",
        f"Version {plan.version}, saved {plan.created_at.strftime('%Y-%m-%d %H:%M UTC')}.",
    ]
    if plan.previous is not None:
        out.append(
            f"Follows version {plan.previous.version} (consult {escape(plan.previous.consult_id)})."
        )
    if plan.brief_attached:
        out.append("A hand-off brief from the therapist is attached (for the clinicians).")
    out += ["", "## Attendance", ""]
    for a in plan.attendance:
        status = "attended" if a.attended else "did not attend"
        if a.present_via is not None:
            status += (
                f", in the same room as {escape(names.get(a.present_via, 'another participant'))}"
            )
        out.append(f"- {ROLE_TITLES[a.role]}: {escape(a.name)} ({status})")
    out += ["", "## " + SECTION_TITLES["summary"], "", *_para(c.summary)]
    out += ["## " + SECTION_TITLES["diagnoses"], ""]
    out += _list(
        [
            escape(d.name) + (f" ({escape(d.icd10)})" if d.icd10 else "") + f", {d.status}"
            for d in c.diagnoses
        ]
    )
    out += ["## " + SECTION_TITLES["medications"], ""]
    meds = []
    for m in c.medications:
        parts = [f"**{escape(m.name)}**"]
        if m.action:
            parts.append(str(m.action))
        parts += [escape(p) for p in (m.dose, m.schedule) if p]
        line = ", ".join(parts)
        if m.side_effects:
            line += f"; side effects to watch: {escape(m.side_effects)}"
        meds.append(line)
    out += _list(meds)
    out += ["## Therapy", "", "### Focus", "", *_para(c.therapy_focus)]
    out += ["### Goals", "", *_list([escape(g) for g in c.therapy_goals])]
    out += ["## " + SECTION_TITLES["monitoring"], ""]
    out += _list(
        [escape(m.measure) + (f": {escape(m.when)}" if m.when else "") for m in c.monitoring]
    )
    if plan.measures:
        out += ["### Check-in scores", "", *_list([score_line(m) for m in plan.measures])]
    out += ["## " + SECTION_TITLES["follow_up"], ""]
    f = c.follow_up
    if f.empty:
        out += ["_None recorded._", ""]
    else:
        when = " ".join(p for p in (f.date.isoformat() if f.date else "", escape(f.when)) if p)
        out += [f"- When: {when or 'not set'}", f"- With: {escape(f.with_whom) or 'not set'}", ""]
    out += ["## " + SECTION_TITLES["safety"], "", *_para(c.safety)]
    out += ["## The client's own notes", "", "### Questions", ""]
    out += _list([escape(q) for q in c.client_questions])
    out += ["### Goals", "", *_list([escape(g) for g in c.client_goals])]
    out += ["## Authors", ""]
    for section, refs in plan.authors.items():
        if refs:
            who = ", ".join(
                f"{escape(names.get(r.participant_id, r.participant_id))} ({r.role})" for r in refs
            )
            out.append(f"- {SECTION_TITLES[section]}: {who}")
    return "\n".join(out).rstrip() + "\n"
