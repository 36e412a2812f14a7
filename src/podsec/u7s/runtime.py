"""Where the rootless node lives and how its namespace is started.

:func:`prepare` creates the directories :class:`~podsec.u7s.layout.Layout` names, and
:func:`ensure_account` the account; :func:`rootlesskit_argv` is the one
rootlesskit invocation; :func:`child_spec` describes, as data, what the child step does inside
the fresh namespaces (see :mod:`podsec.u7s.child`).
"""

from __future__ import annotations

import json
import os
import pwd
import sys
from pathlib import Path
from typing import Any

from podsec.errors import NotFoundError, PodsecError
from podsec.host import accounts, files
from podsec.host.paths import Host
from podsec.host.run import which
from podsec.i18n import _
from podsec.names import AUDIT_POLICY, AUTHZ_DIR, GROUP_PODMAN, U7S_BIN, U7S_HOME, U7S_USER
from podsec.u7s import containerd, crio, netconf
from podsec.u7s.layout import CRI_SOCKETS, LOG_DIR, RUN_DIR, Layout, layout_for
from podsec.u7s.plan import ETCD_DATA_DIR, VOLUME_PLUGIN_DIR, NodePlan

KUBE_DIR = "/etc/kubernetes"
# Host directories the namespace writes through copy-up symlinks: owned by u7s-admin so the
# namespace's root (u7s-admin on the host) may write them; nothing else of the host is.
OWNED_DIRS = (KUBE_DIR, f"{KUBE_DIR}/manifests", f"{KUBE_DIR}/pki", ETCD_DATA_DIR)
# kubelet 1.20 writes these global sysctls unless it already reads the wanted values.
SYSCTL_OVERRIDES = {"kernel/panic": "10", "kernel/panic_on_oops": "1", "vm/overcommit_memory": "1"}


class NodeRuntimeError(PodsecError):
    """The node runtime cannot start or stopped."""


def ensure_account(host: Host, user: str) -> Layout:
    """Create the system account with its home and subordinate id ranges."""
    name = user
    home = U7S_HOME if name == U7S_USER else f"/var/lib/{name}"
    # as the seed's package: u7s-admin is in podman (it has images: check-policy rule 101)
    # and in systemd-journal (its units' logs), where that group exists
    accounts.ensure_group(host, GROUP_PODMAN)
    groups = (
        GROUP_PODMAN,
        *(("systemd-journal",) if accounts.get_group(host, "systemd-journal") else ()),
    )
    accounts.ensure_user(
        host, name, system=True, home=home, comment="rootless kubernetes", supplementary=groups
    )
    accounts.ensure_subids(host, name)
    return layout_for(host, name)


def check_userns(host: Host) -> None:
    """Refuse early when the kernel cannot give u7s-admin a user namespace."""
    limit = host.proc / "sys/user/max_user_namespaces"
    if limit.exists() and limit.read_text().strip() == "0":
        raise NodeRuntimeError(
            _("user namespaces are disabled (user.max_user_namespaces = 0)"),
            hint=_("set sysctl user.max_user_namespaces to 15000 or more"),
        )
    for prog in ("newuidmap", "newgidmap", "rootlesskit", "slirp4netns", "nsenter"):
        if which(prog) is None:
            raise NotFoundError(
                _("program {prog} not found").format(prog=prog),
                hint=_("install the packages listed by `podsec doctor`"),
            )


def check_subids(host: Host, layout: Layout) -> None:
    for kind in ("uid", "gid"):
        if not any(r.owner == layout.user for r in accounts.subid_ranges(host, kind)):
            raise NodeRuntimeError(
                _("user {user} has no range in /etc/sub{kind}").format(user=layout.user, kind=kind),
                hint=_(
                    "run `podsec u7s kubeadm init` or add a range with usermod --add-sub{kind}s"
                ).format(kind=kind),
            )


def _mkdir(path: Path, uid: int, gid: int, mode: int = 0o755) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, uid, gid)
    path.chmod(mode)


def prepare(host: Host, plan: NodePlan, layout: Layout) -> None:
    """Directories, ownership and the CRI/CNI/child configuration files of the node."""
    check_userns(host)
    check_subids(host, layout)
    uid, gid = layout.uid, layout.gid
    _mkdir(host.path(str(layout.xdg_runtime)), uid, gid, 0o700)
    for path in (layout.runtime_dir, layout.data_dir, layout.config_dir):
        _mkdir(host.path(str(path)), uid, gid, 0o700)
    _mkdir(host.path(str(layout.home)), uid, gid, 0o750)
    for sub in (".local", ".local/share", ".config"):
        os.chown(host.path(str(layout.home / sub)), uid, gid)
    for name in _DATA_MOUNTS.values():
        _mkdir(host.path(str(layout.data_dir / name)), uid, gid)
    # made here, not left to the kubelet's DirectoryOrCreate: what the node needs exists
    # before kubeadm runs, owned by the node
    _mkdir(host.path(str(host_view(layout, VOLUME_PLUGIN_DIR))), uid, gid)
    for d in OWNED_DIRS:
        _mkdir(host.path(d), uid, gid, 0o700 if "etcd" in d else 0o755)
    host.path(RUN_DIR).mkdir(parents=True, exist_ok=True)
    _mkdir(host.path(LOG_DIR), uid, gid, 0o750)
    _install_audit_policy(host, uid, gid)
    if plan.cri == "crio":
        files.atomic_write(
            host.path(str(layout.config_dir / "crio/crio.conf")),
            crio.render_config(plan, layout),
            owner=uid,
            group=gid,
        )
    else:
        files.atomic_write(
            host.path(str(layout.config_dir / "containerd/config.toml")),
            containerd.render_config(plan, layout),
            owner=uid,
            group=gid,
        )
    from podsec.u7s import cni

    for name, text in cni.net_conf_files(plan).items():
        files.atomic_write(
            host.path(str(layout.config_dir / "cni/net.d" / name)), text, owner=uid, group=gid
        )
    files.atomic_write(
        host.path(str(layout.child_spec_file)),
        json.dumps(child_spec(plan, layout), indent=2) + "\n",
        owner=uid,
        group=gid,
    )
    if wants_admission(plan):
        from podsec.u7s import admission

        _mkdir(host.path(str(layout.admission_dir)), uid, gid, 0o700)
        admission.make_certificates(
            host.path(str(layout.admission_dir)), [str(plan.advertise_address)], uid, gid
        )
    if wants_authz(plan):
        from podsec.webhook import authz

        # before kubeadm: the API server's manifest mounts the webhook's kubeconfig
        authz.install_config(host.path(AUTHZ_DIR), uid=uid, gid=gid)
    for rel, value in SYSCTL_OVERRIDES.items():
        files.atomic_write(
            host.path(str(layout.config_dir / "sysctl" / rel.replace("/", "_"))),
            value + "\n",
            owner=uid,
            group=gid,
        )


def wants_authz(plan: NodePlan) -> bool:
    """Every control-plane node runs an API server asking the revocation webhook (a joining
    one gets the cluster's ClusterConfiguration, its flags included)."""
    return plan.role in ("init", "join-control-plane")


def wants_admission(plan: NodePlan) -> bool:
    """containerd does not enforce policy.json at pull: the init node runs the webhook."""
    return plan.cri == "containerd" and plan.role == "init"


def _install_audit_policy(host: Host, uid: int, gid: int) -> None:
    """The apiserver's audit policy (kubeadm's configuration mounts its directory); an
    administrator's edited copy is kept."""
    from importlib import resources

    target = host.path(AUDIT_POLICY)
    _mkdir(target.parent, uid, gid, 0o750)
    if not target.exists():
        text = resources.files("podsec").joinpath("data/audit-policy.yaml").read_text()
        files.atomic_write(target, text, mode=0o640, owner=uid, group=gid)


# bind mounts of persistent per-user directories over the namespace's view
_DATA_MOUNTS = {
    "/var/lib/containerd": "_var_lib_containerd",
    "/var/lib/containers": "_var_lib_containers",
    "/var/lib/cni": "_var_lib_cni",
    "/var/lib/kubelet": "_var_lib_kubelet",
    "/var/log": "_var_log",
}


def host_view(layout: Layout, node_path: str) -> Path:
    """Where a path of the namespace's persistent directories (``/var/lib/kubelet/…``) is on
    the host."""
    for target, name in _DATA_MOUNTS.items():
        if node_path == target or node_path.startswith(target + "/"):
            return layout.data_dir / name / node_path[len(target) :].lstrip("/")
    raise ValueError(node_path)


def child_spec(plan: NodePlan, layout: Layout) -> dict[str, Any]:
    """What the child does inside the new namespaces, as data (unit-tested, logged)."""
    binds: list[list[str]] = [
        [str(layout.data_dir / name), target] for target, name in _DATA_MOUNTS.items()
    ]
    binds.append([str(layout.config_dir / "cni/net.d"), "/etc/cni/net.d"])
    binds.append(["/dev/null", "/dev/kmsg"])
    for rel in SYSCTL_OVERRIDES:
        binds.append(
            [str(layout.config_dir / "sysctl" / rel.replace("/", "_")), f"/proc/sys/{rel}"]
        )
    if plan.cri == "crio":
        cri_argv = [
            "crio",
            "--config",
            str(layout.config_dir / "crio/crio.conf"),
        ]
    else:
        cri_argv = [
            "containerd",
            "--config",
            str(layout.config_dir / "containerd/config.toml"),
        ]
    return {
        # copy-up leaves symlinks to host directories; these must be private to the node
        "private_dirs": ["/run/netns", "/run/containerd", "/run/crio", "/run/runc", "/run/flannel"],
        "remove_links": ["/etc/containerd", "/etc/crio", "/run/xtables.lock", "/etc/cni"],
        "make_dirs": ["/etc/cni/net.d", "/opt/cni/bin"],
        "binds": binds,
        "cni_bin": _cni_bin_dir(),
        # the sockets kubeadm's configuration names, pointing at the per-user one
        "links": {CRI_SOCKETS[plan.cri]: str(layout.cri_socket)},
        "node_ip": str(plan.advertise_address),
        "cri_argv": cri_argv,
        "cri_socket": str(layout.cri_socket),
        "ready_file": str(layout.runtime_dir / "child.ready"),
        "log_file": str(Path(LOG_DIR) / ("crio.log" if plan.cri == "crio" else "containerd.log")),
    }


def _cni_bin_dir() -> str:
    for d in ("/usr/libexec/cni", "/usr/lib/cni", "/opt/cni/bin"):
        if Path(d, "bridge").exists():
            return d
    return "/usr/lib/cni"


def host_supports(option: str) -> bool:
    """Whether rootlesskit's ``--pidns``/``--cgroupns`` can be used on this kernel."""
    if option == "cgroupns":
        return Path("/proc/self/ns/cgroup").exists()
    if option == "pidns":
        return Path("/proc/self/ns/pid").exists()
    return True


def child_argv(layout: Layout) -> list[str]:
    """The child step, run by rootlesskit inside the namespaces (``podsec.cli.daemon``: no
    click; it execs the CRI when its setup is done)."""
    return [sys.executable, "-m", "podsec.cli.daemon", "child", f"spec={layout.child_spec_file}"]


def rootlesskit_argv(plan: NodePlan, layout: Layout) -> list[str]:
    argv = [
        "rootlesskit",
        f"--state-dir={layout.state_dir}",
        *netconf.rootlesskit_flags(),
        f"--cidr={plan.slirp_cidr}",
        f"--port-driver={netconf.PORT_DRIVER}",
        "--copy-up=/etc",
        "--copy-up=/run",
        "--copy-up=/var/lib",
        "--copy-up=/var/log",
        "--copy-up=/opt",
        "--utsns",
        "--ipcns",
        "--propagation=rslave",
    ]
    if host_supports("pidns"):
        argv.append("--pidns")
    if host_supports("cgroupns"):
        argv.append("--cgroupns")
    return [*argv, *child_argv(layout)]


def uid_of_pid(pid: int) -> int:
    return Path(f"/proc/{pid}").stat().st_uid


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _entry_point(name: str) -> str:
    """The installed console script ``name`` (next to this interpreter, else on PATH)."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = which(name)
    if found is None:
        raise NotFoundError(_("program {prog} not found").format(prog=name))
    return found


def install_bin(host: Host, user: str) -> list[Path]:
    """``/usr/libexec/podsec/u7s/bin``: ``kubeadm`` (→ podsec-u7s-kubeadm), ``nsenter_u7s``
    and ``rootlessctl`` (bound to u7s-admin's API socket), so the seed's
    ``export PATH=/usr/libexec/podsec/u7s/bin/:$PATH; kubeadm init`` works unchanged."""
    bindir = host.path(U7S_BIN)
    bindir.mkdir(parents=True, exist_ok=True)
    out = []
    for name, target in (
        ("kubeadm", _entry_point("podsec-u7s-kubeadm")),
        ("nsenter_u7s", _entry_point("nsenter_u7s")),
    ):
        link = bindir / name
        if link.is_symlink() or link.exists():
            if link.is_symlink() and str(link.readlink()) == target:
                out.append(link)
                continue
            link.unlink()
        link.symlink_to(target)
        out.append(link)
    name = user
    script = (
        "#!/bin/sh\n"
        "# rootlessctl for the u7s node's namespace (generated by podsec)\n"
        f"uid=$(id -u {name}) || exit 1\n"
        'exec /usr/bin/rootlessctl --socket "/run/user/$uid/usernetes/rootlesskit/api.sock" "$@"\n'
    )
    files.atomic_write(bindir / "rootlessctl", script, mode=0o755)
    out.append(bindir / "rootlessctl")
    return out
