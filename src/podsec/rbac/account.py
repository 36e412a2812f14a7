"""The Linux side of an RBAC user: the account, its home and ``~/.kube``.

``create-user`` puts the user into groups ``podman`` and ``k8s``, makes the home 0770 and
``~/.kube`` 0700 owned ``USER:k8s`` (as the original did), and on an existing user only adds
what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podsec.errors import NotFoundError
from podsec.host import accounts, files
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.names import GROUP_K8S, GROUP_PODMAN
from podsec.rbac import names

HOME_MODE = 0o770
KUBE_MODE = 0o700
CONFIG_MODE = 0o600


@dataclass(frozen=True)
class UserResult:
    user: str
    created: bool
    changed: bool
    home: str
    kube_dir: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "created": self.created,
            "changed": self.changed,
            "home": self.home,
            "kube_dir": self.kube_dir,
        }


def create_user(host: Host, user: str) -> UserResult:
    names.subject(user)  # also refuses a trailing newline, which accounts.NAME_RE lets through
    accounts.check_name(user)
    changed = False
    for group in (GROUP_PODMAN, GROUP_K8S):
        changed |= accounts.ensure_group(host, group, system=True)
    existed = accounts.get_user(host, user) is not None
    changed |= accounts.ensure_user(
        host, user, create_home=True, supplementary=(GROUP_PODMAN, GROUP_K8S)
    )
    entry = accounts.get_user(host, user)
    if entry is None:  # pragma: no cover - useradd succeeded but wrote nothing
        raise NotFoundError(_("user {name} does not exist").format(name=user))
    home = host.path(entry.home)
    changed |= files.ensure_dir(home, mode=HOME_MODE, owner=entry.uid, group=entry.gid)
    kube = home / ".kube"
    k8s = accounts.gid(host, GROUP_K8S)
    changed |= files.ensure_dir(kube, mode=KUBE_MODE, owner=entry.uid, group=k8s)
    return UserResult(user, not existed, changed or not existed, entry.home, entry.home + "/.kube")


def kube_dir(host: Host, user: str) -> tuple[accounts.User, Path]:
    """The user's account and ``~/.kube`` (which must exist)."""
    names.subject(user)
    accounts.check_name(user)
    entry = accounts.get_user(host, user)
    if entry is None:
        raise NotFoundError(
            _("user {name} does not exist").format(name=user),
            hint=_("create it first: podsec rbac create-user {name}").format(name=user),
        )
    kube = host.path(entry.home) / ".kube"
    if not kube.is_dir():
        raise NotFoundError(
            _("{path} does not exist").format(path=host.unroot(kube)),
            hint=_("run: podsec rbac create-user {name}").format(name=user),
        )
    return entry, kube


def write_config(host: Host, user: str, kube: Path, text: str) -> bool:
    """Write ``~USER/.kube/config`` atomically, 0600, owned ``USER:k8s``."""
    return write_file(host, user, kube / "config", text, CONFIG_MODE)


def write_file(
    host: Host, user: str, path: Path, text: str | bytes, mode: int, *, backup: bool = True
) -> bool:
    """A file in ``~USER/.kube``, atomically, owned ``USER:k8s``."""
    k8s = accounts.get_group(host, GROUP_K8S)
    uid = accounts.uid(host, user)
    return files.atomic_write(
        path, text, mode=mode, owner=uid, group=None if k8s is None else k8s.gid, backup=backup
    )
