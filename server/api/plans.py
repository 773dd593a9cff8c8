"""The saved plan over REST: for the platform (API key) as JSON or FHIR, and for the consult's
participants (join token), also after the consult has ended, which is when a plan exists.

The clinicians' private notes have their own call, open to the therapist and psychiatrist only;
no other answer here ever holds them. Who may read what is `server/notes/documents.py`'s rule: the
saved plan (with the client's document in it) is read by whoever may read the live plan, so an
interpreter's token is refused both.
"""

from __future__ import annotations

from ..consults.audit import AuditAction
from ..consults.model import JoinIdentity
from ..errors import ErrorCode, TriadError
from ..ids import ConsultId
from ..notes.documents import DocumentName, require_read
from ..notes.fhir import build_bundle
from ..notes.plan import PlanView
from .context import SERVICES
from .operations import FHIR_JSON_TYPE, JSON_TYPE, MARKDOWN_TYPE, Call, Reply, preferred
from .reads import log_read
from .schemas import CliniciansNotesOut, FhirBundleOut, PlanOut


def plan_out(plan: PlanView) -> PlanOut:
    record = plan.to_json()
    if plan.brief_attached:
        record["brief"] = f"/api/v1/consults/{plan.consult_id}/session/brief"
    return PlanOut.model_validate(record)


async def _saved_plan(call: Call, consult_id: ConsultId) -> PlanView:
    plan = await call.request.app[SERVICES].notes.plan(consult_id)
    if plan is None:
        raise TriadError(ErrorCode.PLAN_NOT_FOUND, "no plan is saved for this consult yet")
    return plan


async def _platform_plan(call: Call) -> PlanView:
    consult_id = call.consult_id()
    # Ownership first: another platform's consult answers consult_not_found, like a missing one.
    await call.request.app[SERVICES].consults.get(call.caller(), consult_id)
    return await _saved_plan(call, consult_id)


def _participant(call: Call) -> JoinIdentity:
    if call.participant is None:  # the operations declare auth="join_token"
        raise RuntimeError("operation has no participant")
    return call.participant


async def _plan_reply(call: Call, plan: PlanView) -> Reply:
    if preferred(call.request, (JSON_TYPE, MARKDOWN_TYPE)) == MARKDOWN_TYPE:
        markdown = await call.request.app[SERVICES].notes.plan_markdown(plan.consult_id)
        if markdown is None:
            raise TriadError(ErrorCode.PLAN_NOT_FOUND, "no plan is saved for this consult yet")
        await log_read(call, plan.consult_id, AuditAction.PLAN_READ, format="markdown")
        return Reply(200, text=markdown, content_type=MARKDOWN_TYPE)
    await log_read(call, plan.consult_id, AuditAction.PLAN_READ, format="json")
    return Reply(200, plan_out(plan))


async def get_plan(call: Call) -> Reply:
    return await _plan_reply(call, await _platform_plan(call))


async def get_plan_fhir(call: Call) -> Reply:
    plan = await _platform_plan(call)
    # Consent is read now, not from the plan: a withdrawal after the end must show.
    consents = await call.request.app[SERVICES].consents.state(plan.consult_id)
    bundle = FhirBundleOut.model_validate(
        build_bundle(plan, consents=consents.records, assent=consents.assent)
    )
    await log_read(call, plan.consult_id, AuditAction.PLAN_READ, format="fhir")
    return Reply(200, bundle, content_type=FHIR_JSON_TYPE)


async def read_session_plan(call: Call) -> Reply:
    identity = _participant(call)
    require_read(identity.role, DocumentName.PLAN)
    return await _plan_reply(call, await _saved_plan(call, identity.consult_id))


async def read_clinicians_notes(call: Call) -> Reply:
    identity = _participant(call)
    require_read(identity.role, DocumentName.CLINICIANS)
    notes = call.request.app[SERVICES].notes
    saved = await notes.plan(identity.consult_id) is not None
    text = await notes.clinicians_notes(identity.consult_id)
    await log_read(call, identity.consult_id, AuditAction.NOTES_READ)
    return Reply(200, CliniciansNotesOut(consult_id=identity.consult_id, text=text, saved=saved))
