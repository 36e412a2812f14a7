"""``podsec monitor check-policy`` (``podsec-inotify-check-policy``): the container trust
settings of root and every user.

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
    "check-policy",
    _(
        "Examples:\n\n  podsec monitor check-policy -w 1 -c 100\n\n"
        "  podsec-inotify-check-policy -vvv -c 100 -M root"
    ),
)
@plugin_options
def check_policy_cmd(ctx: click.Context, options: PluginOptions, json_output: bool) -> NoReturn:
    from podsec.monitor import policy_check

    run_plugin(ctx, policy_check.PolicyCheck(), options, json_output)


# ---------------------------------------------------------------------- original name
check_policy_main = legacy(
    "podsec.cli.monitor_policy:check_policy_cmd", "podsec-inotify-check-policy", plugin=True
)
