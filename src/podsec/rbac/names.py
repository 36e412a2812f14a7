"""Validation of the names RBAC commands accept (one clear error per bad name)."""

from __future__ import annotations

import re

from podsec.errors import UsageError
from podsec.i18n import _

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\Z")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
# Kubernetes user and group names are free strings; refuse what cannot be a sane subject
# (whitespace, control characters, '/', which breaks URLs and certificate subjects).
_SUBJECT = re.compile(r"^[^\s/\x00-\x1f\x7f]{1,253}\Z")


def binding(name: str) -> str:
    if len(name) > 253 or not _SUBDOMAIN.fullmatch(name):
        raise UsageError(
            _("invalid binding name {name!r}").format(name=name),
            hint=_("use lower-case letters, digits, '-' and '.' (a DNS subdomain name)"),
        )
    return name


def role(name: str) -> str:
    if name in (".", "..") or not _SUBJECT.fullmatch(name) or "%" in name:
        raise UsageError(_("invalid role name {name!r}").format(name=name))
    return name


def namespace(name: str) -> str:
    if len(name) > 63 or not _LABEL.fullmatch(name):
        raise UsageError(
            _("invalid namespace {name!r}").format(name=name),
            hint=_("use lower-case letters, digits and '-' (a DNS label)"),
        )
    return name


def subject(name: str) -> str:
    if not _SUBJECT.fullmatch(name):
        raise UsageError(_("invalid user or group name {name!r}").format(name=name))
    return name
