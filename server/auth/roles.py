"""The three roles of a consult and what each may do."""

from __future__ import annotations

from enum import StrEnum

from ..errors import ErrorCode, TriadError


class Role(StrEnum):
    CLIENT = "client"
    THERAPIST = "therapist"
    PSYCHIATRIST = "psychiatrist"


# Therapist and psychiatrist co-host: either can admit, remove and end, so a room is never left
# with nobody able to admit when one clinician drops (a known weakness of single-moderator lobbies).
HOST_ROLES: frozenset[Role] = frozenset({Role.THERAPIST, Role.PSYCHIATRIST})


def is_host(role: Role) -> bool:
    return role in HOST_ROLES


def require_host(role: Role, action: str) -> None:
    if not is_host(role):
        raise TriadError(
            ErrorCode.FORBIDDEN_ROLE, f"only the therapist or psychiatrist may {action}"
        )
