"""``podsec monitor check-drift`` (``podsec-inotify-check-drift``): this node's trust settings
against the registry node's.

One module per plugin: a plugin imports only its own command, not the whole
``podsec monitor`` group (issue 17: plugins start every minute on every node).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

import click

from podsec.cli.main import legacy
from podsec.cli.monitor_options import plugin_command, plugin_options, run_plugin
from podsec.i18n import _
from podsec.names import KEYS_URL

if TYPE_CHECKING:
    from podsec.monitor.plugin import PluginOptions


@plugin_command(
    "check-drift",
    _("Examples:\n\n  podsec monitor check-drift\n\n  podsec-inotify-check-drift -vv"),
)
@click.option(
    "--keys-url",
    default=KEYS_URL,
    show_default=True,
    metavar="URL",
    help=_("Where the registry node publishes its policy and keys."),
)
@plugin_options
def check_drift_cmd(ctx: click.Context, options: PluginOptions, json_output: bool) -> NoReturn:
    from podsec.monitor import drift_check

    run_plugin(ctx, drift_check.DriftCheck(str(ctx.params["keys_url"])), options, json_output)


# ---------------------------------------------------------------------- original name
check_drift_main = legacy(
    "podsec.cli.monitor_drift:check_drift_cmd", "podsec-inotify-check-drift", plugin=True
)
