"""The unit of work: one transaction per use case; read-only and dry-run blocks write nothing and still
hand back usable objects."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from billctl.db.engine import create_db_engine, upgrade
from billctl.db.models import Tenant
from billctl.db.uow import unit_of_work


@pytest.fixture
def engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = create_db_engine(f"sqlite:///{tmp_path / 'uow.db'}", create=True)
    upgrade(engine)
    yield engine
    engine.dispose()


def _count(engine) -> int:  # type: ignore[no-untyped-def]
    with unit_of_work(engine, readonly=True) as uow:
        return len(list(uow.session.exec(select(Tenant))))


def test_commits_at_the_end_and_rolls_back_on_error(engine) -> None:  # type: ignore[no-untyped-def]
    with unit_of_work(engine) as uow:
        uow.session.add(Tenant(key="acme", name="Acme", currency="USD"))
    assert _count(engine) == 1
    with pytest.raises(RuntimeError), unit_of_work(engine) as uow:
        uow.session.add(Tenant(key="beta", name="Beta", currency="USD"))
        uow.flush()
        raise RuntimeError("boom")
    assert _count(engine) == 1


@pytest.mark.parametrize("mode", ["readonly", "dry_run"])
def test_readonly_and_dry_run_write_nothing_and_return_usable_objects(engine, mode: str) -> None:  # type: ignore[no-untyped-def]
    with unit_of_work(engine) as uow:
        uow.session.add(Tenant(key="acme", name="Acme", currency="USD"))
    with unit_of_work(engine, **{mode: True}) as uow:
        acme = uow.session.exec(select(Tenant)).one()
        acme.name = "Changed"
        uow.session.add(Tenant(key="beta", name="Beta", currency="USD"))
        uow.flush()
    assert acme.name == "Changed"  # still readable after the block (detached, not expired)
    assert acme.key == "acme"
    with unit_of_work(engine, readonly=True) as uow:
        names = sorted(t.name for t in uow.session.exec(select(Tenant)))
    assert names == ["Acme"]
