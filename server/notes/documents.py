"""The three notes documents of a consult and who may read or write each.

The rules follow the HIPAA split in `../shared/reference.md`: the treatment plan and the client's
own questions are client-visible; the clinicians' private document is a psychotherapy-notes-like
record that the client never receives, not even as an empty update.

The optional seats: a guardian reads what the client reads and writes in the client's document
on the child's behalf; an interpreter reads and writes nothing (the table is in docs/notes.md).

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


# The client's side of the consult: the client, and a minor's guardian on their behalf.
_CLIENT_SIDE: frozenset[Role] = frozenset({Role.CLIENT, Role.GUARDIAN})

# A role missing from every set (the interpreter) reads and writes nothing.
_READERS: dict[DocumentName, frozenset[Role]] = {
    DocumentName.PLAN: HOST_ROLES | _CLIENT_SIDE,
    DocumentName.CLIENT: HOST_ROLES | _CLIENT_SIDE,
    DocumentName.CLINICIANS: HOST_ROLES,
}
_WRITERS: dict[DocumentName, frozenset[Role]] = {
    DocumentName.PLAN: HOST_ROLES,
    DocumentName.CLIENT: _CLIENT_SIDE,
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
