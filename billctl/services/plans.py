"""Price plans: create, edit (versioned once used), list, show, archive."""

from __future__ import annotations

import tomllib

from sqlmodel import Session, col, select

from billctl.core.bounds import quote
from billctl.core.plans import PlanError, parse_plan, plan_to_dict
from billctl.core.types import Plan as PlanSpec
from billctl.db.models import Plan
from billctl.errors import BadInput, Conflict, NotFound
from billctl.files import read_text
from billctl.services.context import App, audit


def read_plan_file(path: str) -> PlanSpec:
    """Parse and validate a plan TOML file; every problem is reported at once."""
    text = read_text(path, "plan file", BadInput)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"plan file {path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise BadInput(f"plan file {path}: invalid TOML: arrays or tables nested too deeply") from None
    try:
        return parse_plan(data)
    except PlanError as exc:
        raise BadInput(f"plan file {path} has {len(exc.problems):,} problem(s):\n{exc.report()}") from None


def latest(session: Session, code: str) -> Plan | None:
    return session.exec(select(Plan).where(Plan.code == code).order_by(col(Plan.version).desc())).first()


def get_plan(session: Session, code: str, version: int | None = None) -> Plan:
    if version is None:
        row = latest(session, code)
    else:
        row = session.exec(select(Plan).where(Plan.code == code, Plan.version == version)).first()
    if row is None:
        raise NotFound(
            f"unknown plan {quote(code)}" + (f" version {version}" if version else ""), hint="see `billctl plans list`"
        )
    return row


def create_plan(app: App, spec: PlanSpec) -> Plan:
    with app.uow() as uow:
        session = uow.session
        if latest(session, spec.code) is not None:
            raise Conflict(
                f"plan '{spec.code}' already exists",
                hint="edit it with `billctl plans update --file ...` (it keeps a version history)",
            )
        row = Plan(
            code=spec.code,
            version=1,
            currency=spec.currency,
            description=spec.description,
            definition=plan_to_dict(spec),
        )
        session.add(row)
        session.flush()
        audit(session, app, "plan.create", "plan", spec.code, version=1)
    return row


def update_plan(app: App, spec: PlanSpec) -> tuple[Plan, str]:
    """Edit a plan. Unused latest version: changed in place. Used by an invoice: a new version,
    so finalized invoices keep the version they were priced with. Returns (row, what happened)."""
    definition = plan_to_dict(spec)
    with app.uow() as uow:
        session = uow.session
        current = latest(session, spec.code)
        if current is None:
            raise NotFound(f"unknown plan '{spec.code}'", hint="create it with `billctl plans create --file ...`")
        if current.archived:
            raise Conflict(f"plan '{spec.code}' is archived")
        if current.definition == definition:
            return current, "unchanged"
        if current.currency != spec.currency:
            raise Conflict(
                f"plan '{spec.code}' is in {current.currency}; its currency cannot change",
                hint="create a plan with another name for another currency",
            )
        if current.used:
            row = Plan(
                code=spec.code,
                version=current.version + 1,
                currency=spec.currency,
                description=spec.description,
                definition=definition,
            )
            outcome = "new version"
        else:
            row = current
            row.definition, row.description = definition, spec.description
            outcome = "updated"
        session.add(row)
        session.flush()
        audit(session, app, "plan.update", "plan", spec.code, version=row.version, outcome=outcome)
    return row, outcome


def list_plans(app: App, include_archived: bool = False) -> list[Plan]:
    with app.uow() as uow:
        session = uow.session
        rows = session.exec(select(Plan).order_by(col(Plan.code), col(Plan.version).desc())).all()
    newest: dict[str, Plan] = {}
    for row in rows:
        newest.setdefault(row.code, row)
    return [r for r in newest.values() if include_archived or not r.archived]


def versions(session: Session, code: str) -> list[Plan]:
    return list(session.exec(select(Plan).where(Plan.code == code).order_by(col(Plan.version))))


def archive_plan(app: App, code: str) -> Plan:
    with app.uow() as uow:
        session = uow.session
        row = get_plan(session, code)
        if row.archived:
            return row
        for version in versions(session, code):
            version.archived = True
            session.add(version)
        audit(session, app, "plan.archive", "plan", code)
    return row
