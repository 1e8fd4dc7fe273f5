"""``python -m truesparse``: the same command line as the ``truesparse`` script (cli.py)."""

from truesparse.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
