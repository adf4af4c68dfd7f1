"""FastAPI dependencies of the job processor: the caller as a user, the job they may see, peers and keys."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from cryptography.fernet import MultiFernet
from fastapi import Depends, Request

from microservices.common.auth import CurrentPrincipal, Principal
from microservices.common.db import SessionDep
from microservices.common.errors import Forbidden
from microservices.job_processor import service
from microservices.job_processor.models import Job
from microservices.job_processor.peers import Peers

logger = logging.getLogger(__name__)

Enqueue = Callable[[str, list[Any]], Awaitable[None]]


def celery_enqueue() -> Enqueue:
    """Send a Celery task by name; a failure is logged, since beat's sweep picks the job up anyway."""

    async def enqueue(task: str, args: list[Any]) -> None:
        from microservices.job_processor.worker import app as celery_app

        try:
            await asyncio.to_thread(celery_app.send_task, task, args=args)
        except Exception as exc:
            logger.warning("could not enqueue %s%s, beat will pick it up: %s", task, tuple(args), exc)

    return enqueue


async def get_user(principal: CurrentPrincipal) -> Principal:
    """The caller, who must be a user (jobs belong to people, not to service accounts)."""
    if principal.user_id is None:
        raise Forbidden("Jobs are created by users; a service account cannot own one.")
    return principal


def get_peers(request: Request) -> Peers:
    return request.app.state.peers


def get_fernet(request: Request) -> MultiFernet:
    return request.app.state.fernet


def get_enqueue(request: Request) -> Enqueue:
    return request.app.state.enqueue


async def valid_job(job_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal) -> Job:
    """The job in the path, if the caller may see it (else 404)."""
    return await service.get_job(session=session, job_id=job_id, principal=principal)


UserPrincipal = Annotated[Principal, Depends(get_user)]
PeersDep = Annotated[Peers, Depends(get_peers)]
FernetDep = Annotated[MultiFernet, Depends(get_fernet)]
EnqueueDep = Annotated[Enqueue, Depends(get_enqueue)]
ValidJob = Annotated[Job, Depends(valid_job)]
