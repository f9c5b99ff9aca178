"""The schema check compares the database's revision with ``billctl.db.checks.REVISIONS`` (no Alembic
at start-up): the list must name every migration, in order, so a new one cannot be forgotten."""

from __future__ import annotations

import ast
from pathlib import Path

from billctl.db import checks

VERSIONS = Path(__file__).resolve().parents[2] / "billctl" / "migrations" / "versions"


def _revision_chain() -> list[str]:
    found: dict[str | None, str] = {}
    for path in sorted(VERSIONS.glob("*.py")):
        values: dict[str, object] = {}
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign | ast.AnnAssign):
                target = node.targets[0] if isinstance(node, ast.Assign) else node.target
                if isinstance(target, ast.Name) and target.id in ("revision", "down_revision") and node.value:
                    values[target.id] = ast.literal_eval(node.value)
        assert "revision" in values, f"{path.name} has no revision"
        found[values.get("down_revision")] = str(values["revision"])  # type: ignore[index]
    chain, current = [], None
    while current in found:
        current = found[current]
        chain.append(current)
    assert len(chain) == len(found), "the migrations do not form one chain"
    return chain


def test_revisions_list_every_migration_in_order() -> None:
    assert list(checks.REVISIONS) == _revision_chain()
    assert checks.REVISIONS[-1] == checks.HEAD
    assert len(checks.REVISIONS) == len(list(VERSIONS.glob("*.py")))


def test_the_check_names_what_to_do() -> None:
    import pytest

    from billctl.errors import SchemaBehind

    checks.judge(checks.HEAD)
    for revision, words in ((None, "no billctl schema"), ("9999", "newer"), (checks.REVISIONS[0], "behind")):
        if revision == checks.HEAD:
            continue
        with pytest.raises(SchemaBehind, match=words):
            checks.judge(revision)
