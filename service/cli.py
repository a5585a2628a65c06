"""The ``sdze`` command: one verb module per role, dispatched here.

- ``sdze solve``  (``service.cli_solve``): one job in this process, or on a Ray cluster;
- ``sdze serve``  (``service.cli_serve``): the REST job service;
- ``sdze submit | status | list | cancel | download | evaluate`` (``service.client_cli``): talk to a service.
"""

from __future__ import annotations

import argparse
import sys

from . import cli_serve, cli_solve, client_cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sdze", description="Backprop-free PINN solver for high-dimensional PDEs (SDZE)")
    sub = p.add_subparsers(dest="verb", required=True)
    cli_solve.register(sub)
    cli_serve.register(sub)
    client_cli.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
