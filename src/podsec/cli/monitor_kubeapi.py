"""``podsec monitor watch-kubeapi`` (``podsec-inotify-check-kubeapi``): refused Kubernetes
API requests from the audit log.

One module per plugin: a plugin imports only its own command, not the whole
``podsec monitor`` group (issue 17: plugins start every minute on every node).
"""

from __future__ import annotations

from pathlib import Path

import click

from podsec.cli import context
from podsec.cli.main import legacy
from podsec.cli.monitor_options import HELP, PLUGIN_SETTINGS, sink_options, warn
from podsec.i18n import _


# --------------------------------------------------------------------------- watch-kubeapi
@click.command(
    "watch-kubeapi",
    context_settings=PLUGIN_SETTINGS,
    help=HELP["watch-kubeapi"],
    epilog=_(
        "-d writes each record to syslog and /var/lib/podsec/u7s/log/kubeapi/forbidden.log and "
        "keeps its place (inode + offset) across restarts and log rotation. -m (the default) "
        "mails forbidden.log to root and starts it afresh, only after the mail was accepted.\n\n"
        "Examples:\n\n  podsec monitor watch-kubeapi -d\n\n"
        "  podsec monitor watch-kubeapi -d --codes 401,403\n\n"
        "  podsec monitor watch-kubeapi            # mail the digest (cron, every 10 minutes)\n\n"
        "  podsec monitor watch-kubeapi -m -M security@example.org\n\n"
        "  podsec monitor watch-kubeapi --install"
    ),
)
@click.option("-d", "--daemon", is_flag=True, help=_("Follow the audit log."))
@click.option(
    "-m", "--mail-digest", is_flag=True, help=_("Mail the collected records (the default).")
)
@click.option(
    "--codes",
    "codes_text",
    default="401-599",
    show_default=True,
    metavar="LIST",
    help=_("With -d: the response codes to report (codes and ranges, e.g. 401,403)."),
)
@click.option("--once", is_flag=True, help=_("With -d: process what is there, then exit."))
@click.option(
    "--install",
    is_flag=True,
    help=_("Install the audit policy and the apiserver audit flags into the static-pod manifest."),
)
@click.option(
    "--manifest",
    default="/etc/kubernetes/manifests/kube-apiserver.yaml",
    show_default=True,
    help=_("The kube-apiserver static-pod manifest for --install."),
)
@click.option(
    "--log",
    "log_path",
    default="/etc/kubernetes/audit/audit.log",
    show_default=True,
    help=_("The audit log to read."),
)
@click.option(
    "-M", "--mailto", metavar="EMAIL", help=_("Recipient of -m (default: MAILTO, else root).")
)
@click.option("--json", "json_output", is_flag=True, help=_("Print records as JSON lines."))
@sink_options
@click.pass_context
def watch_kubeapi_cmd(
    ctx: click.Context,
    *,
    daemon: bool,
    mail_digest: bool,
    once: bool,
    install: bool,
    manifest: str,
    log_path: str,
    mailto: str | None,
    json_output: bool,
    codes_text: str,
    syslog_socket: str,
    smtp: str,
) -> None:
    from podsec.errors import PodsecError, UsageError
    from podsec.monitor import audit_events, sinks
    from podsec.monitor import kubeapi_audit as ka
    from podsec.monitor.audit_events import Record
    from podsec.monitor.daemon import Watcher, run_watcher

    if sum((daemon, mail_digest, install)) > 1:
        raise UsageError(_("give only one of -d, -m or --install"))
    mail_digest = mail_digest or not (daemon or install)  # the seed: no option mails
    try:
        codes = audit_events.parse_codes(codes_text)
    except PodsecError as exc:
        raise UsageError(exc.message) from None
    if mailto is not None:
        sinks.check_recipient(mailto, "-M")
    env = context.get(ctx)
    if not install:
        _check_log_option(env.host.path(log_path), log_path)
    if install:
        from podsec.monitor import audit_install

        for path in audit_install.install_audit(env.host, manifest):
            click.echo(_("updated {path}").format(path=path))
        return
    paths = ka.Paths.for_host(env.host, log_path)
    if mail_digest:
        to = mailto or env.settings.mailto or "root"

        def send(subject: str, body: str) -> None:
            sinks.send_mail(to, subject, body, smtp=smtp)

        from podsec.monitor import kubeapi_digest

        count = kubeapi_digest.mail_digest(paths, send)
        click.echo(_("{count} record(s) mailed to {to}").format(count=count, to=to))
        return

    def watcher(syslog: sinks.Syslog) -> Watcher:
        forbidden = ka.ForbiddenLog(paths.forbidden)

        def sink(records: list[Record]) -> None:
            forbidden.write(records)
            for record in records:
                syslog.log(2, record.message())
                if json_output:
                    click.echo(record.to_json())

        def notice(priority: int, text: str) -> None:
            syslog.log(priority, text)
            click.echo(f"{ka.TAG}: {text}", err=True)
            if priority <= 2:
                problems.append(text)

        return ka.Watch(ka.follower(paths, sink, notice, codes=codes), forbidden, once=once)

    problems: list[str] = []
    run_watcher(ka.TAG, syslog_socket, watcher, warn=warn)
    if once and problems:
        ctx.exit(1)  # the Critical notice was the one line; --once reports it in its status


def _check_log_option(path: Path, shown: str) -> None:
    """``--log`` must be a regular file when it exists (a directory, FIFO or loop is a bad
    argument, exit 2); a missing log is followed until it appears."""
    from podsec import readers
    from podsec.errors import UsageError

    try:
        readers.require_regular(path)
    except readers.FileFormatError as exc:
        raise UsageError(
            _("--log {path}: {problem}").format(path=shown, problem=exc.problem)
        ) from None


# ---------------------------------------------------------------------- original name
check_kubeapi_main = legacy(
    "podsec.cli.monitor_kubeapi:watch_kubeapi_cmd", "podsec-inotify-check-kubeapi"
)
