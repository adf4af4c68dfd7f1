"""Job states and the transitions allowed between them (DESIGN.md, "How a job flows")."""

from __future__ import annotations

from typing import Final

from microservices.common.errors import Conflict

PENDING: Final = "pending"
QUEUED: Final = "queued"
SUBMITTING: Final = "submitting"
RUNNING: Final = "running"
DOWNLOADING: Final = "downloading"
COMPLETED: Final = "completed"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"

STATUSES: Final = (PENDING, QUEUED, SUBMITTING, RUNNING, DOWNLOADING, COMPLETED, FAILED, CANCELLED)
TERMINAL: Final = frozenset({COMPLETED, FAILED, CANCELLED})
LIVE: Final = frozenset(STATUSES) - TERMINAL
# States in which a remote job may exist, so that a cancel must reach the remote server too.
REMOTE: Final = frozenset({SUBMITTING, RUNNING, DOWNLOADING})

# pending → queued → submitting → running → downloading → completed; failed / cancelled from any live state.
TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    PENDING: frozenset({QUEUED, FAILED, CANCELLED}),
    QUEUED: frozenset({SUBMITTING, FAILED, CANCELLED}),
    SUBMITTING: frozenset({RUNNING, FAILED, CANCELLED}),
    RUNNING: frozenset({DOWNLOADING, FAILED, CANCELLED}),
    DOWNLOADING: frozenset({COMPLETED, FAILED, CANCELLED}),
    COMPLETED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
}


class InvalidTransition(Conflict):
    code = "invalid_transition"

    def __init__(self, old: str, new: str) -> None:
        super().__init__(f"A job that is {old} cannot become {new}.")
        self.old, self.new = old, new


def can_transition(old: str, new: str) -> bool:
    """True when the table allows a job in `old` to move to `new`."""
    return new in TRANSITIONS.get(old, frozenset())


def check_transition(old: str, new: str) -> None:
    """Raise InvalidTransition unless `old` → `new` is allowed."""
    if not can_transition(old, new):
        raise InvalidTransition(old, new)
