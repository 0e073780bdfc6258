"""A progress display on stderr for long commands: tqdm when it is importable (it is not a dependency), else a
one-line bar redrawn in place."""
from __future__ import annotations

import sys
import time


def wanted(flag) -> bool:
    """--progress / --no-progress, or by default whether stderr is a terminal."""
    return flag if flag is not None else sys.stderr.isatty()


class Progress:
    """Progress towards `total` (any unit); `update(done, text)` sets the amount done so far."""

    def __init__(self, total: float, label: str, enabled: bool, unit: str = "s", min_interval: float = 0.1):
        """min_interval: seconds between redraws (0: every update is drawn, for a few slow stages)."""
        self.total, self.label, self.enabled, self.unit = float(total), label, enabled, unit
        self.min_interval = min_interval
        self.bar = None
        self.last_draw = 0.0
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=self.total, desc=label, unit=unit, file=sys.stderr, leave=False,
                                bar_format="{desc} {bar} {n:.1f}/{total:.1f} {unit} {postfix}")

    def update(self, done: float, text: str = ""):
        if not self.enabled:
            return
        done = min(done, self.total)
        if self.bar is not None:
            self.bar.n = done
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.refresh()
            return
        now = time.monotonic()
        if now - self.last_draw < self.min_interval and done < self.total:
            return
        self.last_draw = now
        width = 30
        filled = int(width * done / self.total) if self.total > 0 else width
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done:.1f}/{self.total:.1f} "
                         f"{self.unit}  {text}\033[K")
        sys.stderr.flush()

    def close(self):
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        else:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
