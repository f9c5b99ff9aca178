"""Run benchmarks: ``python -m benchmarks [name ...] [-- options]``. Names: preview, stream, stripe_push, monthly,
prune, startup."""

import sys

from benchmarks import monthly, preview, prune, startup, stream, stripe_push

BENCHMARKS = {"preview": preview.main, "stream": stream.main}
BENCHMARKS["stripe_push"] = stripe_push.main  # issue 4: python -m benchmarks stripe_push
BENCHMARKS["monthly"] = monthly.main  # issue 5
BENCHMARKS["prune"] = prune.main  # issue 10: python -m benchmarks prune
BENCHMARKS["startup"] = startup.main  # issue 11: python -m benchmarks startup


def main() -> None:
    names = [a for a in sys.argv[1:] if a in BENCHMARKS] or list(BENCHMARKS)
    rest = [a for a in sys.argv[1:] if a not in BENCHMARKS]
    for name in names:
        BENCHMARKS[name](rest)


if __name__ == "__main__":
    main()
