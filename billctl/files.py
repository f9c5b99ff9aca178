"""Reading the small text files an operator gives billctl (plan files, the config file, secret
files): bounded in size and decoded strictly, so a wrong file (a 50 MB dump, a binary, another
encoding) is refused up front with its name instead of being parsed or crashing the decoder."""

from __future__ import annotations

import sys
from pathlib import Path

from billctl.errors import BillctlError

MAX_FILE_BYTES = 1024 * 1024  # plan, config and secret files (the largest sample plan is < 1 KB)


def read_text(path: str, what: str, error: type[BillctlError], *, limit: int = MAX_FILE_BYTES) -> str:
    """The text of ``path`` (``-``: stdin), at most ``limit`` bytes of UTF-8 (a leading BOM is
    dropped). Raises ``error`` naming ``what`` and the file: unreadable, too large, or not UTF-8
    (with the line and column of the first bad byte)."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(limit + 1)
        else:
            file = Path(path)
            if file.is_file() and file.stat().st_size > limit:
                raise error(
                    f"{what} {path} is {file.stat().st_size:,} bytes; the limit is {limit:,}",
                    hint="is it the right file?",
                )
            with file.open("rb") as handle:
                data = handle.read(limit + 1)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise error(f"{what} {path} is larger than the limit of {limit:,} bytes", hint="is it the right file?")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise error(
            f"{what} {path} is not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line}, column {column}",
            hint="save it as UTF-8 (is it a binary file?)",
        ) from None
    return text.removeprefix("\ufeff")
