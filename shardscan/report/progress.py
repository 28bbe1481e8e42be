"""Progress on stderr while scanning: objects and bytes done, rate, and an ETA once the
listing has ended (before that the total is unknown, and a guess would mislead).

On a terminal one line is rewritten in place (`\\r`); in a log (CI, a file) plain lines are
written, at most one every few seconds, so a scan of millions of objects cannot flood it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from shardscan.report.text import format_size

if TYPE_CHECKING:
    from shardscan.model import ObjectReport

#: Seconds between updates: often enough to look alive on a terminal, rarely enough not to
#: flood a CI log.
PROGRESS_INTERVAL_TTY_S = 0.1
PROGRESS_INTERVAL_LOG_S = 5.0


class Progress:
    def __init__(self, stream: TextIO, totals: Callable[[], Any] | None = None) -> None:
        """`totals` returns the pipeline's Totals (listed, listed_bytes, listing_done)."""
        self.stream = stream
        self.totals = totals
        isatty = getattr(stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self.interval = PROGRESS_INTERVAL_TTY_S if self.tty else PROGRESS_INTERVAL_LOG_S
        self.started = time.monotonic()
        self.objects = 0
        self.bytes = 0
        self.errors = 0
        self._last_shown = self.started
        self._shown_objects = -1
        self._width = 0

    def update(self, obj: ObjectReport) -> None:
        from shardscan.model import Status

        self.objects += 1
        if obj.status != Status.SKIPPED:
            self.bytes += obj.object.size
        if obj.status == Status.ERROR:
            self.errors += 1
        now = time.monotonic()
        if now - self._last_shown >= self.interval:
            self._show(now)

    def finish(self) -> None:
        if self._shown_objects != self.objects:
            self._show(time.monotonic())
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-6)
        rate = self.bytes / elapsed
        errors = f", {self.errors} error{'s' if self.errors != 1 else ''}" if self.errors else ""
        text = (f"shardscan: {self.objects} object{'s' if self.objects != 1 else ''}{errors}, "
                f"{format_size(self.bytes)} in {elapsed:.1f}s ({format_size(int(rate))}/s)")
        totals = self.totals() if self.totals is not None else None
        if totals is not None and totals.listing_done and totals.listed:
            left = max(0, totals.listed_bytes - self.bytes)
            eta = f", ETA {_duration(left / rate)}" if rate > 0 and left else ""
            text += f" of {totals.listed} objects, {format_size(totals.listed_bytes)}{eta}"
        elif totals is not None:
            text += f"; listed {totals.listed} so far"
        return text

    def _show(self, now: float) -> None:
        text = self.line(now)
        if self.tty:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._last_shown = now
        self._shown_objects = self.objects


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
