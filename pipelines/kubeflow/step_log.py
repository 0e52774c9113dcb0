"""What kfp's local runner prints of a step: its log, without Python tracebacks.

``kfp.local.SubprocessRunner`` prints every line a step writes. A step that fails raises, and
Python prints the traceback; :class:`StepLog` drops those lines and keeps the exception's
last line, so that ``unmixlab kubeflow run-local`` can end with the one line that names the
bad file (an :class:`unmixlab.errors.UnmixlabError` raised in the step).
"""

import re
import sys
from typing import TextIO

TRACEBACK = "Traceback (most recent call last):"
CHAINED = (
    "The above exception was the direct cause of the following exception:",
    "During handling of the above exception, another exception occurred:",
)
# the exception's own line: module.Type: message (unmixlab's error comes last when chained)
EXCEPTION_LINE = re.compile(r"^(?P<type>[A-Za-z_][\w.]*(Error|Exception|Interrupt)): (?P<msg>.*)")


class StepLog:
    """A stdout that passes a step's log on, less its tracebacks.

    Attributes:
        failures: ``(type, message)`` of each exception whose traceback was dropped.
    """

    def __init__(self, out: TextIO | None = None):
        self.out = out or sys.stdout
        self.failures: list[tuple[str, str]] = []
        self._pending = ""
        self._in_traceback = False
        self._indent = ""

    def write(self, text: str) -> int:
        """Pass ``text`` on line by line, dropping traceback lines."""
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._line(line)
        return len(text)

    def flush(self) -> None:
        """Flush the wrapped stream."""
        self.out.flush()

    def _line(self, raw: str) -> None:
        line = re.sub(r"\x1b\[[0-9;]*m", "", raw)  # kfp colours its own lines
        bare = line.strip()
        if bare == TRACEBACK:  # kfp indents a step's lines: the traceback's own start
            self._indent = line[: len(line) - len(line.lstrip())]
            self._in_traceback = True
            return
        if self._in_traceback:
            inner = line.removeprefix(self._indent)
            frame_line = inner.startswith((" ", "\t")) or set(bare) <= {"^", "~"}
            if frame_line or not bare or bare in CHAINED:
                return
            match = EXCEPTION_LINE.match(bare)
            if match:
                self.failures.append((match["type"], match["msg"]))
                return  # the next traceback (a chained one) or the step's log follows
            self._in_traceback = False
        if bare in CHAINED:
            return
        self.out.write(raw + "\n")

    def last_unmixlab_error(self) -> str | None:
        """The message of the last :class:`UnmixlabError` a step raised, if any."""
        messages = [msg for kind, msg in self.failures if kind.endswith("UnmixlabError")]
        return messages[-1] if messages else None
