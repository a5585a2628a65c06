"""``NAME=JSON`` command-line overrides of solver knobs, shared by the benchmark scripts (``--knob``, ``--set``)."""

from __future__ import annotations

import argparse
import json


def knob_override(text: str) -> tuple[str, object]:
    """``"gn_mean_row=0"`` → ``("gn_mean_row", 0)``: an argparse ``type`` (the value is JSON)."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=JSON")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: the value is not JSON ({e.msg})") from e
