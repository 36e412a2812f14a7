"""``podsec doctor``: is this machine ready for rootless containers and Kubernetes?

Each check looks at one thing and returns a :class:`Check` — id, status, what was found,
how to fix it. Checks read the host through :class:`~podsec.host.paths.Host` (``/proc``,
``/sys``, ``/dev`` and the root-prefixed ``/etc``), so tests run them against fixture trees.
"""

from __future__ import annotations

import os
import re
import resource
import stat
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from podsec.errors import CommandError
from podsec.host import accounts
from podsec.host.paths import Host
from podsec.host.run import run, which
from podsec.i18n import _
from podsec.names import U7S_USER

OK, WARN, FAIL = "ok", "warn", "fail"
MIN_KERNEL = (5, 15)
MIN_WATCHES = 524288
CAP_SYS_RESOURCE = 24


@dataclass(frozen=True)
class Check:
    id: str
    status: str
    found: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Tool:
    """An external program podsec uses: how to ask its version and whether it is needed."""

    name: str
    version_argv: tuple[str, ...]
    package: str
    required: bool = False
    alternatives: tuple[str, ...] = ()


TOOLS: tuple[Tool, ...] = (
    Tool("podman", ("--version",), "podman", required=True),
    Tool("skopeo", ("--version",), "skopeo", required=True),
    Tool("buildah", ("--version",), "buildah"),
    Tool("runc", ("--version",), "runc", required=True, alternatives=("crun",)),
    Tool("crun", ("--version",), "crun"),
    Tool("conmon", ("--version",), "conmon"),
    Tool("newuidmap", (), "uidmap", required=True),
    Tool("rootlesskit", ("--version",), "rootlesskit", required=True),
    Tool("slirp4netns", ("--version",), "slirp4netns", required=True),
    Tool("crio", ("--version",), "cri-o", alternatives=("containerd",)),
    Tool("containerd", ("--version",), "containerd", required=True, alternatives=("crio",)),
    Tool("kubeadm", ("version", "-o", "short"), "kubernetes-kubeadm"),
    Tool("kubelet", ("--version",), "kubernetes-node"),
    Tool("kubectl", ("version", "--client", "-o", "yaml"), "kubectl"),
    Tool("etcd", ("--version",), "etcd-server"),
    Tool("haproxy", ("-v",), "haproxy"),
    Tool("keepalived", ("--version",), "keepalived"),
    Tool("nginx", ("-v",), "nginx-light"),
    Tool("docker-registry", ("--version",), "docker-registry"),
    Tool("gpg", ("--version",), "gnupg", required=True),
    Tool("trivy", ("--version",), "trivy"),
)

_VERSION_RE = re.compile(r"v?(\d+\.\d+(?:\.\d+)?(?:[-+~.][0-9A-Za-z.+~-]+)?)")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def check_kernel(host: Host) -> Check:
    release = _read(host.proc / "sys/kernel/osrelease") or os.uname().release
    m = re.match(r"(\d+)\.(\d+)", release)
    version = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    if version >= MIN_KERNEL:
        return Check("kernel", OK, release)
    return Check("kernel", FAIL, release, _("rootless Kubernetes needs Linux 5.15 or newer"))


def check_userns(host: Host) -> Check:
    max_ns = _read(host.proc / "sys/user/max_user_namespaces")
    clone = _read(host.proc / "sys/kernel/unprivileged_userns_clone")
    if max_ns is None:
        return Check(
            "userns", FAIL, _("no user namespace support"), _("use a kernel with CONFIG_USER_NS")
        )
    if max_ns == "0":
        return Check(
            "userns",
            FAIL,
            "user.max_user_namespaces = 0",
            _("sysctl -w user.max_user_namespaces=28633"),
        )
    if clone == "0":
        return Check(
            "userns",
            FAIL,
            "kernel.unprivileged_userns_clone = 0",
            _("sysctl -w kernel.unprivileged_userns_clone=1"),
        )
    found = f"user.max_user_namespaces = {max_ns}"
    return Check("userns", OK, found + (f", unprivileged_userns_clone = {clone}" if clone else ""))


def check_subids(host: Host) -> Check:
    fix = _("podsec u7s kubeadm init creates u7s-admin and allocates its range")
    if accounts.get_user(host, U7S_USER) is None:
        return Check("subids", WARN, _("user u7s-admin does not exist yet"), fix)
    found = []
    for kind in ("uid", "gid"):
        ranges = [r for r in accounts.subid_ranges(host, kind) if r.owner == U7S_USER]
        best = max((r.count for r in ranges), default=0)
        if best < accounts.SUBID_COUNT:
            return Check(
                "subids",
                FAIL,
                _("/etc/sub{kind}: u7s-admin has {n} ids").format(kind=kind, n=best),
                _("at least 65536 are needed; {fix}").format(fix=fix),
            )
        found.append(f"sub{kind} {ranges[0].start}:{ranges[0].count}")
    return Check("subids", OK, ", ".join(found))


def cgroup_mode(host: Host) -> str:
    """``unified`` (v2), ``hybrid`` (v1 with a v2 mount) or ``legacy`` (v1 only)."""
    base = host.sys / "fs/cgroup"
    if (base / "cgroup.controllers").exists():
        return "unified"
    if (base / "unified").is_dir():
        return "hybrid"
    return "legacy"


def check_cgroups(host: Host) -> Check:
    mode = cgroup_mode(host)
    if mode == "unified":
        controllers = (_read(host.sys / "fs/cgroup/cgroup.subtree_control") or "").split()
        wanted = {"cpu", "memory", "pids"}
        missing = sorted(wanted - set(controllers))
        if missing:
            return Check(
                "cgroups",
                WARN,
                _("cgroup v2, controllers not delegated: {c}").format(c=", ".join(missing)),
                _("podsec u7s installs a Delegate= drop-in for u7s-admin only"),
            )
        return Check("cgroups", OK, _("cgroup v2, delegated: {c}").format(c=" ".join(controllers)))
    label = _("cgroup v1 with a v2 hybrid mount") if mode == "hybrid" else _("cgroup v1")
    return Check(
        "cgroups",
        WARN,
        _("{label}: no resource limits are enforced for rootless pods").format(label=label),
        _(
            "boot with systemd.unified_cgroup_hierarchy=1 for limits; crun refuses hybrid mode, use runc"
        ),
    )


def check_oci_runtime(host: Host, finder: Callable[[str], str | None] = which) -> Check:
    runc, crun = finder("runc"), finder("crun")
    hybrid = cgroup_mode(host) == "hybrid"
    if runc:
        note = _(" (crun refuses hybrid cgroups here)") if crun and hybrid else ""
        return Check("oci-runtime", OK, f"runc{note}")
    if crun and not hybrid:
        return Check("oci-runtime", OK, "crun")
    if crun:
        return Check(
            "oci-runtime",
            FAIL,
            _("only crun, which refuses cgroups in hybrid mode"),
            _("apt-get install runc"),
        )
    return Check("oci-runtime", FAIL, _("neither runc nor crun"), _("apt-get install runc"))


def _device(host: Host, name: str, rel: str, required: bool, what: str) -> Check:
    path = host.dev / rel
    try:
        st = path.stat()
    except OSError:
        return Check(
            name,
            FAIL if required else WARN,
            _("/dev/{rel} is missing").format(rel=rel),
            _("load the {what} module").format(what=what),
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o006 == 0o006:
        return Check(name, OK, f"/dev/{rel} {mode:04o}")
    return Check(
        name,
        FAIL if required else WARN,
        _("/dev/{rel} is {mode:04o}: not usable by non-root").format(rel=rel, mode=mode),
        _("chmod 0666 /dev/{rel} (the usual udev default)").format(rel=rel),
    )


def check_tun(host: Host) -> Check:
    return _device(host, "dev-net-tun", "net/tun", True, "tun")


def check_fuse(host: Host) -> Check:
    return _device(host, "dev-fuse", "fuse", False, "fuse")


def check_ip_forward(host: Host) -> Check:
    value = _read(host.proc / "sys/net/ipv4/ip_forward")
    if value == "1":
        return Check("ip-forward", OK, "net.ipv4.ip_forward = 1")
    return Check(
        "ip-forward",
        WARN,
        f"net.ipv4.ip_forward = {value}",
        _(
            "podsec u7s kubeadm writes /etc/sysctl.d/90-ipforward.conf; or sysctl -w net.ipv4.ip_forward=1"
        ),
    )


def _module_available(host: Host, name: str) -> bool:
    if (host.sys / "module" / name).exists():
        return True
    release = _read(host.proc / "sys/kernel/osrelease") or os.uname().release
    moddir = host.path(f"/lib/modules/{release}")
    for index in ("modules.builtin", "modules.dep"):
        text = _read(moddir / index) or ""
        if re.search(rf"/{name}\.ko", text):
            return True
    return False


def check_modules(host: Host) -> Check:
    missing = [m for m in ("br_netfilter", "vxlan") if not _module_available(host, m)]
    if not missing:
        return Check("kernel-modules", OK, "br_netfilter, vxlan")
    return Check(
        "kernel-modules",
        WARN,
        _("not available: {m}").format(m=", ".join(missing)),
        _("flannel needs vxlan and br_netfilter; single-node clusters can use the bridge CNI"),
    )


def check_ping_group_range(host: Host) -> Check:
    value = _read(host.proc / "sys/net/ipv4/ping_group_range") or ""
    parts = value.split()
    if len(parts) == 2 and int(parts[0]) <= int(parts[1]):
        return Check("ping-group-range", OK, value.replace("\t", " "))
    return Check(
        "ping-group-range",
        WARN,
        value.replace("\t", " ") or "?",
        _("unprivileged ping inside pods needs net.ipv4.ping_group_range covering their gids"),
    )


def check_inotify(host: Host) -> Check:
    value = _read(host.proc / "sys/fs/inotify/max_user_watches")
    n = int(value) if value and value.isdigit() else 0
    if n >= MIN_WATCHES:
        return Check("inotify-watches", OK, f"fs.inotify.max_user_watches = {n}")
    return Check(
        "inotify-watches",
        WARN,
        f"fs.inotify.max_user_watches = {n}",
        _(
            "podsec monitor watch-containers needs more: sysctl -w fs.inotify.max_user_watches=1048576"
        ),
    )


def check_init(host: Host) -> Check:
    comm = _read(host.proc / "1/comm") or "?"
    if comm == "systemd":
        linger = host.path(f"/var/lib/systemd/linger/{U7S_USER}").exists()
        return Check(
            "init",
            OK if linger or accounts.get_user(host, U7S_USER) is None else WARN,
            _("systemd, linger for u7s-admin: {state}").format(
                state=_("yes") if linger else _("no")
            ),
            "" if linger else _("loginctl enable-linger u7s-admin"),
        )
    return Check(
        "init",
        WARN,
        _("PID 1 is {comm}, not systemd").format(comm=comm),
        _("use the built-in supervisors: podsec u7s run, podsec services run"),
    )


ROOT_CONTAINERD_SOCKET = "/run/containerd/containerd.sock"
ROOT_CONTAINERD_UNIT = "containerd.service"


def check_root_containerd(host: Host) -> Check:
    """Debian's containerd package enables a root containerd.service: a rootless node runs its
    own containerd as u7s-admin and never uses it, and its socket is root to whoever can open
    it (the original's nodes have no root container runtime)."""
    fix = _("systemctl disable --now {unit}").format(unit=ROOT_CONTAINERD_UNIT)
    sock = host.path(ROOT_CONTAINERD_SOCKET)
    if sock.is_socket():
        return Check(
            "root-containerd",
            WARN,
            _("a root containerd is running ({path}): the rootless node does not use it").format(
                path=ROOT_CONTAINERD_SOCKET
            ),
            fix,
        )
    wants = sorted(host.path("/etc/systemd/system").glob(f"*.wants/{ROOT_CONTAINERD_UNIT}"))
    if wants:
        return Check(
            "root-containerd",
            WARN,
            _(
                "{unit} (root) is enabled: it starts at boot, the rootless node does not use it"
            ).format(unit=ROOT_CONTAINERD_UNIT),
            fix,
        )
    return Check("root-containerd", OK, _("no root containerd"))


def check_nofile(host: Host) -> Check:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard >= 1048576:
        return Check("nofile-limit", OK, str(hard))
    return Check(
        "nofile-limit",
        WARN,
        _("hard RLIMIT_NOFILE is {n}").format(n=hard),
        _("containers.conf default_ulimits must stay at or below nofile={n}").format(n=hard),
    )


def check_capabilities(host: Host) -> Check:
    status = _read(host.proc / "self/status") or ""
    m = re.search(r"^CapBnd:\s*([0-9a-f]+)", status, re.M)
    if not m:
        return Check("capabilities", WARN, _("cannot read CapBnd"))
    if int(m.group(1), 16) >> CAP_SYS_RESOURCE & 1:
        return Check("capabilities", OK, "CapBnd " + m.group(1))
    return Check(
        "capabilities",
        WARN,
        _("CAP_SYS_RESOURCE is not in the bounding set ({b})").format(b=m.group(1)),
        _("a rootful containerd needs restrict_oom_score_adj = true (podsec sets it)"),
    )


def tool_version(tool: Tool, finder: Callable[[str], str | None] = which) -> tuple[str | None, str]:
    """(path, version) — version is "" when the program does not say it."""
    path = finder(tool.name)
    if path is None or not tool.version_argv:
        return path, ""
    try:
        result = run([path, *tool.version_argv], check=False, timeout=15)
    except CommandError:
        return path, ""
    text = (result.stdout + "\n" + result.stderr).strip()
    if tool.name == "kubectl":
        m = re.search(r"gitVersion:\s*(\S+)", text)
        return path, m.group(1) if m else ""
    m = _VERSION_RE.search(text)
    return path, m.group(1) if m else (text.splitlines()[0] if text else "")


def check_tools(
    tools: Sequence[Tool] = TOOLS, finder: Callable[[str], str | None] = which
) -> list[Check]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        found = dict(zip(tools, pool.map(lambda t: tool_version(t, finder), tools), strict=True))
    present = {t.name for t, (path, _v) in found.items() if path}
    checks = []
    for tool, (path, version) in found.items():
        cid = f"tool:{tool.name}"
        if path:
            checks.append(Check(cid, OK, f"{version or _('present')} ({path})"))
            continue
        covered = any(alt in present for alt in tool.alternatives)
        status = FAIL if tool.required and not covered else WARN
        note = _("not found") + (
            _(" ({alt} is used instead)").format(
                alt=next(a for a in tool.alternatives if a in present)
            )
            if covered
            else ""
        )
        checks.append(Check(cid, status, note, _("apt-get install {pkg}").format(pkg=tool.package)))
    return checks


HOST_CHECKS: tuple[Callable[[Host], Check], ...] = (
    check_kernel,
    check_userns,
    check_subids,
    check_cgroups,
    check_oci_runtime,
    check_tun,
    check_fuse,
    check_ip_forward,
    check_modules,
    check_ping_group_range,
    check_inotify,
    check_init,
    check_root_containerd,
    check_nofile,
    check_capabilities,
)


def run_all(host: Host, *, tools: bool = True) -> list[Check]:
    checks = [check(host) for check in HOST_CHECKS]
    if tools:
        checks += check_tools()
    return checks


def summary(checks: Sequence[Check]) -> dict[str, int]:
    return {s: sum(1 for c in checks if c.status == s) for s in (OK, WARN, FAIL)}


@dataclass(frozen=True)
class Report:
    """``podsec doctor``: every check, and how many ended ok, warn, fail."""

    checks: tuple[Check, ...]

    @property
    def summary(self) -> dict[str, int]:
        return summary(self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"checks": [c.as_dict() for c in self.checks], "summary": self.summary}


def doctor(host: Host, *, tools: bool = True) -> Report:
    return Report(tuple(run_all(host, tools=tools)))
