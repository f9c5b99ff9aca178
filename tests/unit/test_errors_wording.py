"""Services name fields, not flags: an error refers to a field with ``errors.ref``; its text says the
field's name, and the CLI says the option of the failing command that sets it."""

from __future__ import annotations

from billctl.errors import BadInput, plain, ref, render_refs


def test_a_reference_reads_as_the_field_name_and_renders_as_a_flag() -> None:
    error = BadInput(f"{ref('until')} 2026-10-01 is before {ref('from')} 2026-10-10", hint=f"fix {ref('until')}")
    assert str(error) == "until 2026-10-01 is before from 2026-10-10 (fix until)"
    assert error.message == plain(error.template) == "until 2026-10-01 is before from 2026-10-10"
    flags = {"until": "--until", "from": "--from"}
    assert render_refs(error.template, flags.get) == "--until 2026-10-01 is before --from 2026-10-10"
    assert render_refs(error.template, {"until": "--until"}.get) == "--until 2026-10-01 is before from 2026-10-10"


def test_services_do_not_spell_command_line_flags() -> None:
    """The services' error texts name fields (``ref('period')``), so the same service reads right
    behind another command, a script or a log; the CLI adds the flags."""
    import re
    from pathlib import Path

    services = Path(__file__).resolve().parents[2] / "billctl" / "services"
    flag_in_text = re.compile(r"""(?:BadInput|Conflict|ConfigError|NotFound|check_text)\(\s*f?["']--[a-z]""")
    found = [
        f"{path.name}:{number}"
        for path in sorted(services.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if flag_in_text.search(line) or re.search(r"""^\s*f["']--[a-z]""", line)
    ]
    assert not found, "name the field with errors.ref instead of the flag: " + ", ".join(found)
