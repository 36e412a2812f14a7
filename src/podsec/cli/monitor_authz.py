"""``podsec monitor check-authz`` (``podsec-inotify-check-authz``): the revocation webhook
answers.

One module per plugin: a plugin imports only its own command, not the whole
``podsec monitor`` group (issue 17: plugins start every minute on every node).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

import click

from podsec.cli.main import legacy
from podsec.cli.monitor_options import HELP, PLUGIN_SETTINGS, plugin_options, run_plugin
from podsec.i18n import _

if TYPE_CHECKING:
    from podsec.monitor.plugin import PluginOptions


@click.command(
    "check-authz",
    context_settings=PLUGIN_SETTINGS,
    help=HELP["check-authz"],
    epilog=_(
        "Exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (not set up here).\n\n"
        "Examples:\n\n  podsec monitor check-authz\n\n  podsec-inotify-check-authz -w 20 -c 500"
    ),
)
@plugin_options
def check_authz_cmd(ctx: click.Context, options: PluginOptions, json_output: bool) -> NoReturn:
    from podsec.monitor import authz_check

    run_plugin(ctx, authz_check.AuthzCheck(), options, json_output)


# ---------------------------------------------------------------------- original name
check_authz_main = legacy(
    "podsec.cli.monitor_authz:check_authz_cmd", "podsec-inotify-check-authz", plugin=True
)
