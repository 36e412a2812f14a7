"""Where one rootless node lives: every path of u7s-admin's node (host view).

A leaf of the u7s area: the runtime, the CRI renderers (containerd, crio), the supervisor,
nsenter and the admission webhook all import it, and it imports none of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from podsec.errors import NotFoundError
from podsec.host import accounts
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.names import U7S_BIN

RUN_DIR = "/run/podsec/u7s"
LOG_DIR = "/var/lib/podsec/u7s/log"
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# where kubeadm's configuration (and crictl's default) look for each CRI inside the namespace
CRI_SOCKETS = {"containerd": "/run/containerd/containerd.sock", "crio": "/run/crio/crio.sock"}


@dataclass(frozen=True)
class Layout:
    """Paths of one rootless node (host view)."""

    user: str
    uid: int
    gid: int
    home: Path

    @property
    def xdg_runtime(self) -> Path:
        return Path(f"/run/user/{self.uid}")

    @property
    def runtime_dir(self) -> Path:
        return self.xdg_runtime / "usernetes"

    @property
    def state_dir(self) -> Path:
        """rootlesskit's --state-dir (child_pid, api.sock)."""
        return self.runtime_dir / "rootlesskit"

    def child_pid(self) -> int | None:
        """The namespace's first process, as rootlesskit records it (None: not running)."""
        try:
            return int((self.state_dir / "child_pid").read_text().strip())
        except (OSError, ValueError):
            return None

    @property
    def api_socket(self) -> Path:
        return self.state_dir / "api.sock"

    @property
    def data_dir(self) -> Path:
        return self.home / ".local/share/usernetes"

    @property
    def config_dir(self) -> Path:
        return self.home / ".config/usernetes"

    @property
    def cri_socket(self) -> Path:
        return self.runtime_dir / "cri.sock"

    @property
    def admission_dir(self) -> Path:
        return self.config_dir / "admission"

    @property
    def run_dir(self) -> Path:
        return Path(RUN_DIR)

    @property
    def log_dir(self) -> Path:
        return Path(LOG_DIR)

    @property
    def child_spec_file(self) -> Path:
        return self.config_dir / "child.json"

    def env(self) -> dict[str, str]:
        """Environment of every process of the node."""
        return {
            "HOME": str(self.home),
            "USER": self.user,
            "LOGNAME": self.user,
            "XDG_RUNTIME_DIR": str(self.xdg_runtime),
            "XDG_DATA_HOME": str(self.home / ".local/share"),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "PATH": f"{U7S_BIN}:{os.environ.get('PATH', _DEFAULT_PATH)}",
            "_CONTAINERS_ROOTLESS_UID": str(self.uid),
            "_CONTAINERS_USERNS_CONFIGURED": "1",
            "CONTAINERD_ADDRESS": str(self.cri_socket),
            "CONTAINER_RUNTIME_ENDPOINT": f"unix://{self.cri_socket}",
        }


def layout_for(host: Host, user: str) -> Layout:
    """The node of account ``user`` (``Settings.u7s_user``: u7s-admin, or PODSEC_U7S_USER)."""
    name = user
    entry = accounts.get_user(host, name)
    if entry is None:
        raise NotFoundError(
            _("user {user} does not exist").format(user=name),
            hint=_("run `podsec u7s kubeadm init` (it creates the account)"),
        )
    return Layout(name, entry.uid, entry.gid, Path(entry.home))
