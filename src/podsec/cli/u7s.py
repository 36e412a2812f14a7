"""``podsec u7s``: rootless Kubernetes in the user namespace of u7s-admin."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

import click

from podsec.cli import context, output
from podsec.cli.main import GROUP_HELP, legacy
from podsec.cli.u7s_ports import ports
from podsec.i18n import _


@click.group(help=GROUP_HELP["u7s"])
def u7s() -> None:
    pass


@u7s.command(
    "run",
    help=_(
        "Run the node (rootlesskit, CRI, kubelet, kube-proxy as u7s-admin) in the foreground "
        "under the built-in supervisor (hosts without systemd)."
    ),
    epilog=_("Examples:\n\n  podsec u7s run\n\n  podsec u7s start   # the same, in the background"),
)
def run_cmd() -> int:
    from podsec.u7s import supervisor
    from podsec.u7s.layout import layout_for

    env = context.get()
    layout = layout_for(env.host, env.settings.u7s_user)
    return supervisor.Supervisor(env.host, layout).run()


@u7s.command(
    "start",
    help=_("Start the built-in supervisor in the background and wait until the namespace is up."),
    epilog=_("Examples:\n\n  podsec u7s start\n\n  podsec u7s status"),
)
def start_cmd() -> None:
    from podsec.u7s import lifecycle
    from podsec.u7s.layout import layout_for

    env = context.get()
    layout = layout_for(env.host, env.settings.u7s_user)
    pid = lifecycle.start(env.host, layout)
    output.info(_("u7s supervisor running (pid {pid})").format(pid=pid))


@u7s.command(
    "stop",
    help=_("Stop the built-in supervisor and every process of the node."),
    epilog=_("Examples:\n\n  podsec u7s stop"),
)
def stop_cmd() -> None:
    from podsec.u7s import supervisor
    from podsec.u7s.layout import layout_for

    env = context.get()
    layout = layout_for(env.host, env.settings.u7s_user)
    if supervisor.stop(env.host, layout):
        output.info(_("u7s stopped"))
    else:
        output.info(_("u7s was not running"))


@u7s.command(
    "status",
    help=_("Show the node's processes, their host uids and restarts."),
    epilog=_("Examples:\n\n  podsec u7s status\n\n  podsec u7s status --json"),
)
@click.option("--json", "json_output", is_flag=True, help=_("Print JSON."))
@click.pass_context
def status_cmd(ctx: click.Context, json_output: bool) -> int:
    from podsec.u7s import lifecycle
    from podsec.u7s.layout import layout_for

    env = context.with_json(ctx, json_output)
    layout = layout_for(env.host, env.settings.u7s_user)
    st = lifecycle.status(env.host, layout)
    if env.json:
        output.emit_json(st)
    else:
        rows = [
            (name, s.get("pid") or "-", s.get("uid", "-"), s.get("restarts", 0))
            for name, s in st["services"].items()
        ]
        output.table(
            _("u7s node of {user} (uid {uid})").format(user=layout.user, uid=layout.uid),
            [_("service"), _("pid"), _("host uid"), _("restarts")],
            rows,
        )
        output.info("kube-proxy: " + st["services"]["kube-proxy"]["where"])
    return 0 if st["running"] else 3


@u7s.command(
    "nsenter",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    help=_(
        "Run a command (default: a shell) as u7s-admin inside the node's namespaces, "
        "where ctr, crictl and kubectl see the node's runtime."
    ),
    epilog=_("Examples:\n\n  podsec u7s nsenter\n\n  podsec u7s nsenter ctr -n k8s.io images ls"),
)
@click.option(
    "--timeout", default=30.0, show_default=True, help=_("Seconds to wait for the namespace.")
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def nsenter_cmd(timeout: float, command: tuple[str, ...]) -> int:
    from podsec.u7s import lifecycle

    env = context.get()
    return lifecycle.nsenter(env.host, list(command), timeout=timeout, user=env.settings.u7s_user)


@u7s.command("child", hidden=True)
@click.option("--spec", type=click.Path(path_type=Path), required=True)
def child_cmd(spec: Path) -> NoReturn:
    from podsec.u7s import child

    child.main(spec)


@u7s.command("service", hidden=True)
@click.argument("name")
def service_cmd(name: str) -> None:
    from podsec.u7s import supervisor
    from podsec.u7s.layout import layout_for

    env = context.get()
    layout = layout_for(env.host, env.settings.u7s_user)
    argv = supervisor.service_exec(env.host, layout, name)
    full = dict(os.environ)
    full.update(layout.env())
    full["PATH"] = os.environ.get("PATH", full["PATH"])
    sys.stdout.flush()
    os.execvpe(argv[0], argv, full)  # noqa: S606 - the service becomes its program


KUBEADM_EPILOG = _(
    "Examples:\n\n"
    "  export PATH=/usr/libexec/podsec/u7s/bin/:$PATH; kubeadm init\n\n"
    "  podsec u7s kubeadm init --pod-network-cidr=10.244.0.0/16\n\n"
    "  podsec u7s kubeadm join 192.168.1.10:6443 --token T --discovery-token-ca-cert-hash sha256:H\n\n"
    "  podsec u7s kubeadm reset\n\n"
    "  podsec u7s kubeadm token list   # any other subcommand runs inside the namespace"
)


@u7s.command(
    "kubeadm",
    context_settings={
        "ignore_unknown_options": True,
        "allow_interspersed_args": False,
        "help_option_names": [],
    },
    help=_(
        "kubeadm for a rootless node: init and join plan the node, pull the images, start "
        "rootlesskit, the CRI and the kubelet as u7s-admin and run the real kubeadm inside "
        "the namespace; reset undoes it; other subcommands run inside the namespace."
    ),
    epilog=KUBEADM_EPILOG,
)
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
def kubeadm_cmd(argv: tuple[str, ...]) -> int:
    from podsec.u7s import deploy

    env = context.get()
    return deploy.kubeadm(
        env.settings,
        env.host,
        argv,
        confirm=_confirm,
        progress=_StepProgress(),
        echo=click.echo,
    )


def _confirm(question: str) -> bool:
    """Asked only at a terminal: anywhere else the answer is no."""
    return sys.stdin.isatty() and click.confirm(question, default=False, err=True)


class _StepProgress:
    """One line per step on stderr: kubeadm's own output streams to stdout in between."""

    def __init__(self) -> None:
        import time

        self._t0 = time.monotonic()
        self._clock = time.monotonic

    def start(self, task: str, total: float | None = None, unit: str = "") -> None:
        output.info(
            _("[podsec {t:5.1f}s] {task} ...").format(t=self._clock() - self._t0, task=task)
        )

    def advance(self, task: str, amount: float = 1) -> None:
        pass

    def finish(self, task: str, note: str = "") -> None:
        output.info(
            _("[podsec {t:5.1f}s] {task} done").format(t=self._clock() - self._t0, task=task)
        )


kubeadm_main = legacy("podsec.cli.u7s:kubeadm_cmd", "podsec-u7s-kubeadm")
nsenter_u7s_main = legacy("podsec.cli.u7s:nsenter_cmd", "nsenter_u7s")


@u7s.group(
    "admission",
    help=_(
        "Signed images only on containerd nodes: the admission webhook that refuses pods "
        "whose images the signature policy does not accept."
    ),
)
def admission_group() -> None:
    pass


@admission_group.command(
    "serve",
    help=_(
        "Serve the HTTPS admission webhook of this node as u7s-admin (the node's supervisor "
        "runs it): its port is opened in the node's network namespace, each image is verified "
        "on the host's network with policy.json, registries.d and the signatures."
    ),
    epilog=_(
        "Examples:\n\n  podsec u7s admission serve\n\n  podsec u7s admission serve --cache-ttl 0"
    ),
)
@click.option("--port", default=9443, show_default=True, help=_("TCP port of the webhook."))
@click.option(
    "--cache-ttl",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    help=_(
        "Seconds an accepted verdict is reused for the same image digest while policy.json, "
        "registries.d and the keys stay unchanged (0: verify every time)."
    ),
)
def admission_serve_cmd(port: int, cache_ttl: float) -> None:
    from podsec.u7s import admission
    from podsec.u7s.layout import layout_for

    env = context.get()
    layout = layout_for(env.host, env.settings.u7s_user)
    admission.node_webhook(env.host, layout, port=port, ttl=cache_ttl).serve_forever()


@admission_group.command(
    "check",
    help=_("Say whether the node's policy accepts an image (what the webhook would answer)."),
    epilog=_("Examples:\n\n  podsec u7s admission check registry.local/p10/busybox:1.35"),
)
@click.argument("image")
def admission_check_cmd(image: str) -> int:
    from podsec.u7s import admission

    env = context.get()
    ok, reason = admission.verify_image(env.host, image)
    output.result(f"{image}: {'accepted' if ok else 'rejected'} ({reason})")
    return 0 if ok else 1


@u7s.command(
    "pull",
    help=_(
        "Pull images into the node's image store through skopeo, so the host's signature "
        "policy (policy.json, registries.d) decides what gets in."
    ),
    epilog=_("Examples:\n\n  podsec u7s pull registry.local/p10/busybox:1.35"),
)
@click.argument("images", nargs=-1, required=True)
def pull_cmd(images: tuple[str, ...]) -> None:
    from podsec.u7s import node_images
    from podsec.u7s.layout import layout_for

    env = context.get()
    layout = layout_for(env.host, env.settings.u7s_user)
    node_images.pull(env.host, layout, images, _StepProgress())


@u7s.command(
    "install",
    help=_(
        "Install /usr/libexec/podsec/u7s/bin (kubeadm, nsenter_u7s, rootlessctl) and, with a "
        "node plan, the systemd units (system u7s.service, user units, delegation for "
        "u7s-admin only)."
    ),
    epilog=_(
        "Examples:\n\n  podsec u7s install\n\n"
        "  export PATH=/usr/libexec/podsec/u7s/bin/:$PATH; kubeadm init"
    ),
)
def install_cmd() -> None:
    from podsec.u7s import lifecycle

    env = context.get()
    for path in lifecycle.install(env.host, env.settings.u7s_user):
        output.info(_("installed {path}").format(path=env.host.unroot(path)))


# `podsec u7s ports add|remove|list|sync` (the port-sync controller) lives in its own module
u7s.add_command(ports)
