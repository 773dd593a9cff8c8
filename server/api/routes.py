"""Every REST operation Triad serves, in one table."""

from __future__ import annotations

from aiohttp import web

from ..errors import ErrorCode
from . import consults, health, openapi, participants, plans
from .operations import FHIR_JSON_TYPE, MARKDOWN_TYPE, Call, Operation, Reply, add_routes
from .schemas import (
    AuditPageOut,
    CliniciansNotesOut,
    ConsultCreatedOut,
    ConsultOut,
    CreateConsultIn,
    FhirBundleOut,
    HealthOut,
    IssuedTokenOut,
    MintTokenIn,
    OpenApiDocumentOut,
    PlanOut,
    ReadyOut,
    RevokedOut,
    SessionOut,
)

API = "/api/v1"
CONSULT = API + "/consults/{consult_id}"
PARTICIPANT_TOKENS = CONSULT + "/participants/{participant_id}/tokens"
OPENAPI_KEY = web.AppKey("triad.api.openapi", OpenApiDocumentOut)


async def _openapi_document(call: Call) -> Reply:
    return Reply(200, call.request.app[OPENAPI_KEY])


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "POST",
        API + "/consults",
        "createConsult",
        "Create a consult with its client, therapist and psychiatrist",
        consults.create_consult,
        auth="api_key",
        body=CreateConsultIn,
        responses={201: ("The consult, with each participant's join link", ConsultCreatedOut)},
        errors=(ErrorCode.IDEMPOTENCY_KEY_REUSED, ErrorCode.CONSULT_ENDED),
        tags=("consults",),
        request_headers=consults.CREATE_REQUEST_HEADERS,
        response_headers=consults.CREATE_RESPONSE_HEADERS,
    ),
    Operation(
        "GET",
        CONSULT,
        "getConsult",
        "Read a consult",
        consults.get_consult,
        auth="api_key",
        responses={200: ("The consult", ConsultOut)},
        errors=(ErrorCode.CONSULT_NOT_FOUND,),
        tags=("consults",),
    ),
    Operation(
        "POST",
        CONSULT + "/end",
        "endConsult",
        "End a consult (idempotent: ending an ended consult changes nothing)",
        consults.end_consult,
        auth="api_key",
        responses={200: ("The ended consult", ConsultOut)},
        errors=(ErrorCode.CONSULT_NOT_FOUND,),
        tags=("consults",),
    ),
    Operation(
        "POST",
        PARTICIPANT_TOKENS,
        "mintJoinToken",
        "Mint a fresh join token and link for a participant",
        consults.mint_token,
        auth="api_key",
        body=MintTokenIn,
        body_required=False,
        responses={201: ("The new join token", IssuedTokenOut)},
        errors=(
            ErrorCode.CONSULT_NOT_FOUND,
            ErrorCode.PARTICIPANT_NOT_FOUND,
            ErrorCode.CONSULT_ENDED,
        ),
        tags=("join tokens",),
    ),
    Operation(
        "DELETE",
        PARTICIPANT_TOKENS,
        "revokeJoinTokens",
        "Revoke every join token of a participant issued until now",
        consults.revoke_tokens,
        auth="api_key",
        responses={200: ("When the revocation took effect", RevokedOut)},
        errors=(ErrorCode.CONSULT_NOT_FOUND, ErrorCode.PARTICIPANT_NOT_FOUND),
        tags=("join tokens",),
    ),
    Operation(
        "GET",
        CONSULT + "/audit",
        "readAuditTrail",
        "Read the consult's audit trail, oldest first, a page at a time",
        consults.read_audit,
        auth="api_key",
        query=consults.AuditQuery,
        responses={200: ("A page of audit events", AuditPageOut)},
        errors=(ErrorCode.CONSULT_NOT_FOUND,),
        tags=("audit",),
    ),
    Operation(
        "GET",
        CONSULT + "/session",
        "readSession",
        "What a join token grants: the participant, the consult and who else is in it",
        participants.read_session,
        auth="join_token",
        responses={200: ("The participant's view of the consult", SessionOut)},
        errors=(ErrorCode.TOKEN_WRONG_CONSULT, ErrorCode.CONSULT_ENDED),
        tags=("participants",),
    ),
    # --- Notes and plans (the notes channel's block) ---
    Operation(
        "GET",
        CONSULT + "/plan",
        "getPlan",
        "Read the treatment plan saved when the consult ended",
        plans.get_plan,
        auth="api_key",
        responses={200: ("The plan (without the clinicians' private notes)", PlanOut)},
        alternates=(MARKDOWN_TYPE,),
        description="JSON by default; `Accept: text/markdown` answers the Markdown rendering.",
        errors=(ErrorCode.CONSULT_NOT_FOUND, ErrorCode.PLAN_NOT_FOUND),
        tags=("plans",),
    ),
    Operation(
        "GET",
        CONSULT + "/plan/fhir",
        "getPlanFhir",
        "The saved plan as a FHIR R4B Bundle",
        plans.get_plan_fhir,
        auth="api_key",
        media_type=FHIR_JSON_TYPE,
        responses={200: ("A Bundle of type collection", FhirBundleOut)},
        errors=(ErrorCode.CONSULT_NOT_FOUND, ErrorCode.PLAN_NOT_FOUND),
        tags=("plans",),
    ),
    Operation(
        "GET",
        CONSULT + "/session/plan",
        "readSessionPlan",
        "A participant reads the saved plan (join token; also after the consult ended)",
        plans.read_session_plan,
        # A plan exists only after the end, so this token check accepts an ended consult.
        auth="join_token",
        allow_ended=True,
        responses={200: ("The plan (without the clinicians' private notes)", PlanOut)},
        errors=(ErrorCode.TOKEN_WRONG_CONSULT, ErrorCode.PLAN_NOT_FOUND),
        alternates=(MARKDOWN_TYPE,),
        tags=("participants", "plans"),
    ),
    Operation(
        "GET",
        CONSULT + "/session/notes/clinicians",
        "readCliniciansNotes",
        "The clinicians' private notes: therapist and psychiatrist only (join token)",
        plans.read_clinicians_notes,
        auth="join_token",
        allow_ended=True,
        responses={200: ("The notes' text, live or as saved at the end", CliniciansNotesOut)},
        errors=(ErrorCode.TOKEN_WRONG_CONSULT, ErrorCode.FORBIDDEN_ROLE),
        tags=("participants", "plans"),
        description="A client's token is refused with forbidden_role.",
    ),
    # --- end of the notes block ---
    Operation(
        "GET",
        "/healthz",
        "healthz",
        "Liveness: the process answers",
        health.healthz,
        auth="none",
        responses={200: ("Alive", HealthOut)},
        tags=("operations",),
    ),
    Operation(
        "GET",
        "/readyz",
        "readyz",
        "Readiness: the database (and Redis, when configured) answer",
        health.readyz,
        auth="none",
        responses={200: ("Ready", ReadyOut)},
        errors=(ErrorCode.NOT_READY,),
        tags=("operations",),
    ),
    Operation(
        "GET",
        API + "/openapi.json",
        "openapiDocument",
        "This OpenAPI 3.1 document",
        _openapi_document,
        auth="none",
        responses={200: ("The document", OpenApiDocumentOut)},
        tags=("operations",),
    ),
)


def setup(app: web.Application, version: str) -> None:
    app[OPENAPI_KEY] = OpenApiDocumentOut.model_validate(openapi.build(OPERATIONS, version=version))
    add_routes(app, OPERATIONS)
