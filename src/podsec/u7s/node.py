"""Node life cycle: start/stop/status of the runtime, commands inside the namespace,
and ``kubeadm init|join|reset`` around the real kubeadm."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from podsec.errors import PodsecError
from podsec.host import files
from podsec.host import run as hostrun
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.kube import apply, kubeconfig
from podsec.kube.client import RBAC, APIError, Client, Unreachable, path
from podsec.names import ADMIN_CONF, AUTHZ_DIR
from podsec.progress import Progress
from podsec.registry import k8s_images
from podsec.trust import reference
from podsec.u7s import nsenter as ns
from podsec.u7s import runtime, supervisor
from podsec.u7s.plan import PLAN_FILE, NodePlan
from podsec.u7s.runtime import Layout


class NodeError(PodsecError):
    """The node could not be brought up, joined or reset."""


def start(host: Host, layout: Layout, timeout: float = 90.0) -> int:
    """Start the node (systemd's u7s.service where systemd runs the host, else the built-in
    supervisor in the background); wait for the namespace's CRI."""
    from podsec.host import systemd

    pid = supervisor.running_pid(host, layout)
    if pid is None and systemd.running(host):
        supervisor.install_units(host, layout, supervisor.load_plan(host))
        hostrun.run(["systemctl", "daemon-reload"])
        hostrun.run(["systemctl", "enable", "--now", "u7s.service"], timeout=300)
        pid = 1
    elif pid is None:
        log = host.path(str(layout.log_dir / "supervisor.log"))
        proc = hostrun.spawn(
            [sys.executable, "-m", "podsec.cli.daemon", "u7s-run"],
            log_file=log,
            new_session=True,
        )
        pid = proc.pid
        deadline = time.monotonic() + 10
        while supervisor.running_pid(host, layout) != pid:
            if proc.poll() is not None:
                raise NodeError(_("the u7s supervisor exited at start (see {log})").format(log=log))
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
    try:
        ns.wait_child(layout, timeout)
    except ns.NotRunning as exc:
        raise NodeError(
            _("the u7s namespace did not come up within {s:g} s").format(s=timeout),
            hint=_("see the logs in {dir}").format(dir=layout.log_dir),
        ) from exc
    return pid


def status(host: Host, layout: Layout) -> dict[str, Any]:
    state = supervisor.read_state(host, layout)
    services: dict[str, dict[str, Any]] = {}
    raw = state.get("services")
    for svc in supervisor.SERVICES:
        entry = dict(raw.get(svc.name, {})) if isinstance(raw, dict) else {}
        pid = entry.get("pid")
        if isinstance(pid, int) and Path(f"/proc/{pid}").exists():
            entry["uid"] = runtime.uid_of_pid(pid)
        services[svc.name] = entry
    child = runtime.child_pid(layout)
    return {
        "running": supervisor.running(host, layout),
        "supervisor": state.get("supervisor"),
        "user": layout.user,
        "uid": layout.uid,
        "child": child,
        "services": services,
    }


def in_namespace(
    host: Host,
    layout: Layout,
    command: list[str],
    *,
    capture: bool = True,
    check: bool = True,
    timeout: float | None = 600,
    input: str | None = None,
) -> hostrun.Result:
    """Run ``command`` as u7s-admin inside the node's namespaces."""
    argv = ns.argv(layout, command)
    return hostrun.run(
        argv,
        as_user=layout.user,
        env=layout.env(),
        capture=capture,
        check=check,
        timeout=timeout,
        cwd=host.path(str(layout.home)),
        input=input,
    )


def nsenter(host: Host, command: list[str], timeout: float = 30.0) -> int:
    layout = runtime.layout_for(host)
    cmd = command or [layout.env().get("SHELL", "/bin/bash")]
    argv = ns.argv(layout, cmd, timeout=timeout)
    return hostrun.run(
        argv, as_user=layout.user, env=layout.env(), capture=False, check=False, timeout=None
    ).returncode


KUBE_DIR = "/etc/kubernetes"
PROXIER_BINDING = "podsec-u7s-node-proxier"


def existing_state(host: Host) -> list[str]:
    """What an earlier init/join left that a new one would destroy."""
    found = []
    kube = host.path(KUBE_DIR)
    for pattern in ("*.conf", "manifests/*.yaml", "pki/*.crt", "pki/*.key"):
        found += [host.unroot(p) for p in sorted(kube.glob(pattern))]
    member = host.path("/var/lib/podsec/u7s/etcd/member")
    if member.exists():
        found.append(host.unroot(member))
    return found


def check_ports(plan: NodePlan) -> None:
    """Refuse when a host port the node forwards is taken (rootlesskit would fail later)."""
    import socket

    for port in plan.ports:
        kind = socket.SOCK_STREAM if port.proto == "tcp" else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((port.host_ip, port.host_port))
            except OSError as exc:
                raise NodeError(
                    _("port {port}/{proto} is already in use on this host").format(
                        port=port.host_port, proto=port.proto
                    ),
                    hint=_("stop what listens there (`ss -lntup`) or run `kubeadm reset` first"),
                ) from exc


def write_plan(host: Host, plan: NodePlan, layout: Layout) -> None:
    """The plan (read by the services, which run as u7s-admin: 0640 root:u7s-admin; it holds
    the bootstrap token) and the original's env file of U7S_* values (0600)."""
    from podsec.u7s import wrapper

    files.atomic_write(host.path(PLAN_FILE), plan.to_json(), mode=0o640, group=layout.gid)
    files.atomic_write(host.path(wrapper.ENV_FILE), wrapper.render_env_file(plan), mode=0o600)


def kubeadm_config_path(layout: Layout, plan: NodePlan) -> Path:
    return layout.config_dir / ("init.yaml" if plan.role == "init" else "join.yaml")


def kubeadm_argv(plan: NodePlan, config: Path) -> list[str]:
    from podsec.u7s import wrapper

    return wrapper.kubeadm_argv(plan, str(config), kubeadm=k8s_images.real_kubeadm())


def ctr(layout: Layout, *args: str, timeout: float = 600) -> hostrun.Result:
    return hostrun.run(
        ["ctr", f"--address={layout.cri_socket}", "-n", "k8s.io", *args], timeout=timeout
    )


def present_images(layout: Layout) -> set[str]:
    out = ctr(layout, "images", "ls", "-q").stdout
    return {line.strip() for line in out.splitlines() if line.strip()}


def import_archive(layout: Layout, archive: Path) -> None:
    """Import an OCI/docker archive into the node's image store (names from the archive)."""
    ctr(layout, "images", "import", str(archive))


def import_oci_layout(layout: Layout, oci_dir: Path, tmp: Path) -> None:
    """Import every image of an OCI layout directory (tests, offline demo)."""
    archive = tmp / "images.tar"
    hostrun.run(["tar", "-C", str(oci_dir), "-cf", str(archive), "."], timeout=300)
    try:
        import_archive(layout, archive)
    finally:
        archive.unlink(missing_ok=True)


def _copy_kubeconfig(host: Host, layout: Layout) -> None:
    admin = host.path(ADMIN_CONF)
    if not admin.is_file() or admin.stat().st_size == 0:
        raise NodeError(_("kubeadm wrote no {path}").format(path=ADMIN_CONF), exit_code=2)
    text = admin.read_bytes()
    root_kube = host.path("/root/.kube")
    root_kube.mkdir(mode=0o700, parents=True, exist_ok=True)
    files.atomic_write(root_kube / "config", text, mode=0o600)
    user_kube = host.path(str(layout.home / ".kube"))
    user_kube.mkdir(mode=0o700, parents=True, exist_ok=True)
    import os

    os.chown(user_kube, layout.uid, layout.gid)
    files.atomic_write(user_kube / "config", text, mode=0o600, owner=layout.uid, group=layout.gid)


def admin_client(host: Host, timeout: float = 60) -> Client:
    """The API as the cluster admin (admin.conf), from the host."""
    conn = kubeconfig.resolve(host, host.path(ADMIN_CONF), admin_conf=False)
    return Client(conn, timeout=timeout)


def wait_api(host: Host, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    with admin_client(host, timeout=10) as api:
        while True:
            try:
                if api.get_bytes("/readyz", accept="text/plain").strip() == b"ok":
                    return
                err = _("not ready")
            except (APIError, Unreachable) as exc:
                err = exc.message
            if time.monotonic() > deadline:
                raise NodeError(
                    _("the API server did not become ready: {err}").format(err=err[-200:])
                )
            time.sleep(1)


def post_init(host: Host, plan: NodePlan, layout: Layout, progress: Progress) -> None:
    """After a successful init: kubeconfigs, kube-proxy's rights, the network."""
    _copy_kubeconfig(host, layout)
    wait_api(host)
    # a kubelet started before its Node existed creates the static pods' mirror pods only at
    # its next resync (a minute later); restarted now, it creates them at once
    supervisor.restart_service(host, layout, "kubelet")
    with admin_client(host) as api:
        if api.get_or_none(path(RBAC, "clusterrolebindings", PROXIER_BINDING)) is None:
            # kube-proxy runs from the supervisor with the node's credentials (addon/kube-proxy
            # is skipped: its image would need iptables), so nodes get the proxier role
            api.request("POST", path(RBAC, "clusterrolebindings"), proxier_binding())
    if plan.cni == "flannel":
        apply_flannel(host, plan, progress)
    if runtime.wants_admission(plan):
        register_admission(host, plan, layout, progress)


def proxier_binding() -> dict[str, Any]:
    """``kubectl create clusterrolebinding … --clusterrole=system:node-proxier
    --group=system:nodes``."""
    rbac = "rbac.authorization.k8s.io"
    return {
        "apiVersion": f"{rbac}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": PROXIER_BINDING},
        "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": "system:node-proxier"},
        "subjects": [{"apiGroup": rbac, "kind": "Group", "name": "system:nodes"}],
    }


def register_admission(host: Host, plan: NodePlan, layout: Layout, progress: Progress) -> None:
    """Register the signed-images webhook (kube-system exempt, see podsec.u7s.admission)."""
    from podsec.u7s import admission

    progress.start("admission")
    ca = (host.path(str(layout.admission_dir)) / "ca.crt").read_bytes()
    url = f"https://{plan.advertise_address}:{admission.PORT}/validate"
    with admin_client(host) as api:
        # `kubectl label --overwrite namespace kube-system …`
        api.request(
            "PATCH",
            path("/api/v1/namespaces", "kube-system"),
            {"metadata": {"labels": {admission.SKIP_LABEL: "skip"}}},
            content_type="application/merge-patch+json",
        )
        apply.apply(api, [admission.registration(url, ca)])
    progress.finish("admission")


FLANNEL_MANIFEST = "/etc/podsec/u7s/manifests/kube-flannel.yml"


def apply_flannel(host: Host, plan: NodePlan, progress: Progress, timeout: float = 120) -> None:
    """Apply the flannel manifest (kept outside kubelet's static-pod dir), retrying until the
    API accepts it or ``timeout``."""
    from podsec.u7s import wrapper

    text = wrapper.flannel_manifest(plan)
    files.atomic_write(host.path(FLANNEL_MANIFEST), text)
    objects = apply.documents(text)
    progress.start("flannel")
    deadline = time.monotonic() + timeout
    with admin_client(host) as api:
        while True:
            try:
                apply.apply(api, objects)
                break
            except (APIError, Unreachable) as exc:
                if time.monotonic() > deadline:
                    raise NodeError(
                        _("applying {path} failed: {err}").format(
                            path=FLANNEL_MANIFEST, err=exc.message[-200:]
                        )
                    ) from exc
            time.sleep(2)
    progress.finish("flannel")


def deploy(
    host: Host,
    plan: NodePlan,
    *,
    layout: Layout,
    force: bool = False,
    progress: Progress,
    oci_layout: Path | None = None,
    pull: bool = True,
) -> int:
    """``kubeadm init|join`` on this host: everything up to a running node; returns kubeadm's
    exit status (its output goes straight to our stdout so the join commands appear as
    kubeadm prints them)."""
    if supervisor.running(host, layout):
        raise NodeError(
            _("the u7s node is already running"),
            hint=_("run `kubeadm reset` first to initialise it again"),
        )
    leftovers = existing_state(host)
    if leftovers and not force:
        raise NodeError(
            _("this node is already initialised ({what})").format(what=", ".join(leftovers[:3])),
            hint=_("run `kubeadm reset`, or pass --force to remove it"),
        )
    check_ports(plan)  # before anything is removed or written
    if leftovers:
        clean_kube_state(host)
    write_plan(host, plan, layout)
    runtime.prepare(host, plan, layout)
    config = kubeadm_config_path(layout, plan)
    files.atomic_write(
        host.path(str(config)), plan.kubeadm_config, mode=0o600, owner=layout.uid, group=layout.gid
    )
    kubeadm_ran = False
    try:
        progress.start("runtime")
        start(host, layout)
        progress.finish("runtime")
        _load_images(host, plan, layout, progress, oci_layout, pull)
        progress.start("kubeadm")
        kubeadm_ran = True
        result = in_namespace(
            host, layout, kubeadm_argv(plan, config), capture=False, check=False, timeout=900
        )
        progress.finish("kubeadm")
        if result.returncode != 0:
            raise NodeError(
                _("kubeadm {cmd} failed (exit {code})").format(
                    cmd="init" if plan.role == "init" else "join", code=result.returncode
                ),
                hint=_("the logs are in {dir}; nothing was kept").format(dir=layout.log_dir),
            )
        if plan.role != "join-worker":
            post_init(host, plan, layout, progress)
    except BaseException:
        # nothing half-done: the node goes back to where it was before this command
        _undo(host, plan, layout, kubeadm_ran)
        raise
    return 0


def _load_images(  # noqa: PLR0917 - internal step of deploy
    host: Host,
    plan: NodePlan,
    layout: Layout,
    progress: Progress,
    oci_layout: Path | None,
    pull: bool,
) -> None:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="podsec-u7s-") as tmp:
        if oci_layout is not None:
            progress.start("import")
            import_oci_layout(layout, oci_layout, Path(tmp))
            progress.finish("import")
        elif pull:
            pull_images(layout, plan, progress, Path(tmp))
    missing_images = [i for i in plan.images if i not in present_images(layout)]
    if missing_images:
        raise NodeError(
            _("image {image} is not available").format(image=missing_images[0]),
            hint=_("check U7S_REGISTRY / U7S_PLATFORM and the registry's tags"),
        )


def _undo(host: Host, plan: NodePlan, layout: Layout, kubeadm_ran: bool) -> None:
    import contextlib

    with contextlib.suppress(PodsecError):
        if kubeadm_ran and supervisor.running(host, layout):
            in_namespace(
                host,
                layout,
                [
                    k8s_images.real_kubeadm(),
                    "reset",
                    "-f",
                    f"--cri-socket={runtime.CRI_SOCKETS[plan.cri]}",
                ],
                check=False,
                timeout=120,
            )
    with contextlib.suppress(PodsecError):
        supervisor.stop(host, layout)
        supervisor.disable(host)
    if kubeadm_ran:
        clean_kube_state(host)
    from podsec.u7s import wrapper

    host.path(PLAN_FILE).unlink(missing_ok=True)
    host.path(wrapper.ENV_FILE).unlink(missing_ok=True)


def clean_kube_state(host: Host) -> None:
    """Remove what kubeadm init/join created (only podsec's own paths)."""
    import shutil

    kube = host.path(KUBE_DIR)
    for pattern in ("*.conf", "manifests/*.yaml"):
        for p in kube.glob(pattern):
            p.unlink()
    for sub in ("pki", Path(AUTHZ_DIR).name):  # the revocation webhook's (runtime.prepare)
        shutil.rmtree(kube / sub, ignore_errors=True)
    etcd = host.path("/var/lib/podsec/u7s/etcd")
    if etcd.is_dir():
        for p in etcd.iterdir():
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def reset(host: Host, layout: Layout, extra: list[str], progress: Progress) -> int:
    """``kubeadm reset`` inside the namespace, stop the node, remove podsec's state."""
    code = 0
    if supervisor.running(host, layout):
        progress.start("kubeadm reset")
        argv = [k8s_images.real_kubeadm(), "reset", "-f", *extra]
        if not any(a.startswith("--cri-socket") for a in extra):
            try:
                plan = supervisor.load_plan(host)
                argv.append(f"--cri-socket={runtime.CRI_SOCKETS[plan.cri]}")
            except PodsecError:
                pass
        r = in_namespace(host, layout, argv, capture=False, check=False)
        code = r.returncode
        progress.finish("kubeadm reset")
        supervisor.stop(host, layout)
    supervisor.disable(host)
    clean_kube_state(host)
    # the image store (_var_lib_containerd) stays: a cache, like the original's CRI-O storage
    for name in ("_var_lib_kubelet", "_var_lib_cni", "_var_log"):
        d = host.path(str(layout.data_dir / name))
        if d.is_dir():
            hostrun.run(["rm", "-rf", "--one-file-system", str(d)], timeout=300)
    host.path(PLAN_FILE).unlink(missing_ok=True)
    from podsec.u7s import wrapper

    host.path(wrapper.ENV_FILE).unlink(missing_ok=True)
    root_conf = host.path("/root/.kube/config")
    user_conf = host.path(str(layout.home / ".kube/config"))
    if (
        root_conf.is_file()
        and user_conf.is_file()
        and root_conf.read_bytes() == user_conf.read_bytes()
    ):
        root_conf.unlink()
    user_conf.unlink(missing_ok=True)
    return code


def runtime_phases(plan: NodePlan) -> NodePlan:
    """Phases the rootless runtime replaces: kube-proxy runs from the supervisor (with its
    conntrack writes off), CoreDNS only when its image is planned, preflight only where
    crictl exists (kubeadm's preflight fails without it)."""
    from dataclasses import replace

    if plan.role != "init":
        skip = list(plan.skip_phases)
        if hostrun.which("crictl") is None and "preflight" not in skip:
            skip.append("preflight")
        return replace(plan, skip_phases=tuple(skip))
    skip = list(plan.skip_phases)
    wanted = ["addon/kube-proxy"]
    if not any("/coredns" in i.rsplit(":", 1)[0] for i in plan.images):
        wanted.append("addon/coredns")
    if hostrun.which("crictl") is None:
        wanted.insert(0, "preflight")
    skip += [p for p in wanted if p not in skip]
    return replace(plan, skip_phases=tuple(skip))


def pull_images(layout: Layout, plan: NodePlan, progress: Progress, tmp: Path) -> None:
    """Pull every planned image missing from the node's store, through skopeo, so the host's
    signature policy (/etc/containers/policy.json, registries.d) is enforced on the way in."""
    have = present_images(layout)
    todo = [i for i in plan.images if i not in have]
    progress.start("images", total=len(todo) or None)
    for ref in todo:
        archive = tmp / "image.tar"
        # the policy is checked on the source; an archive cannot hold the signatures
        argv = ["skopeo", "copy", "--quiet", "--remove-signatures"]
        if reference.plain_http(ref.split("/", 1)[0]):
            argv.append("--src-tls-verify=false")
        try:
            hostrun.run([*argv, f"docker://{ref}", f"oci-archive:{archive}:{ref}"], timeout=900)
        except PodsecError as exc:
            raise NodeError(
                _("cannot pull {image}: {err}").format(image=ref, err=exc.message),
                hint=_("check the registry (U7S_REGISTRY), the tag and the image's signature"),
            ) from exc
        try:
            import_archive(layout, archive)
        finally:
            archive.unlink(missing_ok=True)
        progress.advance("images")
    from podsec.u7s import wrapper

    for pulled, expected in wrapper.retag_pairs(plan):
        ctr(layout, "images", "tag", "--force", pulled, expected)
    progress.finish("images")


def start_required(host: Host, layout: Layout) -> None:
    """Refuse with a clear message when the node's namespace is not running."""
    if not supervisor.running(host, layout):
        raise ns.NotRunning(
            _("the u7s namespace of {user} is not running").format(user=layout.user),
            hint=_("start it with `podsec u7s start` (or `podsec u7s kubeadm init`)"),
        )
    ns.wait_child(layout, 30)
