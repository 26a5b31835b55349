"""Failures of the policy engine itself (as opposed to a policy saying no)."""

from __future__ import annotations


class BundleError(Exception):
    """A bundle was refused at load: it does not parse, compile or is not readable.

    Attributes:
        message: What is wrong, as the compiler said it.
        file: The bundle file at fault, when known.
        line: Its 1-based line, when known.
        column: Its 1-based column, when known.
        detail: The compiler's full report.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        detail: str = "",
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.detail = detail
        super().__init__(str(self))

    @property
    def location(self) -> str:
        """``file:line[:column]``, or the file alone, or an empty string."""
        if self.file is None:
            return ""
        if self.line is None:
            return self.file
        return f"{self.file}:{self.line}" + (f":{self.column}" if self.column else "")

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class EvaluationError(Exception):
    """The evaluator failed on an input (the decision then fails closed)."""
