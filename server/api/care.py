"""The care workflow over REST: the client's consent, same-room presence, the hand-off brief
and check-in measures, for participants (join token) and for the platform (API key).

Each change a live room must know of (consent, presence, a safety flag, the brief) is handed to
the room relay after it is stored: the room, on whichever worker holds the consult, re-reads
what the database says."""

from __future__ import annotations

from collections.abc import Sequence

from ..auth.roles import Role, require_host
from ..consults.audit import AuditAction
from ..consults.brief import BriefRecord
from ..consults.care import safety_flag
from ..consults.checkins import MeasureRecord
from ..consults.consent import ConsentState
from ..consults.model import Actor, Brief, ConsultStatus, JoinIdentity
from ..consults.presence import Declaration, PresentVia
from ..errors import ErrorCode, TriadError
from ..ids import ConsultId
from ..notes.diff import PlanChange
from ..notes.documents import DocumentName, require_read
from ..notes.plan import PlanView
from ..rooms.commands import RoomCommandKind
from .care_schemas import (
    BriefIn,
    BriefOut,
    ConfirmPresenceIn,
    ConsentRecordOut,
    ConsentStateOut,
    ConsentTextOut,
    ConsentWordingOut,
    DeclarationOut,
    GiveConsentIn,
    MeasureIn,
    MeasureOut,
    MeasuresOut,
    PlanChangeOut,
    PlanChangesOut,
    PlanDiffOut,
    PlanDiffQuery,
    PlanRefOut,
    PresentWithIn,
    PresentWithOut,
    SeriesOut,
    WithdrawConsentIn,
)
from .context import SERVICES
from .operations import Call, Reply
from .reads import log_read


def _participant(call: Call) -> JoinIdentity:
    if call.participant is None:  # the operations declare auth="join_token"
        raise RuntimeError("operation has no participant")
    return call.participant


def consent_out(state: ConsentState) -> ConsentStateOut:
    return ConsentStateOut(
        wording=ConsentWordingOut(
            version=state.wording.version,
            scopes=[
                ConsentTextOut(scope=scope.value, text=text)
                for scope, text in state.wording.texts.items()
            ],
        ),
        records=[ConsentRecordOut.model_validate(r, from_attributes=True) for r in state.records],
        consenting_role=state.consenting_role.value,
        assent=[ConsentRecordOut.model_validate(r, from_attributes=True) for r in state.assent],
        complete=state.complete,
        sharing_withdrawn=state.sharing_withdrawn,
    )


def brief_out(record: BriefRecord) -> BriefOut:
    return BriefOut(
        consult_id=record.consult_id,
        author_role=record.author_role,
        created_at=record.created_at,
        updated_at=record.updated_at,
        **record.brief.__dict__,
    )


def measure_out(record: MeasureRecord) -> MeasureOut:
    return MeasureOut.model_validate(record.to_json())


# --- consent -------------------------------------------------------------------------------


async def read_consent(call: Call) -> Reply:
    identity = _participant(call)
    state = await call.request.app[SERVICES].consents.state(identity.consult_id)
    await log_read(call, identity.consult_id, AuditAction.CONSENT_READ)
    return Reply(200, consent_out(state))


async def give_consent(call: Call) -> Reply:
    identity = _participant(call)
    body = call.body_as(GiveConsentIn)
    services = call.request.app[SERVICES]
    state = await services.consents.give(
        identity, wording_version=body.wording_version, scopes=body.scopes, attested=body.attested
    )
    await services.relay.tell(RoomCommandKind.CARE_CHANGED, identity.consult_id)
    return Reply(201, consent_out(state))


async def withdraw_consent(call: Call) -> Reply:
    identity = _participant(call)
    services = call.request.app[SERVICES]
    state = await services.consents.withdraw(
        identity, scopes=call.body_as(WithdrawConsentIn).scopes
    )
    await services.relay.tell(RoomCommandKind.CARE_CHANGED, identity.consult_id)
    return Reply(200, consent_out(state))


async def platform_consent(call: Call) -> Reply:
    services = call.request.app[SERVICES]
    consult = await services.consults.get(call.caller(), call.consult_id())
    state = await services.consents.state(consult.id)
    await log_read(call, consult.id, AuditAction.CONSENT_READ)
    return Reply(200, consent_out(state))


# --- same room -----------------------------------------------------------------------------


async def declare_present_with(call: Call) -> Reply:
    identity = _participant(call)
    services = call.request.app[SERVICES]
    declared = await services.care.declare_present_with(
        identity, call.body_as(PresentWithIn).participant_ids
    )
    await services.relay.tell(RoomCommandKind.CARE_CHANGED, identity.consult_id)
    return Reply(200, present_with_out(declared))


async def confirm_present_with(call: Call) -> Reply:
    identity = _participant(call)
    body = call.body_as(ConfirmPresenceIn)
    services = call.request.app[SERVICES]
    declared = await services.care.confirm_presence(identity, body.declarer_id, body.participant_id)
    await services.relay.tell(RoomCommandKind.CARE_CHANGED, identity.consult_id)
    return Reply(200, present_with_out(declared))


def present_with_out(declared: tuple[Declaration, ...]) -> PresentWithOut:
    return PresentWithOut(
        participant_ids=[d.participant_id for d in declared],
        declarations=[
            DeclarationOut(
                participant_id=d.participant_id,
                status=d.via.value,
                confirmed_by=d.by if d.via == PresentVia.CONFIRMED else None,
                attested_by=d.by if d.via == PresentVia.ATTESTED else None,
            )
            for d in declared
        ],
    )


# --- hand-off brief ------------------------------------------------------------------------


def _brief(body: BriefIn) -> Brief:
    return Brief(**body.model_dump())


async def read_session_brief(call: Call) -> Reply:
    identity = _participant(call)
    require_host(identity.role, "read the hand-off brief")
    services = call.request.app[SERVICES]
    if identity.role != Role.THERAPIST:
        # The brief is the therapist's to share; the client may stop the sharing.
        consents = await services.consents.state(identity.consult_id)
        if consents.sharing_withdrawn:
            raise TriadError(ErrorCode.CONSENT_WITHDRAWN, "consent to sharing was withdrawn")
    record = await services.briefs.get(
        identity.consult_id, actor=Actor("participant", identity.participant_id)
    )
    return Reply(200, brief_out(record))


async def write_session_brief(call: Call) -> Reply:
    identity = _participant(call)
    if identity.role != Role.THERAPIST:
        raise TriadError(ErrorCode.FORBIDDEN_ROLE, "the therapist writes the hand-off brief")
    services = call.request.app[SERVICES]
    record = await services.briefs.put(
        identity.consult_id,
        _brief(call.body_as(BriefIn)),
        author_role=Role.THERAPIST,
        actor=Actor("participant", identity.participant_id),
    )
    await services.relay.tell(RoomCommandKind.BRIEF_UPDATED, identity.consult_id)
    return Reply(200, brief_out(record))


async def _owned(call: Call) -> ConsultId:
    consult = await call.request.app[SERVICES].consults.get(call.caller(), call.consult_id())
    return consult.id


async def read_platform_brief(call: Call) -> Reply:
    consult_id = await _owned(call)
    record = await call.request.app[SERVICES].briefs.get(
        consult_id, actor=Actor("platform", call.caller().key_id)
    )
    return Reply(200, brief_out(record))


async def write_platform_brief(call: Call) -> Reply:
    services = call.request.app[SERVICES]
    consult = await services.consults.get(call.caller(), call.consult_id())
    if consult.status == ConsultStatus.ENDED:
        raise TriadError(ErrorCode.CONSULT_ENDED, "the consult has ended")
    record = await services.briefs.put(
        consult.id,
        _brief(call.body_as(BriefIn)),
        author_role="platform",
        actor=Actor("platform", call.caller().key_id),
    )
    await services.relay.tell(RoomCommandKind.BRIEF_UPDATED, consult.id)
    return Reply(200, brief_out(record))


# --- check-in measures ---------------------------------------------------------------------


async def record_measure(call: Call) -> Reply:
    identity = _participant(call)
    body = call.body_as(MeasureIn)
    services = call.request.app[SERVICES]
    record = await services.checkins.record(identity, body.instrument, body.answers)
    if safety_flag(record) is not None:
        # The room re-reads the flags (the message carries no answers).
        await services.relay.tell(RoomCommandKind.SAFETY_FLAG, identity.consult_id)
    return Reply(201, measure_out(record))


async def read_session_measures(call: Call) -> Reply:
    identity = _participant(call)
    # The results are part of the plan (its measures): its readers read them, nobody else.
    require_read(identity.role, DocumentName.PLAN)
    records = await call.request.app[SERVICES].checkins.of_series(identity.consult_id)
    await log_read(call, identity.consult_id, AuditAction.MEASURES_READ, count=len(records))
    return Reply(200, MeasuresOut(measures=[measure_out(r) for r in records]))


async def read_platform_measures(call: Call) -> Reply:
    consult_id = await _owned(call)
    records = await call.request.app[SERVICES].checkins.of_series(consult_id)
    await log_read(call, consult_id, AuditAction.MEASURES_READ, count=len(records))
    return Reply(200, MeasuresOut(measures=[measure_out(r) for r in records]))


# --- follow-up series ----------------------------------------------------------------------


def changes_out(changes: Sequence[PlanChange]) -> list[PlanChangeOut]:
    return [PlanChangeOut(path=c.path, section=c.section, kind=c.kind.value) for c in changes]


async def read_plan_changes(call: Call) -> Reply:
    """What changed in the plan since the consult it follows (the room shows it)."""
    identity = _participant(call)
    require_read(identity.role, DocumentName.PLAN)  # field paths of the plan are the plan's
    previous, changes = await call.request.app[SERVICES].notes.changes_since_previous(
        identity.consult_id
    )
    await log_read(
        call,
        identity.consult_id,
        AuditAction.PLAN_DIFF_READ,
        against=previous.consult_id if previous is not None else None,
    )
    return Reply(
        200,
        PlanChangesOut(
            previous=PlanRefOut(
                consult_id=previous.consult_id, plan_id=previous.plan_id, version=previous.version
            )
            if previous is not None
            else None,
            changes=changes_out(changes),
        ),
    )


async def read_series(call: Call) -> Reply:
    services = call.request.app[SERVICES]
    consult = await services.consults.get(call.caller(), call.consult_id())
    series_id = consult.series_id or consult.id
    plans = await services.notes.series_plans(series_id)
    await log_read(call, consult.id, AuditAction.SERIES_READ, series_id=series_id)
    return Reply(
        200,
        SeriesOut(
            series_id=series_id,
            plans=[
                PlanRefOut(
                    consult_id=p.consult_id,
                    plan_id=p.plan_id,
                    version=p.version,
                    created_at=p.created_at,
                )
                for p in plans
            ],
        ),
    )


async def read_plan_diff(call: Call) -> Reply:
    """The consult's saved plan against an earlier one of its series (by default the plan of
    the consult it follows)."""
    services = call.request.app[SERVICES]
    consult = await services.consults.get(call.caller(), call.consult_id())
    against = call.query_as(PlanDiffQuery).against or consult.follows_id
    if against is None:
        raise TriadError(
            ErrorCode.PLAN_NOT_FOUND, "this consult follows none: name one with `against`"
        )
    older_consult = await services.consults.get(call.caller(), ConsultId(against))  # owned
    older, newer, changes = await services.notes.diff_plans(older_consult.id, consult.id)
    await log_read(call, consult.id, AuditAction.PLAN_DIFF_READ, against=older_consult.id)
    return Reply(
        200,
        PlanDiffOut(older=_plan_ref(older), newer=_plan_ref(newer), changes=changes_out(changes)),
    )


def _plan_ref(plan: PlanView) -> PlanRefOut:
    return PlanRefOut(
        consult_id=plan.consult_id,
        plan_id=plan.id,
        version=plan.version,
        created_at=plan.created_at,
    )
