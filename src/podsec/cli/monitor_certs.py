"""``podsec monitor check-certs`` (``podsec-inotify-check-certs``): the client certificates
podsec issued.

One module per plugin: a plugin imports only its own command, not the whole
``podsec monitor`` group (issue 17: plugins start every minute on every node).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

import click

from podsec.cli.main import legacy
from podsec.cli.monitor_options import plugin_command, plugin_options, run_plugin
from podsec.i18n import _

if TYPE_CHECKING:
    from podsec.monitor.plugin import PluginOptions


@plugin_command(
    "check-certs",
    _("Examples:\n\n  podsec monitor check-certs\n\n  podsec-inotify-check-certs --days 14 -vv"),
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


# ---------------------------------------------------------------------- original name
check_certs_main = legacy(
    "podsec.cli.monitor_certs:check_certs_cmd", "podsec-inotify-check-certs", plugin=True
)
