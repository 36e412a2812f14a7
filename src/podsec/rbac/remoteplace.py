"""``create-remoteplace IP``: set up a workstation from the user's kubeconfig on the cluster.

``scp`` (argv, ``BatchMode``: keys or an agent, never a password prompt hidden in a pipe)
copies ``~/.kube/config`` of the remote account into a private temp file next to the local
``~/.kube/config``; it is parsed and checked, its clusters are pointed at IP (the original
intended this and never got there: it copied from the literal host ``clusterIP``), and it is
merged into the local kubeconfig atomically (local entries of other names are kept).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podsec.errors import UsageError
from podsec.host import files, ssh
from podsec.host.run import run
from podsec.i18n import _
from podsec.kube import kubeconfig

REMOTE_PATH = ".kube/config"
_OPTION = re.compile(r"^[A-Za-z][A-Za-z0-9]*=[^\n]*\Z")


@dataclass(frozen=True)
class Remoteplace:
    path: str
    context: str
    servers: tuple[str, ...]
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "context": self.context,
            "servers": list(self.servers),
            "source": self.source,
        }


def check_address(address: str) -> str:
    try:
        return ssh.host(address)
    except UsageError:
        raise UsageError(_("invalid cluster address {value!r}").format(value=address)) from None


def scp_argv(
    address: str,
    remote_user: str,
    *,
    port: int | None = None,
    remote_path: str = REMOTE_PATH,
    identity: str | None = None,
    options: Sequence[str] = (),
    dest: str,
) -> list[str]:
    """The scp command line (no shell: every value is one argv element)."""
    source = ssh.scp_source(remote_user, address, remote_path)
    argv = ["scp", "-q", "-o", "BatchMode=yes"]
    if port is not None:
        argv += ["-P", str(port)]
    if identity:
        argv += ["-i", identity]
    for opt in options:
        if not _OPTION.fullmatch(opt):
            raise UsageError(
                _("invalid ssh option {value!r}").format(value=opt), hint=_("use KEY=VALUE")
            )
        argv += ["-o", opt]
    return [*argv, "--", source, dest]


def merge(local: kubeconfig.Config | None, remote: kubeconfig.Config) -> kubeconfig.Config:
    """``remote``'s entries replace same-named local ones; everything else is kept."""
    out = kubeconfig.empty() if local is None else {k: v for k, v in local.items() if k != "_dir"}
    for key in ("clusters", "users", "contexts"):
        incoming = [{k: v for k, v in i.items() if k != "_dir"} for i in remote.get(key, [])]
        names = {i["name"] for i in incoming}
        kept = [
            {k: v for k, v in i.items() if k != "_dir"}
            for i in (out.get(key) or [])
            if i.get("name") not in names
        ]
        out[key] = kept + incoming
    if remote.get("current-context"):
        out["current-context"] = remote["current-context"]
    return out


def local_login() -> str:
    """The login name of the user running the command (the default remote login)."""
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def local_home() -> Path:
    """``$HOME``, else the running user's home from the passwd database."""
    import pwd

    return Path(os.environ.get("HOME") or pwd.getpwuid(os.getuid()).pw_dir)


def create_remoteplace(
    address: str,
    *,
    remote_user: str | None = None,
    home: Path | None = None,
    port: int | None = None,
    remote_path: str = REMOTE_PATH,
    identity: str | None = None,
    options: Sequence[str] = (),
    keep_server: bool = False,
    timeout: float = 60.0,
) -> Remoteplace:
    """Copy, repoint and merge the remote kubeconfig; ``remote_user`` defaults to the local
    login, ``home`` to the local user's home."""
    address = check_address(address)
    remote_user = remote_user if remote_user is not None else local_login()
    # every operand and option checked before ~/.kube is touched (decide, then do)
    scp_argv(
        address,
        remote_user,
        port=port,
        remote_path=remote_path,
        identity=identity,
        options=options,
        dest="-",
    )
    kube = (home or local_home()) / ".kube"
    files.ensure_dir(kube, mode=0o700)
    local_path = kube / "config"
    local = kubeconfig.read(local_path) if local_path.exists() else None
    fd, tmp_name = tempfile.mkstemp(prefix=".config.remote-", dir=kube)  # 0600
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        argv = scp_argv(
            address,
            remote_user,
            port=port,
            remote_path=remote_path,
            identity=identity,
            options=options,
            dest=str(tmp),
        )
        run(argv, timeout=timeout)
        remote = kubeconfig.read(tmp)
        kubeconfig.connection(remote, source=f"{remote_user}@{address}:{remote_path}")
        if not keep_server:
            kubeconfig.set_server(remote, address)
        merged = merge(local, remote)
        files.atomic_write(local_path, kubeconfig.dump(merged), mode=0o600)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    servers = tuple(str((c.get("cluster") or {}).get("server")) for c in remote.get("clusters", []))
    return Remoteplace(
        path=str(local_path),
        context=str(remote.get("current-context") or ""),
        servers=servers,
        source=f"{remote_user}@{address}:{remote_path}",
    )
