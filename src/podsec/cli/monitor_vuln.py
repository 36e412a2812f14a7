"""``podsec monitor check-vuln`` and ``build-invulnerable-image``
(``podsec-inotify-check-vuln``, ``podsec-inotify-build-invulnerable-image``): images
scanned with trivy.

One module per plugin: a plugin imports only its own command, not the whole
``podsec monitor`` group (issue 17: plugins start every minute on every node).
"""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from podsec.cli import context
from podsec.cli.main import legacy
from podsec.cli.monitor_options import HELP, PLUGIN_SETTINGS, run_plugin, sink_options
from podsec.i18n import _


# ----------------------------------------------------------------------------- check-vuln
@click.command(
    "check-vuln",
    context_settings=PLUGIN_SETTINGS,
    help=HELP["check-vuln"],
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


@click.command(
    "build-invulnerable-image",
    context_settings={**PLUGIN_SETTINGS, "ignore_unknown_options": True},
    help=HELP["build-invulnerable-image"],
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


# ---------------------------------------------------------------------- original name
check_vuln_main = legacy(
    "podsec.cli.monitor_vuln:check_vuln_cmd", "podsec-inotify-check-vuln", plugin=True
)
build_invulnerable_image_main = legacy(
    "podsec.cli.monitor_vuln:build_image_cmd", "podsec-inotify-build-invulnerable-image"
)
