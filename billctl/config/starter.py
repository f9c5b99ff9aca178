"""The starter configuration file (``billctl config init``, ``config.example.toml``)."""

from __future__ import annotations

from billctl.config.settings import SETTINGS


def starter_toml() -> str:
    """The documented starter configuration: every key that belongs in the file, with its default."""
    import tomli_w

    lines = [
        "# billctl configuration. Precedence: flag > environment (BILLCTL_*) > this file > default.",
        "# Secrets (database password, Stripe key) never go in this file: use the environment.",
        "",
    ]
    section = None
    for setting in SETTINGS:
        name_section, name = setting.key.split(".", 1)
        if name_section != section:
            lines.append(f"[{name_section}]")
            section = name_section
        prefix = "# " if not setting.in_toml else ""
        lines.append(f"# {setting.help}")
        lines.append(f"# environment: {setting.env}")
        value = tomli_w.dumps({name: setting.default if not setting.secret else ""}).strip()
        lines.append(prefix + value if setting.in_toml else f"# (environment only) {name}")
        lines.append("")
    return "\n".join(lines)
