"""One error type for bad input: it names the file and says what to do."""

from pathlib import Path


class UnmixlabError(Exception):
    """Bad input or state the user can fix.

    The message names the offending file (when there is one) and the fix, so the
    command line can print it alone, without a traceback.
    """

    def __init__(self, problem: str, fix: str, path: Path | str | None = None):
        self.problem = problem
        self.fix = fix
        self.path = Path(path) if path is not None else None
        where = f"{self.path}: " if self.path is not None else ""
        super().__init__(f"{where}{problem}. {fix}")

    def __reduce__(self) -> tuple:
        """Rebuild from the three arguments, so the error crosses process boundaries."""
        return (type(self), (self.problem, self.fix, self.path))
