"""Run benchmarks: ``python -m benchmarks [name ...] [-- options]``. Names: preview."""

import sys

from benchmarks import preview

BENCHMARKS = {"preview": preview.main}


def main() -> None:
    names = [a for a in sys.argv[1:] if a in BENCHMARKS] or list(BENCHMARKS)
    rest = [a for a in sys.argv[1:] if a not in BENCHMARKS]
    for name in names:
        BENCHMARKS[name](rest)


if __name__ == "__main__":
    main()
