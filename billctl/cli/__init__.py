"""The command line.

Importing the command line takes a moment (a tenth of a second or so). A SIGTERM in that window
(a Job or a Deployment stopped just as it started) must still end the process with the documented
exit 143 rather than die by the signal, so a handler is in place from here on: ``billctl.cli.app``
puts the previous one back once its imports are done, and ``main()`` installs the handler for the
command's own run (long commands replace it with their graceful stop).
"""

from __future__ import annotations

import signal
import threading


def exit_on_sigterm(_signum: int, _frame: object) -> None:
    """SIGTERM: unwind (open transactions roll back, ``finally`` blocks run) and exit 143."""
    raise SystemExit(143)


def _install() -> object:
    if threading.current_thread() is not threading.main_thread():
        return None  # signal handlers can only be set from the main thread
    return signal.signal(signal.SIGTERM, exit_on_sigterm)


def startup_done(previous: object) -> None:
    """Put back the SIGTERM handler that was in place before the command tree was imported."""
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)  # type: ignore[arg-type]


STARTUP_PREVIOUS = _install()
