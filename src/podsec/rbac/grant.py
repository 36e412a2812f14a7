"""``bind`` / ``unbind`` as the commands do them: the subject's rules, the revoked-certificate
refusal, then the change of the binding.

A user named in a binding must have a Linux account here (like the original), unless it is a
``system:`` identity or the caller says ``any_user``; a group is taken as named. Everything
local is checked before the API server is contacted.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from podsec.errors import NotFoundError, UsageError
from podsec.host import accounts
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.kube.client import Client
from podsec.kube.kubeconfig import admin_connection
from podsec.rbac import bindings, expiry, names, revoke
from podsec.rbac.bindings import Change, Subject


def subject(host: Host, name: str, *, group: bool = False, any_user: bool = False) -> Subject:
    """The binding subject ``name`` stands for, checked (a user must exist unless it is a
    ``system:`` identity or ``any_user``)."""
    names.subject(name)
    if group:
        return Subject("Group", name)
    if not any_user and not name.startswith("system:"):
        accounts.check_name(name)
        if accounts.get_user(host, name) is None:
            raise NotFoundError(
                _("user {name} does not exist").format(name=name),
                hint=_("create it with podsec rbac create-user, or pass --any-user"),
            )
    return Subject("User", name)


def change(
    host: Host,
    *,
    unbind: bool,
    user: str,
    role_type: str,
    role: str,
    binding: str,
    namespace: str | None,
    group: bool = False,
    any_user: bool = False,
    force: bool = False,
    kubeconfig: str | None = None,
    context: str | None = None,
    api_timeout: float = 15.0,
    for_seconds: int | None = None,
    log: expiry.Log | None = None,
) -> Outcome:
    """Add ``user`` to (or remove it from) the binding; ``force`` binds even a name a
    revoked, still valid certificate carries; ``for_seconds`` makes the grant expire
    (:mod:`podsec.rbac.expiry`: recorded, syslogged through ``log``, the timer installed).
    The administrator's kubeconfig is resolved
    (:func:`podsec.kube.kubeconfig.admin_connection`) only once the local checks passed."""
    target = bindings.target(role_type, role, binding, namespace)
    who = subject(host, user, group=group, any_user=any_user)
    if unbind and for_seconds is not None:
        raise UsageError(_("--for is for bind only"))
    if not unbind and not force:
        revoke.refuse_rebinding(host, who.kind, who.name)
    admin = admin_connection(kubeconfig, host, context)
    with Client(admin, timeout=api_timeout) as api:
        done = (bindings.unbind if unbind else bindings.bind)(api, who, target)
    if for_seconds is None:
        expiry.forget(host, done)  # permanent now, or gone
        return Outcome(done)
    grant = expiry.record(host, done, for_seconds, log or (lambda _p, _m: None))
    running = expiry.ensure_timer(host, [sys.executable, "-m", "podsec.cli.daemon", "rbac-expire"])
    return Outcome(done, grant.expires_at, running)


@dataclass(frozen=True)
class Outcome:
    change: Change
    until: str = ""  # bind --for: when the subject leaves the binding
    timer: bool = False  # the expiry timer runs (systemd); else the supervisor or by hand

    def as_dict(self) -> dict[str, Any]:
        out = self.change.as_dict()
        if self.until:
            out.update(until=self.until, timerRunning=self.timer)
        return out
