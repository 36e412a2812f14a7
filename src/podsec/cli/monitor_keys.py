"""``podsec monitor check-keys`` (``podsec-inotify-check-keys``): the signer keys the system
policy trusts.

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
    "check-keys",
    _("Examples:\n\n  podsec monitor check-keys\n\n  podsec-inotify-check-keys --days 60 -vv"),
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


# ---------------------------------------------------------------------- original name
check_keys_main = legacy(
    "podsec.cli.monitor_keys:check_keys_cmd", "podsec-inotify-check-keys", plugin=True
)
