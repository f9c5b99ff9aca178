"""billctl config init|show"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from billctl.cli.common import OutputOpt, state
from billctl.config import DEFAULT_CONFIG_FILE, SETTINGS, starter_toml
from billctl.errors import BadInput, Conflict

app = typer.Typer(help="Write and inspect settings.", no_args_is_help=True)


@app.command("init")
def init(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Where to write it.")] = Path(DEFAULT_CONFIG_FILE),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a starter config file with every setting, its default and its environment variable."""
    out = state(ctx).out
    if path.exists() and not force:
        raise Conflict(f"{path} already exists", hint="use --force to overwrite it")
    try:
        path.write_text(starter_toml())
    except OSError as exc:
        raise BadInput(f"cannot write {path}: {exc.strerror}", hint="give a path in an existing directory") from None
    out.success(f"wrote {path}")


@app.command("show")
def show(ctx: typer.Context, output: OutputOpt = None) -> None:
    """Print the effective settings and where each came from (secrets redacted)."""
    st = state(ctx)
    cfg = st.app.config
    out = st.output(output)
    rows = [(s.key, cfg.shown(s.key), cfg.sources[s.key], s.env) for s in SETTINGS]
    docs = [{"key": k, "value": v, "source": src, "env": env} for k, v, src, env in rows]
    out.rows(["key", "value", "source", "env"], rows, documents=docs, title=f"config file: {cfg.file or '(none)'}")
