"""``kubeadm init|join|reset`` of a rootless node around the real kubeadm: the command's
workflow (:func:`kubeadm`), the earlier cluster state it refuses or removes, deploying a
plan up to a running node (undone entirely when a step fails), and reset."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from podsec.config import Settings
from podsec.errors import NotFoundError, PodsecError, UsageError
from podsec.host import files
from podsec.host import run as hostrun
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.names import ADMIN_CONF, AUTHZ_DIR
from podsec.progress import Progress
from podsec.registry import k8s_images
from podsec.u7s import addons, node_images, render, runtime, supervisor
from podsec.u7s.layout import CRI_SOCKETS, Layout, layout_for
from podsec.u7s.lifecycle import NodeError, in_namespace, start
from podsec.u7s.plan import ETCD_DATA_DIR, PLAN_FILE, NodePlan

KUBE_DIR = "/etc/kubernetes"


def existing_state(host: Host) -> list[str]:
    """What an earlier init/join left that a new one would destroy (paths as the node sees
    them): etcd's member data, then kubeadm's files under /etc/kubernetes."""
    found: list[str] = []
    member = host.path(ETCD_DATA_DIR) / "member"
    if member.exists():
        found.append(host.unroot(member))
    kube = host.path(KUBE_DIR)
    for pattern in ("*.conf", "manifests/*.yaml", "pki/*", "pki/etcd/*"):
        found.extend(host.unroot(p) for p in sorted(kube.glob(pattern)) if p.is_file())
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

    files.atomic_write(host.path(PLAN_FILE), plan.to_json(), mode=0o640, group=layout.gid)
    files.atomic_write(host.path(render.ENV_FILE), render.render_env_file(plan), mode=0o600)


def kubeadm_config_path(layout: Layout, plan: NodePlan) -> Path:
    return layout.config_dir / ("init.yaml" if plan.role == "init" else "join.yaml")


def kubeadm_argv(plan: NodePlan, config: Path, kubeadm: str) -> list[str]:

    return render.kubeadm_argv(plan, str(config), kubeadm=kubeadm)


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


def post_init(host: Host, plan: NodePlan, layout: Layout, progress: Progress) -> None:
    """After a successful init: kubeconfigs, kube-proxy's rights, the network."""
    _copy_kubeconfig(host, layout)
    addons.wait_api(host)
    # a kubelet started before its Node existed creates the static pods' mirror pods only at
    # its next resync (a minute later); restarted now, it creates them at once
    supervisor.restart_service(host, layout, "kubelet")
    addons.ensure_proxier_binding(host)
    if plan.cni == "flannel":
        addons.apply_flannel(host, plan, progress)
    if runtime.wants_admission(plan):
        addons.register_admission(host, plan, layout, progress)


def deploy(
    host: Host,
    plan: NodePlan,
    *,
    layout: Layout,
    force: bool = False,
    progress: Progress,
    oci_layout: Path | None = None,
    pull: bool = True,
    kubeadm: str,
) -> int:
    """``kubeadm init|join`` on this host with the real ``kubeadm``: everything up to a running
    node; returns kubeadm's
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
        node_images.load(plan, layout, progress, oci_layout=oci_layout, pull=pull, host=host)
        progress.start("kubeadm")
        kubeadm_ran = True
        result = in_namespace(
            host,
            layout,
            kubeadm_argv(plan, config, kubeadm),
            capture=False,
            check=False,
            timeout=900,
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
        _undo(host, plan, layout, kubeadm_ran, kubeadm)
        raise
    return 0


def _undo(host: Host, plan: NodePlan, layout: Layout, kubeadm_ran: bool, kubeadm: str) -> None:
    import contextlib

    with contextlib.suppress(PodsecError):
        if kubeadm_ran and supervisor.running(host, layout):
            in_namespace(
                host,
                layout,
                [
                    kubeadm,
                    "reset",
                    "-f",
                    f"--cri-socket={CRI_SOCKETS[plan.cri]}",
                ],
                check=False,
                timeout=120,
            )
    with contextlib.suppress(PodsecError):
        supervisor.stop(host, layout)
        supervisor.disable(host)
    if kubeadm_ran:
        clean_kube_state(host)

    host.path(PLAN_FILE).unlink(missing_ok=True)
    host.path(render.ENV_FILE).unlink(missing_ok=True)


def clean_kube_state(host: Host) -> None:
    """Remove what kubeadm init/join created (only podsec's own paths)."""
    import shutil

    kube = host.path(KUBE_DIR)
    for pattern in ("*.conf", "manifests/*.yaml"):
        for p in kube.glob(pattern):
            p.unlink()
    for sub in ("pki", Path(AUTHZ_DIR).name):  # the revocation webhook's (runtime.prepare)
        shutil.rmtree(kube / sub, ignore_errors=True)
    etcd = host.path(ETCD_DATA_DIR)
    if etcd.is_dir():
        for p in etcd.iterdir():
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def reset(
    host: Host,
    layout: Layout,
    extra: list[str],
    progress: Progress,
    *,
    explicit_kubeadm: str | None = None,
) -> int:
    """``kubeadm reset`` inside the namespace (the real kubeadm: ``explicit_kubeadm``, i.e.
    ``Settings.kubeadm``, else found on PATH), stop the node, remove podsec's state."""
    code = 0
    if supervisor.running(host, layout):
        progress.start("kubeadm reset")
        argv = [k8s_images.real_kubeadm(explicit=explicit_kubeadm), "reset", "-f", *extra]
        if not any(a.startswith("--cri-socket") for a in extra):
            try:
                plan = supervisor.load_plan(host)
                argv.append(f"--cri-socket={CRI_SOCKETS[plan.cri]}")
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
            hostrun.run(["rm", "-rf", "--one-file-system", "--", str(d)], timeout=300)
    host.path(PLAN_FILE).unlink(missing_ok=True)

    host.path(render.ENV_FILE).unlink(missing_ok=True)
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


def need_root() -> None:
    if os.geteuid() != 0:
        raise PodsecError(_("kubeadm init, join and reset must be run as root"))


def passthrough(settings: Settings, host: Host, argv: list[str]) -> int:
    """Other subcommands: inside the namespace when it runs, else the real kubeadm here."""
    kubeadm = k8s_images.real_kubeadm(explicit=settings.kubeadm)
    if runtime.user_exists(settings.u7s_user):
        layout = layout_for(host, settings.u7s_user)
        if supervisor.running(host, layout):
            return in_namespace(
                host, layout, [kubeadm, *argv], capture=False, check=False, timeout=None
            ).returncode
    return hostrun.run([kubeadm, *argv], capture=False, check=False, timeout=None).returncode


def kubeadm_help(
    settings: Settings, host: Host, argv: list[str], echo: Callable[[str], None]
) -> int:
    """`kubeadm --help` through the wrapper: upstream's help first (as the seed showed it),
    then what podsec adds. Without the real kubeadm (a node before kubernetes-kubeadm is
    installed) podsec's part is still shown, and what is missing is named at the end: help
    is what a user asks for to find that out."""
    from podsec.u7s import wrapper

    try:
        rc = passthrough(settings, host, argv)
    except NotFoundError as exc:
        echo(wrapper.podsec_help())
        missing = _("Not shown: kubeadm's own help — {problem}").format(
            problem=exc.message.rstrip(".")
        )
        echo(f"{missing}: {exc.hint}." if exc.hint else f"{missing}.")
        return 0
    sys.stdout.flush()
    echo(wrapper.podsec_help())
    return rc


def kubeadm(
    settings: Settings,
    host: Host,
    argv: Sequence[str],
    *,
    confirm: Callable[[str], bool],
    progress: Progress,
    echo: Callable[[str], None],
) -> int:
    """``podsec u7s kubeadm ARGV``: reset undoes the node; init and join plan it (asking
    ``confirm`` before removing an earlier cluster's state, unless --force) and deploy it;
    --help shows the real kubeadm's help, then podsec's part (through ``echo``); anything
    else runs with the real kubeadm. Returns the exit status."""
    from podsec.u7s import flags, probe, wrapper

    args = flags.parse(list(argv))
    if args.command == "reset" and not args.help:
        need_root()
        layout = layout_for(host, settings.u7s_user)
        rest = [a for a in args.raw if a not in ("reset", "-f", "--force")]
        return reset(host, layout, rest, progress, explicit_kubeadm=settings.kubeadm)
    if args.help:
        return kubeadm_help(settings, host, args.passthrough_argv(), echo)
    if not args.planned:
        return passthrough(settings, host, args.passthrough_argv())
    need_root()
    found = existing_state(host)
    if found and not args.force:
        question = _("{path} exists: remove the previous cluster state of this node?")
        if confirm(question.format(path=found[0])):
            args = flags.parse([*argv, "--force"])
        else:
            # --force (or yes) makes podsec remove the old state before init/join
            raise NodeError(
                _("this node is already initialised ({what})").format(what=", ".join(found[:3])),
                hint=_("run `kubeadm reset`, or pass --force to remove it"),
            )
    # offline: the images come from an OCI layout (tests, the demo's local build)
    oci = settings.u7s_oci_images
    if oci and not oci.is_dir():
        raise UsageError(_("PODSEC_U7S_OCI_IMAGES={path} is not a directory").format(path=oci))
    kubeadm_bin = k8s_images.real_kubeadm(explicit=settings.kubeadm)
    plan = wrapper.build_plan(
        settings, host, args, probe=probe.HostProbe(host, kubeadm_bin), verify_images=not oci
    )
    layout = runtime.ensure_account(host, settings.u7s_user)
    plan = runtime_phases(plan)
    return deploy(
        host,
        plan,
        layout=layout,
        force=args.force,
        progress=progress,
        oci_layout=oci,
        pull=not oci,
        kubeadm=kubeadm_bin,
    )
