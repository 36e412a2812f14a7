"""``podsec monitor check-images`` (``podsec-inotify-check-images``): the images in root's
and every user's storage.

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
    "check-images",
    _("Examples:\n\n  podsec monitor check-images -c 100\n\n  podsec-inotify-check-images -vv"),
)
@plugin_options
def check_images_cmd(ctx: click.Context, options: PluginOptions, json_output: bool) -> NoReturn:
    from podsec.monitor import images_check

    run_plugin(ctx, images_check.ImagesCheck(), options, json_output)


# ---------------------------------------------------------------------- original name
check_images_main = legacy(
    "podsec.cli.monitor_images:check_images_cmd", "podsec-inotify-check-images", plugin=True
)
