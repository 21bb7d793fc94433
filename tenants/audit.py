"""Who is acting and from where, as the audit log records it.

A view builds an `AuditContext` once from its request (`tenants.http.audit_context`) and hands
it to services, which never see the `HttpRequest`. Jobs and commands pass `SYSTEM` or a context
with the operator as actor and no address.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AuditContext:
    """The actor (a user, or None for the system) and the client IP the audit log records."""

    actor: Any = None
    ip: str | None = None

    @property
    def actor_label(self) -> str:
        return getattr(self.actor, "username", "") or "system"

    @classmethod
    def of(cls, actor) -> AuditContext:
        """A context for an actor with no network address (commands, jobs, tests)."""
        return cls(actor=actor)


SYSTEM = AuditContext()
