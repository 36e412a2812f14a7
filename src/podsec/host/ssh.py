"""Operands for ssh and scp: a remote login and a host, validated before any program sees
them (issue 15: ``alice@-oProxyCommand=…`` was handed to scp as an option, ``999.1.1.1`` as a
host). scp and ssh parse options anywhere before ``--``; the argv built here always ends
with ``--`` and then operands that cannot start with ``-``.
"""

from __future__ import annotations

import ipaddress
import re

from podsec.errors import UsageError
from podsec.i18n import _

# POSIX-portable login names (useradd's default NAME_REGEX, plus '.'), at most 32 bytes
_LOGIN = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}\Z")
_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")


def login(name: str) -> str:
    """A remote account name, or UsageError (exit 2) naming it."""
    if not _LOGIN.fullmatch(name):
        raise UsageError(
            _("invalid remote user name {name!r}").format(name=name),
            hint=_("use lower-case letters, digits, '_', '-' and '.', not starting with '-'"),
        )
    return name


def host(address: str) -> str:
    """An IP address or a DNS host name (RFC 1123), or UsageError naming it. A dotted name
    whose last label is numeric is an IPv4 address or nothing: ``999.1.1.1`` is refused."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        pass
    else:
        scope = getattr(parsed, "scope_id", None)
        if scope is None or _LABEL.fullmatch(scope.replace(".", "-").replace("_", "-")):
            return str(parsed)
    labels = address.removesuffix(".").split(".")
    if (
        0 < len(address) <= 253
        and all(_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    ):
        return address
    raise UsageError(
        _("invalid host address {value!r}").format(value=address),
        hint=_("give an IP address or a host name"),
    )


def remote_path(path: str) -> str:
    if not path or path.startswith("-") or any(c in path for c in "\n\0"):
        raise UsageError(_("invalid remote path {value!r}").format(value=path))
    return path


def scp_source(user: str, address: str, path: str) -> str:
    """``user@host:path`` for scp (IPv6 in brackets), every part validated."""
    name = host(address)
    bracketed = f"[{name}]" if ":" in name else name
    return f"{login(user)}@{bracketed}:{remote_path(path)}"
