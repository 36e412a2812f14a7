"""``podsec monitor watch-containers`` (``podsec-inotify-check-containers``): the watcher of
every container's files.

One module per plugin: a plugin imports only its own command, not the whole
``podsec monitor`` group (issue 17: plugins start every minute on every node).
"""

from __future__ import annotations

import click

from podsec.cli import context
from podsec.cli.main import legacy
from podsec.cli.monitor_options import HELP, PLUGIN_SETTINGS, sink_options, warn
from podsec.i18n import _


# ------------------------------------------------------------------------ watch-containers
@click.command(
    "watch-containers",
    context_settings=PLUGIN_SETTINGS,
    help=HELP["watch-containers"],
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


# ---------------------------------------------------------------------- original name
check_containers_main = legacy(
    "podsec.cli.monitor_containers:watch_containers_cmd", "podsec-inotify-check-containers"
)
