"""Who may change an instance: its registrant (by the instance's secret), or an operator.

A registration mints a random per-instance secret and answers it once; the registry keeps only
its SHA-256 (a 256-bit random secret needs no slow hash). Heartbeat, maintenance, deregistration
and re-registration of that id need the secret (header ``X-Instance-Secret``) or the operator
token, as Consul's ACL tokens and etcd's leases bind a key to its holder. The rules:

- a **new id** may be registered by any worker (or operator);
- a **live** id (heard from within the TTL) is re-registered only with its secret, or by an
  operator who says so (``take_over``); otherwise 409. A row that went silent past the TTL is
  free to whoever registers it next (its process is presumed dead, as a lease that ran out);
- a **secret that does not match** is refused whoever sends it, so a worker whose row was taken
  over stops keeping the new row alive (it learns so from the 401 and registers again);
- the **compatibility API** has no place for a secret: rows it registers share one owner, "compat",
  that any compat caller with the worker token may renew or remove; it never touches native rows;
- rows stored before ownership existed have no owner: the next registration of the id claims them.

Node agents (DESIGN "Node agents") are not built yet. Their hook is :attr:`Owner.node` and
:attr:`Caller.node`: a registration made through a node's agent records the node, and a caller
that proved a node secret (the future ``PUT /api/v1/nodes/{node}/heartbeat`` verifies it and
builds the :class:`Caller`) may then renew every instance of that node, in :func:`may_write`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from services.common.auth import Role
from services.common.envelope import ApiError, ErrorCode

SECRET_HEADER = "X-Instance-Secret"
# What a registration answers (secrets.token_urlsafe); anything else in the header is a 400.
SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}\Z")
COMPAT = "compat"
NATIVE = "native"


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Owner:
    """Who registered an instance, as stored beside it (never shown by the API)."""

    secret_sha256: str
    via: str = NATIVE  # NATIVE or COMPAT
    node: str = ""  # the node agent that beats for it (hook; see the module docstring)

    def to_dict(self) -> dict[str, str]:
        return {"secret_sha256": self.secret_sha256, "via": self.via, "node": self.node}

    @classmethod
    def from_dict(cls, data: Any) -> Owner | None:
        if not isinstance(data, dict) or not isinstance(data.get("secret_sha256"), str):
            return None
        return cls(data["secret_sha256"], str(data.get("via") or NATIVE), str(data.get("node") or ""))

    def holds(self, secret: str) -> bool:
        return bool(secret) and hmac.compare_digest(self.secret_sha256, secret_digest(secret))


@dataclass(frozen=True)
class Caller:
    """Who is asking: the role of its bearer token, the instance secret it sent, how it came in."""

    role: Role
    secret: str = ""
    via: str = NATIVE
    take_over: bool = False
    node: str = ""  # set only once a node secret was verified (no route does so yet)

    @property
    def operator(self) -> bool:
        return self.role >= Role.OPERATOR


# The registry itself (and tests driving a catalog directly): no check, an old row is replaced.
TRUSTED = Caller(Role.OPERATOR, take_over=True)


def new_owner(caller: Caller) -> tuple[str, Owner]:
    """A fresh secret for a new registration, and the owner record that remembers it."""
    secret = secrets.token_urlsafe(32)
    return secret, Owner(secret_digest(secret), caller.via, caller.node)


def may_write(owner: Owner | None, caller: Caller) -> bool:
    """Whether ``caller`` may renew, drain or remove an instance owned by ``owner``."""
    if caller.secret:
        return owner is None or owner.holds(caller.secret)  # a wrong secret is refused, even an operator's
    if caller.operator or owner is None:
        return True
    if caller.node and owner.node == caller.node:
        return True
    return caller.via == COMPAT and owner.via == COMPAT


def require_write(owner: Owner | None, caller: Caller, instance_id: str) -> None:
    """401 UNAUTHORIZED unless :func:`may_write`."""
    if not may_write(owner, caller):
        raise ApiError(
            ErrorCode.UNAUTHORIZED,
            f"instance {instance_id!r} belongs to its registrant: send its {SECRET_HEADER} "
            "(answered at registration) or use the operator token",
        )


def registration_owner(
    existing: Owner | None, live: bool, caller: Caller, instance_id: str
) -> tuple[str | None, Owner | None]:
    """Decide a (re-)registration of ``instance_id``: (the secret to answer, the owner to store).

    ``existing`` is the id's current owner when the id is registered, ``live`` whether it was heard
    from within the TTL. The secret is None when the caller proved it holds it already (answered
    back as sent). Raises 409 CONFLICT when the id is live and not the caller's.
    """
    if existing is not None and caller.secret and existing.holds(caller.secret):
        # the registrant itself, e.g. a restarted worker: same secret; its node is the one it names now
        same_node = existing.node == caller.node
        return None, existing if same_node else Owner(existing.secret_sha256, existing.via, caller.node)
    if existing is None or not live or _may_replace_without_secret(existing, caller):
        secret, owner = new_owner(caller)
        return secret, owner
    raise conflict(instance_id)


def _may_replace_without_secret(existing: Owner, caller: Caller) -> bool:
    if caller.operator and caller.take_over:
        return True
    return caller.via == COMPAT and existing.via == COMPAT and not caller.secret


def require_replace(existing: Owner | None, live: bool, caller: Caller, instance_id: str) -> None:
    """409 unless the caller may replace ``instance_id`` (another id at the same address)."""
    if existing is None or not live:
        return
    if caller.secret and existing.holds(caller.secret):
        return
    if _may_replace_without_secret(existing, caller):
        return
    raise ApiError(
        ErrorCode.CONFLICT,
        f"the address is held by live instance {instance_id!r} of another registrant; "
        "deregister it first, or take it over with the operator token (?take_over=true)",
    )


def conflict(instance_id: str) -> ApiError:
    return ApiError(
        ErrorCode.CONFLICT,
        f"instance {instance_id!r} is live and registered by someone else: re-registering it needs its "
        f"{SECRET_HEADER}, or the operator token with ?take_over=true (or wait until it misses its TTL)",
    )
