"""Failure reasons people can read: one clean line for the job, the full text kept for ``error.log``.

Ray's errors arrive with terminal colour codes (``ESC[36m…ESC[39m``) and the worker's traceback folded into
the message; a state cell or a CLI status line wants one line of plain text, the full text belongs in a file.
"""

from __future__ import annotations

import re
from pathlib import Path

# CSI sequences (colours, cursor moves), OSC sequences (titles, links) and any other two-byte ESC sequence.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
# The exception line that ends a Python traceback: ``ValueError: …``, ``ray.exceptions.RayTaskError(…): …``.
_EXC_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:\([\w.]*\))?(?::\s|$)")
# Ray's process coordinates "(pid=…, ip=…, actor_id=…, repr=…)": useful in the log, noise in one line.
_RAY_WHERE = re.compile(r"\s*\(pid=[^)]*\)")
MAX_CHARS = 240


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape sequences (and without other control characters but newline and tab)."""
    return re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "", _ANSI.sub("", text))


def one_line(text: str | None, max_chars: int = MAX_CHARS) -> str | None:
    """The reason as one plain line of at most ``max_chars`` characters.

    The first line (what failed) is kept; when a traceback follows, its closing exception line (why) is
    appended after " — " unless the first line already says it. Ray's "(pid=…, ip=…)" coordinates are dropped
    and whitespace runs collapse to one space.
    """
    if text is None:
        return None
    lines = [ln.rstrip() for ln in strip_ansi(text).splitlines()]
    lines = [ln for ln in lines if ln.strip()]
    if not lines:
        return ""
    head = lines[0].strip()
    if head.startswith("Traceback (most recent call last)"):
        head = ""
    tail = next((ln for ln in reversed(lines[1:]) if not ln[0].isspace() and _EXC_LINE.match(ln)), None)
    out = head if tail is None or tail.strip() in head else (f"{head} — {tail.strip()}" if head else tail.strip())
    out = " ".join(_RAY_WHERE.sub("", out).split())
    return out if len(out) <= max_chars else out[: max_chars - 1].rstrip() + "…"


def write_error_log(path: Path, reason: str | None, detail: str | None) -> None:
    """``error.log``: the reason in full, then the traceback (if any), terminal escapes removed."""
    parts = [strip_ansi(reason or "failed (no reason recorded)").rstrip()]
    if detail:
        parts.append(strip_ansi(detail).rstrip())
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("\n\n".join(parts) + "\n")
    tmp.replace(path)
