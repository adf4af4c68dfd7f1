"""Fixtures of the job processor tests: a real WES server (sapporo running cwltool on the host)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.job_processor.sapporo_server import SapporoServer, start_sapporo


@pytest.fixture(scope="session")
def sapporo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SapporoServer]:
    """sapporo 2.4 on a free loopback port, its runs under a temporary directory, stopped with its runs at the end."""
    with start_sapporo(tmp_path_factory.mktemp("sapporo")) as server:
        yield server
