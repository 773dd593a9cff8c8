"""Every error Triad reports, with its stable code.

Codes are part of the public contract (REST problem responses, Socket.IO acknowledgements): add
new ones, never rename or reuse one. The HTTP status lives beside the code so that the REST edge
and the docs agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from http import HTTPStatus
from typing import Any


class ErrorCode(StrEnum):
    # Join tokens
    TOKEN_INVALID = "token_invalid"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_NOT_YET_VALID = "token_not_yet_valid"
    TOKEN_REVOKED = "token_revoked"
    TOKEN_WRONG_CONSULT = "token_wrong_consult"
    # Platform API keys
    API_KEY_MISSING = "api_key_missing"
    API_KEY_INVALID = "api_key_invalid"
    # Permissions
    FORBIDDEN_ROLE = "forbidden_role"
    # Consults and participants
    CONSULT_NOT_FOUND = "consult_not_found"
    CONSULT_ENDED = "consult_ended"
    PARTICIPANT_NOT_FOUND = "participant_not_found"
    # Requests
    VALIDATION_FAILED = "validation_failed"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    INVALID_JSON = "invalid_json"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    # Consult room (Socket.IO)
    NOT_JOINED = "not_joined"
    NOT_ADMITTED = "not_admitted"
    LOBBY_DENIED = "lobby_denied"
    REMOVED = "removed"
    CONNECTION_REPLACED = "connection_replaced"
    UNKNOWN_EVENT = "unknown_event"
    RATE_LIMITED = "rate_limited"
    JOIN_TIMEOUT = "join_timeout"
    # Media negotiation
    SDP_INVALID = "sdp_invalid"
    NO_PENDING_OFFER = "no_pending_offer"
    CANDIDATE_INVALID = "candidate_invalid"
    CANDIDATE_ADDRESS_REFUSED = "candidate_address_refused"
    CANDIDATES_EXHAUSTED = "candidates_exhausted"
    # Screen share
    SHARE_IN_PROGRESS = "share_in_progress"
    SHARE_NOT_ALLOWED = "share_not_allowed"
    # Shared notes and plans
    NOTES_DOCUMENT_UNKNOWN = "notes_document_unknown"
    NOTES_UPDATE_INVALID = "notes_update_invalid"
    NOTES_UPDATE_TOO_LARGE = "notes_update_too_large"
    NOTES_DOCUMENT_TOO_LARGE = "notes_document_too_large"
    NOTES_CLIENT_ID_TAKEN = "notes_client_id_taken"
    PLAN_NOT_FOUND = "plan_not_found"
    # The care workflow: consent, hand-off brief, check-in measures, follow-ups, same room
    CONSENT_REQUIRED = "consent_required"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    CONSENT_WORDING_OUTDATED = "consent_wording_outdated"
    SAME_ROOM_REQUIRED = "same_room_required"
    PRESENCE_NOT_DECLARED = "presence_not_declared"
    PRESENCE_CONFIRMATION_REFUSED = "presence_confirmation_refused"
    CHECKINS_LIMIT_REACHED = "checkins_limit_reached"
    BRIEF_NOT_FOUND = "brief_not_found"
    MEASURE_INVALID = "measure_invalid"
    PREVIOUS_CONSULT_INVALID = "previous_consult_invalid"
    # Webhooks
    WEBHOOK_ENDPOINT_NOT_FOUND = "webhook_endpoint_not_found"
    WEBHOOK_URL_REFUSED = "webhook_url_refused"
    WEBHOOK_ENDPOINTS_LIMIT_REACHED = "webhook_endpoints_limit_reached"
    WEBHOOK_DELIVERY_NOT_FOUND = "webhook_delivery_not_found"
    WEBHOOK_DELIVERY_PENDING = "webhook_delivery_pending"
    # Workers (scale-out)
    WRONG_WORKER = "wrong_worker"
    PLACEMENT_UNAVAILABLE = "placement_unavailable"
    WORKER_LEAVING = "worker_leaving"
    # Metrics (`/metrics`)
    METRICS_TOKEN_MISSING = "metrics_token_missing"
    METRICS_TOKEN_INVALID = "metrics_token_invalid"
    METRICS_NOT_EXPOSED = "metrics_not_exposed"
    # Service
    NOT_READY = "not_ready"
    INTERNAL = "internal"


@dataclass(frozen=True)
class ErrorSpec:
    status: HTTPStatus
    title: str


ERROR_SPECS: dict[ErrorCode, ErrorSpec] = {
    ErrorCode.TOKEN_INVALID: ErrorSpec(HTTPStatus.UNAUTHORIZED, "The join token is not valid"),
    ErrorCode.TOKEN_EXPIRED: ErrorSpec(HTTPStatus.UNAUTHORIZED, "The join token has expired"),
    ErrorCode.TOKEN_NOT_YET_VALID: ErrorSpec(
        HTTPStatus.UNAUTHORIZED, "The join token is not valid yet"
    ),
    ErrorCode.TOKEN_REVOKED: ErrorSpec(HTTPStatus.UNAUTHORIZED, "The join token was revoked"),
    ErrorCode.TOKEN_WRONG_CONSULT: ErrorSpec(
        HTTPStatus.FORBIDDEN, "The join token is for another consult"
    ),
    ErrorCode.API_KEY_MISSING: ErrorSpec(HTTPStatus.UNAUTHORIZED, "An API key is required"),
    ErrorCode.API_KEY_INVALID: ErrorSpec(
        HTTPStatus.UNAUTHORIZED, "The API key is unknown or revoked"
    ),
    ErrorCode.FORBIDDEN_ROLE: ErrorSpec(
        HTTPStatus.FORBIDDEN, "This role may not do that in this consult"
    ),
    ErrorCode.CONSULT_NOT_FOUND: ErrorSpec(HTTPStatus.NOT_FOUND, "No such consult"),
    ErrorCode.CONSULT_ENDED: ErrorSpec(HTTPStatus.CONFLICT, "The consult has ended"),
    ErrorCode.PARTICIPANT_NOT_FOUND: ErrorSpec(
        HTTPStatus.NOT_FOUND, "No such participant in this consult"
    ),
    ErrorCode.VALIDATION_FAILED: ErrorSpec(
        HTTPStatus.UNPROCESSABLE_ENTITY, "The request is not valid"
    ),
    ErrorCode.IDEMPOTENCY_KEY_REUSED: ErrorSpec(
        HTTPStatus.UNPROCESSABLE_ENTITY, "The Idempotency-Key was used for a different request"
    ),
    ErrorCode.INVALID_JSON: ErrorSpec(HTTPStatus.BAD_REQUEST, "The body is not valid JSON"),
    ErrorCode.PAYLOAD_TOO_LARGE: ErrorSpec(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "The request body is too large"
    ),
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: ErrorSpec(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "The body must be application/json"
    ),
    ErrorCode.NOT_FOUND: ErrorSpec(HTTPStatus.NOT_FOUND, "No such resource"),
    ErrorCode.METHOD_NOT_ALLOWED: ErrorSpec(
        HTTPStatus.METHOD_NOT_ALLOWED, "Method not allowed on this resource"
    ),
    ErrorCode.NOT_JOINED: ErrorSpec(HTTPStatus.CONFLICT, "Send join first"),
    ErrorCode.NOT_ADMITTED: ErrorSpec(
        HTTPStatus.FORBIDDEN, "Waiting in the lobby until a host admits you"
    ),
    ErrorCode.LOBBY_DENIED: ErrorSpec(HTTPStatus.FORBIDDEN, "A host did not admit you"),
    ErrorCode.REMOVED: ErrorSpec(HTTPStatus.FORBIDDEN, "A host removed you from the consult"),
    ErrorCode.CONNECTION_REPLACED: ErrorSpec(
        HTTPStatus.CONFLICT, "The same participant connected again elsewhere"
    ),
    ErrorCode.UNKNOWN_EVENT: ErrorSpec(HTTPStatus.BAD_REQUEST, "No such event"),
    ErrorCode.RATE_LIMITED: ErrorSpec(HTTPStatus.TOO_MANY_REQUESTS, "Too many requests"),
    ErrorCode.JOIN_TIMEOUT: ErrorSpec(
        HTTPStatus.REQUEST_TIMEOUT, "The socket did not join in time after connecting"
    ),
    ErrorCode.SDP_INVALID: ErrorSpec(
        HTTPStatus.BAD_REQUEST, "The session description is not valid"
    ),
    ErrorCode.NO_PENDING_OFFER: ErrorSpec(HTTPStatus.CONFLICT, "There is no offer to answer"),
    ErrorCode.CANDIDATE_INVALID: ErrorSpec(
        HTTPStatus.BAD_REQUEST, "The ICE candidate is not valid"
    ),
    ErrorCode.CANDIDATE_ADDRESS_REFUSED: ErrorSpec(
        HTTPStatus.FORBIDDEN, "The server does not send checks to that kind of address"
    ),
    ErrorCode.CANDIDATES_EXHAUSTED: ErrorSpec(
        HTTPStatus.TOO_MANY_REQUESTS, "Too many ICE candidates for this peer connection"
    ),
    ErrorCode.SHARE_IN_PROGRESS: ErrorSpec(
        HTTPStatus.CONFLICT, "Someone else is sharing their screen"
    ),
    ErrorCode.SHARE_NOT_ALLOWED: ErrorSpec(
        HTTPStatus.FORBIDDEN, "A host has not allowed the client to share their screen"
    ),
    ErrorCode.NOTES_DOCUMENT_UNKNOWN: ErrorSpec(HTTPStatus.BAD_REQUEST, "No such notes document"),
    ErrorCode.NOTES_UPDATE_INVALID: ErrorSpec(
        HTTPStatus.BAD_REQUEST, "The notes update does not decode"
    ),
    ErrorCode.NOTES_UPDATE_TOO_LARGE: ErrorSpec(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "The notes update is too large"
    ),
    ErrorCode.NOTES_DOCUMENT_TOO_LARGE: ErrorSpec(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "The notes document would grow past its size cap"
    ),
    ErrorCode.NOTES_CLIENT_ID_TAKEN: ErrorSpec(
        HTTPStatus.FORBIDDEN, "That awareness client id belongs to another participant"
    ),
    ErrorCode.PLAN_NOT_FOUND: ErrorSpec(
        HTTPStatus.NOT_FOUND, "No saved plan (a plan is saved when the consult ends)"
    ),
    ErrorCode.CONSENT_REQUIRED: ErrorSpec(
        HTTPStatus.CONFLICT, "Consent to the session and to sharing is not on record"
    ),
    ErrorCode.CONSENT_WITHDRAWN: ErrorSpec(
        HTTPStatus.FORBIDDEN, "Consent to the clinicians sharing information was withdrawn"
    ),
    ErrorCode.CONSENT_WORDING_OUTDATED: ErrorSpec(
        HTTPStatus.CONFLICT, "The consent wording shown is not the current version"
    ),
    ErrorCode.SAME_ROOM_REQUIRED: ErrorSpec(
        HTTPStatus.CONFLICT, "The client's presence with this clinician is not in effect"
    ),
    ErrorCode.PRESENCE_NOT_DECLARED: ErrorSpec(
        HTTPStatus.CONFLICT, "Nobody declared that participant present at that device"
    ),
    ErrorCode.PRESENCE_CONFIRMATION_REFUSED: ErrorSpec(
        HTTPStatus.FORBIDDEN, "Not yours to confirm: the person declared, or another clinician"
    ),
    ErrorCode.CHECKINS_LIMIT_REACHED: ErrorSpec(
        HTTPStatus.CONFLICT, "The consult has the most check-ins it may hold"
    ),
    ErrorCode.BRIEF_NOT_FOUND: ErrorSpec(HTTPStatus.NOT_FOUND, "No hand-off brief is attached"),
    ErrorCode.MEASURE_INVALID: ErrorSpec(
        HTTPStatus.UNPROCESSABLE_ENTITY, "The questionnaire answers are not valid"
    ),
    ErrorCode.PREVIOUS_CONSULT_INVALID: ErrorSpec(
        HTTPStatus.CONFLICT, "The previous consult is unknown, not ended, or has no saved plan"
    ),
    ErrorCode.WEBHOOK_ENDPOINT_NOT_FOUND: ErrorSpec(
        HTTPStatus.NOT_FOUND, "No such webhook endpoint"
    ),
    ErrorCode.WEBHOOK_URL_REFUSED: ErrorSpec(
        HTTPStatus.UNPROCESSABLE_ENTITY, "The URL may not receive webhooks"
    ),
    ErrorCode.WEBHOOK_ENDPOINTS_LIMIT_REACHED: ErrorSpec(
        HTTPStatus.CONFLICT, "The platform has as many webhook endpoints as it may"
    ),
    ErrorCode.WEBHOOK_DELIVERY_NOT_FOUND: ErrorSpec(
        HTTPStatus.NOT_FOUND, "No such delivery at this endpoint"
    ),
    ErrorCode.WEBHOOK_DELIVERY_PENDING: ErrorSpec(
        HTTPStatus.CONFLICT, "The delivery is still being attempted"
    ),
    ErrorCode.WRONG_WORKER: ErrorSpec(
        HTTPStatus.MISDIRECTED_REQUEST, "Another worker serves this consult: connect there"
    ),
    ErrorCode.PLACEMENT_UNAVAILABLE: ErrorSpec(
        HTTPStatus.SERVICE_UNAVAILABLE, "No worker can take the consult right now"
    ),
    ErrorCode.WORKER_LEAVING: ErrorSpec(
        HTTPStatus.SERVICE_UNAVAILABLE, "This worker stops serving the consult: find it again"
    ),
    ErrorCode.METRICS_TOKEN_MISSING: ErrorSpec(
        HTTPStatus.UNAUTHORIZED, "The metrics token is required (a Bearer credential)"
    ),
    ErrorCode.METRICS_TOKEN_INVALID: ErrorSpec(
        HTTPStatus.UNAUTHORIZED, "The metrics token is not the configured one"
    ),
    ErrorCode.METRICS_NOT_EXPOSED: ErrorSpec(
        HTTPStatus.FORBIDDEN,
        "Metrics are served to loopback callers in development, or with TRIAD_METRICS_TOKEN",
    ),
    ErrorCode.NOT_READY: ErrorSpec(HTTPStatus.SERVICE_UNAVAILABLE, "The service is not ready"),
    ErrorCode.INTERNAL: ErrorSpec(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal error"),
}


@dataclass
class FieldError:
    """One field a validation error names; `location` is a JSON-pointer-like path."""

    location: str
    message: str


@dataclass
class TriadError(Exception):
    """An error with a stable code. `message` is for humans and must hold no secret or PHI."""

    code: ErrorCode
    message: str
    field_errors: list[FieldError] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(f"{self.code}: {self.message}")

    @property
    def spec(self) -> ErrorSpec:
        return ERROR_SPECS[self.code]

    def as_ack(self) -> dict[str, Any]:
        """The `{code, message}` form used in Socket.IO acknowledgements."""
        return {"code": str(self.code), "message": self.message}


class ConfigError(Exception):
    """A setting is missing or invalid; raised before the server starts."""
