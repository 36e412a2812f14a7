"""``podsec monitor``: Nagios-compatible checks and watchers of the node's security."""

from __future__ import annotations

import click

from podsec.i18n import _


@click.group(help=_("Security monitoring: Nagios plugins and watchers."))
def monitor() -> None:
    pass
