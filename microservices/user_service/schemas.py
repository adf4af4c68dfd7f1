"""Request and response bodies of the user service."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field, StringConstraints

Role = Literal["researcher", "service_admin", "admin"]


def _without_at_sign(username: str) -> str:
    # A login containing '@' is an e-mail address, so a username with one could shadow another user's address.
    if "@" in username:
        raise ValueError("A username may not contain '@', which marks an e-mail address at login.")
    return username


# The pattern still lets '@' through, so that the check after it answers with a sentence.
Username = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=150, pattern=r"^[\w.@+-]+$"),
    AfterValidator(_without_at_sign),
]
Email = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$", to_lower=True)
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, max_length=150)]
# Length and content rules are the password policy's, which answers with a sentence rather than a 422.
Password = Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    email: str
    first_name: str
    last_name: str
    roles: list[str]
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None = None


class UserSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    email: str


class RegisterRequest(BaseModel):
    username: Username
    email: Email
    password: Password
    first_name: Name = ""
    last_name: Name = ""


class UserCreate(RegisterRequest):
    roles: list[Role] = Field(default=["researcher"], min_length=1)
    is_active: bool = True


class UserUpdate(BaseModel):
    """Admin changes to an account; absent fields stay as they are."""

    email: Email | None = None
    first_name: Name | None = None
    last_name: Name | None = None
    roles: list[Role] | None = Field(default=None, min_length=1)
    is_active: bool | None = None


class ProfileUpdate(BaseModel):
    """A user's changes to his own profile."""

    email: Email | None = None
    first_name: Name | None = None
    last_name: Name | None = None


class LoginRequest(BaseModel):
    username: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=254)] = Field(
        description="The username or the e-mail address."
    )
    password: Password


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int
    user: UserRead


class RefreshRequest(BaseModel):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class LogoutRequest(BaseModel):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    all_sessions: bool = Field(default=False, description="End every session of the caller, not just this one.")


class PasswordChange(BaseModel):
    current_password: Password
    new_password: Password


class ServiceTokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int


class IntrospectRequest(BaseModel):
    token: Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class IntrospectResponse(BaseModel):
    active: bool
    sub: str | None = None
    username: str | None = None
    roles: list[str] | None = None
    token_id: str | None = None
    exp: int | None = None


class GroupCreate(BaseModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=150)]
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] = ""


class GroupUpdate(BaseModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=150)] | None = None
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None = None


class GroupRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str
    created_at: datetime
    member_count: int = 0


class GroupDetail(GroupRead):
    members: list[UserSummary]
    permissions: list[GrantRead]


class GroupMemberAdd(BaseModel):
    user_id: int


class GrantCreate(BaseModel):
    service_id: int = Field(ge=1, description="The service's id in the service registry.")
    monthly_quota: int | None = Field(default=None, ge=0, description="Jobs a month; none means unlimited.")


class GrantUpdate(BaseModel):
    monthly_quota: int | None = Field(ge=0, description="Jobs a month; null means unlimited.")


class GrantRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    service_id: int
    monthly_quota: int | None
    created_at: datetime


class EffectiveGrant(BaseModel):
    service_id: int
    monthly_quota: int | None
    via: str = Field(description='"user" for a direct grant, "group:<name>" for one through a group.')


class PermissionsRead(BaseModel):
    user_id: int
    roles: list[str]
    services: list[EffectiveGrant]
    all_services: bool


class ApiTokenCreate(BaseModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    expires_in_days: int | None = Field(default=None, ge=1, le=3650, description="None: the token never expires.")


class ApiTokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    token_prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiTokenCreated(ApiTokenRead):
    token: str = Field(description="The token itself, shown this once only.")


class CredentialCreate(BaseModel):
    service_id: int = Field(ge=1)
    # Scripts written for the system we replace send `api_token`.
    token: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=8192)] = Field(
        validation_alias=AliasChoices("token", "api_token")
    )
    expires_at: datetime | None = None


class CredentialRead(BaseModel):
    service_id: int
    has_token: bool = True
    expires_at: datetime | None
    expires_soon: bool
    expired: bool
    warning: str | None
    created_at: datetime
    updated_at: datetime


class InternalCredential(BaseModel):
    token: str
    expires_at: datetime | None


class AuditEntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    created_at: datetime
    action: str
    user_id: int | None
    actor: str
    target_type: str | None
    target_id: str | None
    ip_address: str | None
    success: bool
    details: dict[str, Any]
