"""``podsec monitor``: Nagios-compatible checks and watchers of the node's security.

The plugin commands print one Nagios status line (+ perfdata and long output) and exit
0/1/2/3; anything unexpected is UNKNOWN (3). Their original names (``podsec-inotify-*``)
take the original flags. Under those names ``--help`` exits 3 as the Nagios plugin
guidelines ask; under ``podsec monitor`` it exits 0 like every podsec command.

Kept as one module over 500 lines: one command group, each command a few lines of core call
under its options and help; the shared plugin machinery is in podsec.cli.monitor_options,
every rule in podsec.monitor.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from podsec.cli import context
from podsec.cli.main import legacy
from podsec.cli.monitor_options import (
    PLUGIN_EPILOG,
    PLUGIN_SETTINGS,
    plugin_options,
    run_plugin,
    sink_options,
    warn,
)
from podsec.i18n import _

if TYPE_CHECKING:
    from podsec.monitor.plugin import PluginOptions


@click.group(
    help=_("Security monitoring: Nagios plugins and watchers."),
    epilog=_(
        "Examples:\n\n  podsec monitor check-policy -w 1 -c 100\n\n"
        "  podsec monitor watch-kubeapi -d\n\n  podsec monitor check-vuln -m admin@example.org"
    ),
)
def monitor() -> None:
    pass


@monitor.command(
    "check-policy",
    context_settings=PLUGIN_SETTINGS,
    help=_(
        "Check the container trust settings of root and every user with a container storage "
        "(weights 101-107 and 90 x share, as the original podsec)."
    ),
    epilog=PLUGIN_EPILOG
    + "\n\n"
    + _(
        "Examples:\n\n  podsec monitor check-policy -w 1 -c 100\n\n"
        "  podsec-inotify-check-policy -vvv -c 100 -M root"
    ),
)
@plugin_options
def check_policy_cmd(ctx: click.Context, options: PluginOptions, json_output: bool) -> NoReturn:
    from podsec.monitor import policy_check

    run_plugin(ctx, policy_check.PolicyCheck(), options, json_output)


@monitor.command(
    "check-images",
    context_settings=PLUGIN_SETTINGS,
    help=_(
        "Check the images in root's and every user's storage: registries without signatures "
        "(101), images whose signature is missing or does not verify (102), images from "
        "registries outside the policy (103)."
    ),
    epilog=PLUGIN_EPILOG
    + "\n\n"
    + _("Examples:\n\n  podsec monitor check-images -c 100\n\n  podsec-inotify-check-images -vv"),
)
@plugin_options
def check_images_cmd(ctx: click.Context, options: PluginOptions, json_output: bool) -> NoReturn:
    from podsec.monitor import images_check

    run_plugin(ctx, images_check.ImagesCheck(), options, json_output)


@monitor.command(
    "check-authz",
    context_settings=PLUGIN_SETTINGS,
    help=_(
        "Check that the revocation webhook answers (podsec rbac enforce-revocation, u7s "
        "control-plane nodes): ask it what the API server asks, at the URL and with the "
        "pinned CA of /etc/kubernetes/podsec-authz/webhook.kubeconfig. CRITICAL when it does "
        "not answer or cannot read revoked.json: Kubernetes then lets revoked certificates "
        "through (an unreachable webhook is 'no opinion', RBAC decides alone). The metric "
        "is the answer's time in ms."
    ),
    epilog=_(
        "Exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (not set up here).\n\n"
        "Examples:\n\n  podsec monitor check-authz\n\n  podsec-inotify-check-authz -w 20 -c 500"
    ),
)
@plugin_options
def check_authz_cmd(ctx: click.Context, options: PluginOptions, json_output: bool) -> NoReturn:
    from podsec.monitor import authz_check

    run_plugin(ctx, authz_check.AuthzCheck(), options, json_output)


@monitor.command(
    "check-keys",
    context_settings=PLUGIN_SETTINGS,
    help=_(
        "Check the signer keys the system policy trusts: a key that expires within --days "
        "days (weight 1); an expired, revoked or unreadable key, one weaker than the site's "
        "minimum (RSA below --min-rsa bits, DSA, SHA-1 self-signatures) or without an owner "
        "(not /var/sigstore/keys/USER.pgp|pub of an existing user) (weight 101). Without -w "
        "any finding warns; the default -c 100 makes the weight-101 ones CRITICAL."
    ),
    epilog=PLUGIN_EPILOG
    + "\n\n"
    + _("Examples:\n\n  podsec monitor check-keys\n\n  podsec-inotify-check-keys --days 60 -vv"),
)
@click.option(
    "--days",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help=_("Warn this many days before a key expires."),
)
@click.option(
    "--min-rsa",
    type=click.IntRange(min=1024),
    default=3072,
    show_default=True,
    help=_("Smallest acceptable RSA key size (bits)."),
)
@plugin_options
def check_keys_cmd(ctx: click.Context, options: PluginOptions, json_output: bool) -> NoReturn:
    from podsec.monitor import keys_check

    check = keys_check.KeysCheck(days=float(ctx.params["days"]), min_rsa=int(ctx.params["min_rsa"]))
    run_plugin(ctx, check, options, json_output)


@monitor.command(
    "check-drift",
    context_settings=PLUGIN_SETTINGS,
    help=_(
        "Compare this node's policy.json, registries.d and keys with the registry node's "
        "published ones (--keys-url): a key trusted here that the registry node no longer "
        "trusts (weight 101, CRITICAL with the default -c 100), any other difference (weight "
        "1). The registry node unreachable is UNKNOWN. podsec policy sync fixes the drift."
    ),
    epilog=PLUGIN_EPILOG
    + "\n\n"
    + _("Examples:\n\n  podsec monitor check-drift\n\n  podsec-inotify-check-drift -vv"),
)
@click.option(
    "--keys-url",
    default="http://sigstore.local:81/keys/",
    show_default=True,
    metavar="URL",
    help=_("Where the registry node publishes its policy and keys."),
)
@plugin_options
def check_drift_cmd(ctx: click.Context, options: PluginOptions, json_output: bool) -> NoReturn:
    from podsec.monitor import drift_check

    run_plugin(ctx, drift_check.DriftCheck(str(ctx.params["keys_url"])), options, json_output)


@monitor.command(
    "check-certs",
    context_settings=PLUGIN_SETTINGS,
    help=_(
        "Check the client certificates podsec issued (/var/lib/podsec/rbac/issued.json) "
        "against the API server's audit log: a certificate in use that expires within --days "
        "days (weight 1), a revoked certificate whose user was seen after the revocation "
        "(weight 101). Without -w any finding warns; the default -c 100 makes a revoked "
        "certificate in use CRITICAL."
    ),
    epilog=PLUGIN_EPILOG
    + "\n\n"
    + _("Examples:\n\n  podsec monitor check-certs\n\n  podsec-inotify-check-certs --days 14 -vv"),
)
@click.option(
    "--days",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help=_("Warn this many days before an in-use certificate expires."),
)
@plugin_options
def check_certs_cmd(ctx: click.Context, options: PluginOptions, json_output: bool) -> NoReturn:
    from podsec.monitor import certs_check

    days = float(ctx.params["days"])
    run_plugin(ctx, certs_check.CertsCheck(days=days), options, json_output)


# ------------------------------------------------------------------------ watch-containers
@monitor.command(
    "watch-containers",
    context_settings=PLUGIN_SETTINGS,
    help=_(
        "Watch the files of every container (root's, each user's rootless storage, "
        "u7s-admin's) and log changes to syslog: home/root/etc as Warning, the rest as Critical."
    ),
    epilog=_(
        "Runs until stopped (systemd unit podsec-inotify-check-containers.service).\n\n"
        "Examples:\n\n  podsec monitor watch-containers\n\n"
        "  podsec monitor watch-containers --json --syslog-socket /run/test.sock"
    ),
)
@click.option(
    "--max-user-watches",
    type=int,
    default=1048576,
    show_default=True,
    help=_("Raise fs.inotify.max_user_watches to this (never lowers it)."),
)
@click.option("--json", "json_output", is_flag=True, help=_("Also print each event as JSON."))
@click.option("-v", "verbose", count=True, help=_("Also print each event on stdout."))
@sink_options
@click.pass_context
def watch_containers_cmd(
    ctx: click.Context,
    *,
    max_user_watches: int,
    json_output: bool,
    verbose: int,
    syslog_socket: str,
    smtp: str,
) -> None:
    import json

    from podsec.monitor import containers_watch, sinks
    from podsec.monitor.daemon import Watcher, run_watcher

    env = context.get(ctx)
    containers_watch.raise_watch_limit(env.host, max_user_watches)

    def watcher(syslog: sinks.Syslog) -> Watcher:
        def emit(event: containers_watch.ContainerEvent) -> None:
            syslog.log(event.priority, event.message())
            if json_output:
                click.echo(json.dumps(event.as_dict(), ensure_ascii=False))
            elif verbose:
                click.echo(event.message())

        def notice(priority: int, text: str) -> None:
            syslog.log(priority, text)
            if priority <= 4 or verbose:
                click.echo(f"{containers_watch.TAG}: {text}", err=True)

        return containers_watch.ContainersWatcher(env.host, emit, notice)

    run_watcher(containers_watch.TAG, syslog_socket, watcher, warn=warn)


# --------------------------------------------------------------------------- watch-kubeapi
@monitor.command(
    "watch-kubeapi",
    context_settings=PLUGIN_SETTINGS,
    help=_(
        "Report Kubernetes API requests answered with a code above 400 (as the seed; --codes "
        "narrows it, e.g. to 401,403) from the apiserver audit log: -d follows the log, -m "
        "(also with no option, as the seed) mails the digest."
    ),
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


# ----------------------------------------------------------------------------- check-vuln
@monitor.command(
    "check-vuln",
    context_settings=PLUGIN_SETTINGS,
    help=_(
        "Scan root's and every user's images with trivy (client/server mode, "
        "U7S_TRIVY_SERVER port 4954) and report HIGH and CRITICAL vulnerabilities."
    ),
    epilog=_(
        "Exit codes: 0 OK, 1 WARNING (HIGH found or trivy DB stale), 2 CRITICAL, 3 UNKNOWN "
        "(trivy failed).\n\nExamples:\n\n  podsec monitor check-vuln\n\n"
        "  U7S_TRIVY_SERVER=trivy.local podsec monitor check-vuln -m admin@example.org"
    ),
)
@click.option("-m", "--mail", "mailto", metavar="EMAIL", help=_("Mail findings to EMAIL."))
@click.option("--server", metavar="HOST[:PORT]", help=_("Trivy server (default U7S_TRIVY_SERVER)."))
@click.option(
    "--db-max-age",
    type=float,
    default=48.0,
    show_default=True,
    help=_("Warn when trivy's vulnerability DB is older than this many hours."),
)
@click.option("-v", "verbosity", count=True, help=_("More long output."))
@click.option("-t", "--timeout", type=float, default=3000.0, show_default=True)
@click.option("--json", "json_output", is_flag=True, help=_("Print the report as JSON."))
@sink_options
@click.pass_context
def check_vuln_cmd(
    ctx: click.Context,
    *,
    mailto: str | None,
    server: str | None,
    db_max_age: float,
    verbosity: int,
    timeout: float,
    json_output: bool,
    syslog_socket: str,
    smtp: str,
) -> NoReturn:
    from podsec.monitor import vuln
    from podsec.monitor.plugin import PluginOptions

    options = PluginOptions(
        verbosity=verbosity,
        timeout=timeout,
        mailto=mailto,
        syslog_socket=syslog_socket,
        smtp=smtp,
    )
    run_plugin(ctx, vuln.VulnCheck(server, db_max_age), options, json_output)


@monitor.command(
    "build-invulnerable-image",
    context_settings={**PLUGIN_SETTINGS, "ignore_unknown_options": True},
    help=_(
        "Build IMAGE from DOCKERFILE (optional; CONTEXT defaults to the current directory) "
        "with podman and scan it with trivy; without DOCKERFILE the existing IMAGE is only "
        "scanned. A vulnerable image built here is removed."
    ),
    epilog=_(
        "Exit codes (as the original): 0 clean, 2 build failed, 3 trivy failed, 4 HIGH, "
        "5 CRITICAL.\n\nExamples:\n\n"
        "  podsec monitor build-invulnerable-image registry.local/app:1 Dockerfile .\n\n"
        "  podsec-inotify-build-invulnerable-image registry.local/app:1"
    ),
)
@click.argument("image")
@click.argument("dockerfile", required=False)
@click.argument("build_context", metavar="[CONTEXT]", required=False)
@click.argument("build_opts", metavar="[PODMAN BUILD OPTIONS]...", nargs=-1, type=click.UNPROCESSED)
@click.option("--server", metavar="HOST[:PORT]", help=_("Trivy server (default U7S_TRIVY_SERVER)."))
@sink_options
@click.pass_context
def build_image_cmd(
    ctx: click.Context,
    *,
    image: str,
    dockerfile: str | None,
    build_context: str | None,
    build_opts: tuple[str, ...],
    server: str | None,
    syslog_socket: str,
    smtp: str,
) -> NoReturn:
    from podsec.monitor import sinks, vuln

    env = context.get(ctx)
    syslog = sinks.Syslog(vuln.BUILD_TAG, syslog_socket)
    result = vuln.build_and_scan(
        image,
        dockerfile,
        build_context,
        build_opts,
        server or env.settings.trivy_server,
        log=syslog.log,
        trivy=env.settings.trivy,
    )
    click.echo(result.text)
    syslog.close()
    sys.exit(result.code)


# --------------------------------------------------------------------------------- install
@monitor.command(
    "install",
    context_settings=PLUGIN_SETTINGS,
    help=_(
        "Install the monitoring units and timers, the NRPE/Nagios/Icinga2 configs and the "
        "nagwad sed file under the host root."
    ),
    epilog=_("Examples:\n\n  podsec monitor install\n\n  podsec --root /srv/img monitor install"),
)
@click.option(
    "--enable", is_flag=True, help=_("Enable the watchers and timers (systemctl --root).")
)
@click.pass_context
def install_cmd(ctx: click.Context, enable: bool) -> None:
    from podsec.monitor import install

    env = context.get(ctx)
    for path in install.install(env.host, enable=enable):
        click.echo(_("updated {path}").format(path=path))


# ---------------------------------------------------------------------- original names
check_policy_main = legacy(
    "podsec.cli.monitor:check_policy_cmd", "podsec-inotify-check-policy", plugin=True
)
check_images_main = legacy(
    "podsec.cli.monitor:check_images_cmd", "podsec-inotify-check-images", plugin=True
)
check_keys_main = legacy(
    "podsec.cli.monitor:check_keys_cmd", "podsec-inotify-check-keys", plugin=True
)
check_drift_main = legacy(
    "podsec.cli.monitor:check_drift_cmd", "podsec-inotify-check-drift", plugin=True
)
check_certs_main = legacy(
    "podsec.cli.monitor:check_certs_cmd", "podsec-inotify-check-certs", plugin=True
)
check_authz_main = legacy(
    "podsec.cli.monitor:check_authz_cmd", "podsec-inotify-check-authz", plugin=True
)
check_vuln_main = legacy(
    "podsec.cli.monitor:check_vuln_cmd", "podsec-inotify-check-vuln", plugin=True
)
check_containers_main = legacy(
    "podsec.cli.monitor:watch_containers_cmd", "podsec-inotify-check-containers"
)
check_kubeapi_main = legacy("podsec.cli.monitor:watch_kubeapi_cmd", "podsec-inotify-check-kubeapi")
build_invulnerable_image_main = legacy(
    "podsec.cli.monitor:build_image_cmd", "podsec-inotify-build-invulnerable-image"
)
