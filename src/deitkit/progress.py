"""Progress bars in a terminal or notebook; elsewhere (CI, Azure job logs, a file) plain lines.

A bar redraws itself with carriage returns, which a log file or an Azure ML job's log shows as
one enormous line (or hundreds of frames). Where stderr is not a terminal, `progress_bar` logs
one line per tenth of the work instead, and `plain_logs` turns off the Hugging Face libraries'
own bars ("Loading weights", downloads, "Writing model shards").
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

from tqdm import auto as tqdm_auto  # imports tqdm.autonotebook quietly, before the line below
from tqdm import autonotebook, tqdm

# A line per this share of the work where the total is known.
LINE_EVERY = 0.1
# Where it is not (batch scoring a folder it has not counted): a line per this many seconds.
LINE_SECONDS = 30.0
HUB_BARS_VARIABLE = "HF_HUB_DISABLE_PROGRESS_BARS"
MLFLOW_BARS_VARIABLE = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
# The bar's numbers without the bar itself, which means nothing on a line of its own.
LINE_FORMAT = "{percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


def is_terminal(stream: TextIO | None = None) -> bool:
    """True when `stream` (default: stderr, where progress goes) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def in_notebook() -> bool:
    """True inside a Jupyter kernel, where tqdm.auto draws widgets (no carriage returns)."""
    return autonotebook.tqdm is not tqdm  # autonotebook picks std's outside a kernel


def live_bars() -> bool:
    """True where someone watches the output: a terminal or a notebook."""
    return is_terminal() or in_notebook()


def plain_logs() -> None:
    """Outside a terminal or notebook, turn off the transformers, Hub and MLflow bars.

    They draw with carriage returns and cannot be told to log lines instead; what they report
    (a download, loading or writing a checkpoint) deitkit logs where it matters. The Hub's
    HF_HUB_DISABLE_PROGRESS_BARS and MLflow's variable, where the user set them, decide.
    Cheap before transformers is imported (the variable is read then): `deitkit` calls it
    first thing.
    """
    if live_bars():
        return
    # MLflow's artifact bars ("Downloading artifacts" when a model is saved or loaded): the
    # variable is read each time.
    os.environ.setdefault(MLFLOW_BARS_VARIABLE, "false")
    if HUB_BARS_VARIABLE in os.environ:
        return
    os.environ[HUB_BARS_VARIABLE] = "1"  # read by the Hub, and by transformers, on import
    if "transformers" in sys.modules:  # imported already: its switch, which covers the Hub's
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    elif "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


class LineProgress(tqdm):
    """tqdm that prints a plain line at every tenth of the total (and at the end) instead of
    redrawing; with no total, a line every LINE_SECONDS. Never writes a carriage return."""

    def __init__(self, *args: Any, **kwargs: Any):
        self._printed_tenth = 0
        self._printed_n: float | None = None
        self._printed_at = time.monotonic()
        # Every update reaches display(), which decides whether a line is due.
        kwargs.update(mininterval=0, miniters=1, dynamic_ncols=False)
        super().__init__(*args, **kwargs)
        if self.total:  # without one, tqdm's own format has no bar: n, time and rate
            self.bar_format = f"{self.desc}: {LINE_FORMAT}" if self.desc else LINE_FORMAT

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg is None and self._due():
            self._print_line()
        return False  # nothing on screen to clear: close() writes no '\r' or '\n'

    def clear(self, nolock: bool = False) -> None:
        """Nothing to clear (tqdm.write clears bars before writing, with a '\\r')."""

    def close(self) -> None:
        if not self.disable and self.n != self._printed_n and self.n > 0:
            self._print_line()
        self.leave = False  # tqdm would end the last frame with a newline of its own
        super().close()

    def _due(self) -> bool:
        if self.total:
            tenth = int(self.n / self.total / LINE_EVERY + 1e-9)
            if tenth > self._printed_tenth:
                self._printed_tenth = tenth
                return True
            return False
        return self.n > 0 and time.monotonic() - self._printed_at >= LINE_SECONDS

    def _print_line(self) -> None:
        self._printed_n, self._printed_at = self.n, time.monotonic()
        self.fp.write(self.__str__() + "\n")
        self.fp.flush()


def progress_bar(*args: Any, **kwargs: Any) -> tqdm:
    """A tqdm bar (the same arguments) where someone watches it, else a LineProgress."""
    if kwargs.get("disable"):
        return tqdm(*args, **kwargs)
    if in_notebook():
        return tqdm_auto.tqdm(*args, **kwargs)
    if is_terminal(kwargs.get("file")):
        return tqdm(*args, **kwargs)
    return LineProgress(*args, **kwargs)
