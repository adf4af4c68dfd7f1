"""The JWKS, token introspection, and credentials handed to the platform's own services."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from microservices.common.db import SessionDep
from microservices.user_service import schemas, service
from microservices.user_service.dependencies import (
    ActorDep,
    CredentialReader,
    FernetDep,
    ServiceCaller,
    SignerDep,
    VerifierDep,
)

router = APIRouter()


@router.get("/.well-known/jwks.json", tags=["auth"])
async def jwks(signer: SignerDep, response: Response) -> dict[str, Any]:
    """The public keys access tokens are signed with (the current one first)."""
    # Verifiers fetch again on an unknown key id anyway, so a few minutes of caching cost nothing at rotation.
    response.headers["Cache-Control"] = "public, max-age=300"
    return signer.jwks


@router.post(
    "/auth/introspect", response_model=schemas.IntrospectResponse, response_model_exclude_none=True, tags=["internal"]
)
async def introspect(
    body: schemas.IntrospectRequest, principal: ServiceCaller, session: SessionDep, verifier: VerifierDep
) -> schemas.IntrospectResponse:
    """Whether a personal API token (or access token) is live, and whose it is (service accounts only)."""
    return await service.introspect(session=session, verifier=verifier, token=body.token)


@router.get(
    "/internal/users/{user_id}/credentials/{service_id}", response_model=schemas.InternalCredential, tags=["internal"]
)
async def reveal_credential(
    user_id: int, service_id: int, principal: CredentialReader, session: SessionDep, fernet: FernetDep, actor: ActorDep
) -> schemas.InternalCredential:
    """A user's decrypted token for an external service, for the job processor's service account only."""
    return await service.reveal_credential(
        session=session, fernet=fernet, actor=actor, user_id=user_id, service_id=service_id
    )
