"""The job state table: the one path forward, failed or cancelled from any live state, nothing out of an end state."""

from __future__ import annotations

import pytest

from microservices.job_processor import states

FORWARD = [
    (states.PENDING, states.QUEUED),
    (states.QUEUED, states.SUBMITTING),
    (states.SUBMITTING, states.RUNNING),
    (states.RUNNING, states.DOWNLOADING),
    (states.DOWNLOADING, states.COMPLETED),
]


def test_the_table_allows_exactly_the_designed_moves() -> None:
    allowed = {(old, new) for old, targets in states.TRANSITIONS.items() for new in targets}
    live_to_end = {(old, new) for old in states.LIVE for new in (states.FAILED, states.CANCELLED)}
    assert allowed == set(FORWARD) | live_to_end


@pytest.mark.parametrize("end", sorted(states.TERMINAL))
def test_nothing_leaves_an_end_state(end: str) -> None:
    for new in states.STATUSES:
        assert not states.can_transition(end, new)
    with pytest.raises(states.InvalidTransition) as raised:
        states.check_transition(end, states.RUNNING)
    assert raised.value.status_code == 409
    assert raised.value.message == f"A job that is {end} cannot become running."


def test_no_state_is_skipped_or_revisited() -> None:
    assert not states.can_transition(states.QUEUED, states.RUNNING)
    assert not states.can_transition(states.RUNNING, states.QUEUED)
    assert not states.can_transition(states.RUNNING, states.COMPLETED)
    assert {states.SUBMITTING, states.RUNNING, states.DOWNLOADING} == states.REMOTE
