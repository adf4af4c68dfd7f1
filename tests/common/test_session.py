"""The request's session commits before the response leaves, so a failed commit is never a silent success."""

from fastapi import APIRouter
from sqlalchemy import text

from microservices.common.app import create_app
from microservices.common.db import SessionDep
from microservices.monitoring.config import Settings
from tests.harness import app_client

router = APIRouter()


@router.post("/deferred")
async def deferred(session: SessionDep) -> dict:
    # A deferred constraint fails only at COMMIT: the client must hear of it.
    await session.execute(text("CREATE TEMP TABLE t (id int PRIMARY KEY DEFERRABLE INITIALLY DEFERRED)"))
    await session.execute(text("INSERT INTO t VALUES (1), (1)"))
    return {"stored": True}


async def test_a_failing_commit_turns_into_an_error_response(databases):
    app = create_app(settings=Settings(), title="t", description="t", routers=[router])
    async with app_client(app, rollback=False) as client:
        response = await client.post("/deferred")
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
