"""Progress bars that show on every terminal, also on one that reports no size.

A pseudo-terminal opened without a window size (``script`` in a headless session, some CI
runners and container consoles) reports 0 columns x 0 rows; tqdm then hides every bar, so
a long training shows nothing for minutes. :class:`tqdm` here is tqdm with a fallback size
for such terminals; everywhere else it is tqdm unchanged.
"""

import os
import sys

from tqdm import tqdm as _tqdm

FALLBACK_COLUMNS, FALLBACK_ROWS = 100, 24


class tqdm(_tqdm):  # a drop-in for tqdm.tqdm, hence the lower-case name
    """:class:`tqdm.tqdm`, given 100 x 24 characters where the terminal reports 0 x 0."""

    def __init__(self, *args: object, **kwargs: object):
        stream = kwargs.get("file") or sys.stderr
        try:
            size = os.get_terminal_size(stream.fileno())
        except (AttributeError, OSError, ValueError):  # not a terminal: tqdm's own choice
            size = None
        if size is not None and (size.columns == 0 or size.lines == 0):
            kwargs.setdefault("ncols", FALLBACK_COLUMNS)
            kwargs.setdefault("nrows", FALLBACK_ROWS)
        super().__init__(*args, **kwargs)
