"""``podsec monitor``: Nagios-compatible checks and watchers of the node's security.

The plugin commands print one Nagios status line (+ perfdata and long output) and exit
0/1/2/3; anything unexpected is UNKNOWN (3). Their original names (``podsec-inotify-*``)
take the original flags. Under those names ``--help`` exits 3 as the Nagios plugin
guidelines ask; under ``podsec monitor`` it exits 0 like every podsec command.

Each plugin's command lives in its own module (podsec.cli.monitor_policy, _images, _keys,
_drift, _certs, _authz, _vuln, _containers, _kubeapi), imported only when used: a plugin
started under its original name never imports this group or the other plugins (issue 17).
The shared plugin machinery and the commands' help texts are in podsec.cli.monitor_options,
every rule in podsec.monitor.
"""

from __future__ import annotations

import click

from podsec.cli import context
from podsec.cli.main import GROUP_HELP, LazyGroup
from podsec.cli.monitor_options import HELP, PLUGIN_SETTINGS
from podsec.i18n import _


@click.group(
    cls=LazyGroup,
    lazy={
        "check-policy": "podsec.cli.monitor_policy:check_policy_cmd",
        "check-images": "podsec.cli.monitor_images:check_images_cmd",
        "check-authz": "podsec.cli.monitor_authz:check_authz_cmd",
        "check-keys": "podsec.cli.monitor_keys:check_keys_cmd",
        "check-drift": "podsec.cli.monitor_drift:check_drift_cmd",
        "check-certs": "podsec.cli.monitor_certs:check_certs_cmd",
        "watch-containers": "podsec.cli.monitor_containers:watch_containers_cmd",
        "watch-kubeapi": "podsec.cli.monitor_kubeapi:watch_kubeapi_cmd",
        "check-vuln": "podsec.cli.monitor_vuln:check_vuln_cmd",
        "build-invulnerable-image": "podsec.cli.monitor_vuln:build_image_cmd",
    },
    helps=HELP,
    help=GROUP_HELP["monitor"],
    epilog=_(
        "Examples:\n\n  podsec monitor check-policy -w 1 -c 100\n\n"
        "  podsec monitor watch-kubeapi -d\n\n  podsec monitor check-vuln -m admin@example.org"
    ),
)
def monitor() -> None:
    pass


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
