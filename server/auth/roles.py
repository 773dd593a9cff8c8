"""The roles of a consult and what each may do.

Every consult seats a client, a therapist and a psychiatrist. A platform may add a guardian (only
for a client marked as a minor) and an interpreter, one of each at most. What each role may read
and write of the notes is decided in `server/notes/documents.py`; the table is in docs/api.md.
"""

from __future__ import annotations

from enum import StrEnum

from ..errors import ErrorCode, TriadError


class Role(StrEnum):
    # The order is the order participants are listed in, and the FHIR resource numbering of
    # the first three (`server/notes/fhir.py`): add new roles at the end.
    CLIENT = "client"
    THERAPIST = "therapist"
    PSYCHIATRIST = "psychiatrist"
    GUARDIAN = "guardian"
    INTERPRETER = "interpreter"


# Every consult has exactly one of each of these...
REQUIRED_ROLES: frozenset[Role] = frozenset({Role.CLIENT, Role.THERAPIST, Role.PSYCHIATRIST})
# ...and at most one of each of these.
OPTIONAL_ROLES: frozenset[Role] = frozenset({Role.GUARDIAN, Role.INTERPRETER})

# Therapist and psychiatrist co-host: either can admit, remove and end, so a room is never left
# with nobody able to admit when one clinician drops (a known weakness of single-moderator lobbies).
# The optional seats are never hosts: they wait in the lobby like the client.
HOST_ROLES: frozenset[Role] = frozenset({Role.THERAPIST, Role.PSYCHIATRIST})


def is_host(role: Role) -> bool:
    return role in HOST_ROLES


def require_host(role: Role, action: str) -> None:
    if not is_host(role):
        raise TriadError(
            ErrorCode.FORBIDDEN_ROLE, f"only the therapist or psychiatrist may {action}"
        )
