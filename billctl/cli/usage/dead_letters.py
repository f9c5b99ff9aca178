"""billctl usage dead-letters list|replay: entries the aggregator could not count."""

from __future__ import annotations

from typing import Annotated

import typer

from billctl.cli.common import DryRunOpt, OutputOpt, YesOpt, confirm, state


def dead_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1_000_000, help="How many (oldest first).")] = 100,
    output: OutputOpt = None,
) -> None:
    """Dead letters with their reason, and whether each would be counted if replayed now."""
    from billctl.services.usage_views import list_dead_letters

    st = state(ctx)
    out = st.output(output)
    total, letters = list_dead_letters(st.app, limit=limit, check=True)
    docs = [
        {
            "id": x.id,
            "source": x.source,
            "source_id": x.source_id,
            "reason": x.reason,
            "fields": x.fields,
            "replayable": x.problem is None,
            "problem_now": x.problem,
        }
        for x in letters
    ]
    if out.fmt == "json":
        out.json({"total": total, "shown": len(letters), "dead_letters": docs})
        return
    rows = [
        (
            x.id,
            f"{x.source}/{x.source_id}",
            x.reason,
            " ".join(f"{k}={v}" for k, v in x.fields.items()),
            "yes" if x.problem is None else f"no: {x.problem}",
        )
        for x in letters
    ]
    out.rows(["id", "source entry", "reason", "fields", "replayable now"], rows)
    if out.fmt == "table" and total > len(letters):
        out.info(f"{len(letters)} of {total:,} shown (--limit)")


def dead_replay(
    ctx: typer.Context,
    ids: Annotated[list[str] | None, typer.Argument(help="Dead-letter ids (or source entry ids); none = all.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replay also those that would fail again.")] = False,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    output: OutputOpt = None,
) -> None:
    """Re-feed dead letters to their stream (after fixing the cause, e.g. creating the tenant).
    Each keeps its original event id, so replaying twice still counts once."""
    from billctl.services.usage_views import replay_dead_letters

    st = state(ctx)
    out = st.output(output)
    go, kept = replay_dead_letters(st.app, ids, force=force, dry_run=True)
    if not dry_run and go:
        confirm(out, f"Replay {len(go):,} dead letter(s) into the stream?", yes)
        go, kept = replay_dead_letters(st.app, ids, force=force)
    if out.fmt == "json":
        out.json(
            {
                "dry_run": dry_run,
                "replayed": [x.id for x in go],
                "kept": [{"id": x.id, "problem": x.problem} for x in kept],
            }
        )
        return
    for x in kept[:20]:
        out.warn(f"kept {x.id}: {x.problem} (fix it, or --force)")
    out.success(f"{'would replay' if dry_run else 'replayed'} {len(go):,} dead letter(s); {len(kept):,} kept")
