"""The three notes documents of a consult and who may read or write each.

The rules follow the HIPAA split in `../shared/reference.md`: the treatment plan and the client's
own questions are client-visible; the clinicians' private document is a psychotherapy-notes-like
record that the client never receives, not even as an empty update.

The checks an update's bytes pass are in `intake.py`.
"""

from __future__ import annotations

from enum import StrEnum

from ..auth.roles import HOST_ROLES, Role
from ..errors import ErrorCode, TriadError


class DocumentName(StrEnum):
    PLAN = "plan"
    CLIENT = "client"
    CLINICIANS = "clinicians"


_ALL_ROLES: frozenset[Role] = frozenset(Role)

_READERS: dict[DocumentName, frozenset[Role]] = {
    DocumentName.PLAN: _ALL_ROLES,
    DocumentName.CLIENT: _ALL_ROLES,
    DocumentName.CLINICIANS: HOST_ROLES,
}
_WRITERS: dict[DocumentName, frozenset[Role]] = {
    DocumentName.PLAN: HOST_ROLES,
    DocumentName.CLIENT: frozenset({Role.CLIENT}),
    DocumentName.CLINICIANS: HOST_ROLES,
}


def may_read(role: Role, doc: DocumentName) -> bool:
    return role in _READERS[doc]


def may_write(role: Role, doc: DocumentName) -> bool:
    return role in _WRITERS[doc]


def readable_by(role: Role) -> tuple[DocumentName, ...]:
    """The documents a role receives, e.g. to pick the sockets a fan-out goes to."""
    return tuple(doc for doc in DocumentName if may_read(role, doc))


def parse_document(name: object) -> DocumentName:
    """The document a caller named; anything else is `notes_document_unknown`. The name is not
    echoed: it comes from the wire and could be anything."""
    if isinstance(name, str):
        try:
            return DocumentName(name)
        except ValueError:
            pass
    raise TriadError(
        ErrorCode.NOTES_DOCUMENT_UNKNOWN, "the notes document must be plan, client or clinicians"
    )


def require_read(role: Role, doc: DocumentName) -> None:
    if not may_read(role, doc):
        raise TriadError(ErrorCode.FORBIDDEN_ROLE, f"a {role} may not read the {doc} document")


def require_write(role: Role, doc: DocumentName) -> None:
    if not may_write(role, doc):
        raise TriadError(ErrorCode.FORBIDDEN_ROLE, f"a {role} may not write the {doc} document")
