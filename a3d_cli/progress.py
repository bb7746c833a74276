"""How stages and domain loops report progress without printing: a small object the CLI implements with rich.

Stages call `start`, `update` and `log`; the base class does nothing, so library users and tests get silence.
"""

from __future__ import annotations


class Progress:
    """Progress sink for one stage at a time. Subclass it to show or record progress."""

    def start(self, description: str, total: int | None = None) -> None:
        """A new phase begins (`total` steps, or None when unknown)."""

    def update(self, advance: int = 1, **fields: float) -> None:
        """`advance` steps done; `fields` are live numbers to show (loss=…, psnr=…)."""

    def log(self, message: str) -> None:
        """A one-line notice for the user (e.g. 'mesh simplified to 20000 vertices')."""


class RecordingProgress(Progress):
    """Keeps everything it is told; used by tests and by `--json` summaries."""

    def __init__(self) -> None:
        self.phases: list[tuple[str, int | None]] = []
        self.steps = 0
        self.last_fields: dict[str, float] = {}
        self.messages: list[str] = []

    def start(self, description: str, total: int | None = None) -> None:
        self.phases.append((description, total))

    def update(self, advance: int = 1, **fields: float) -> None:
        self.steps += advance
        self.last_fields.update(fields)

    def log(self, message: str) -> None:
        self.messages.append(message)
