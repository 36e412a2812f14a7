"""``podsec services``: registry.local and sigstore.local — configs and units, status, a foreground supervisor."""

from __future__ import annotations

import click

from podsec.cli import context, output
from podsec.cli.main import GROUP_HELP, legacy
from podsec.i18n import _


@click.group(help=GROUP_HELP["services"])
def services() -> None:
    pass


# ------------------------------------------------------------------------------ services
@services.command(
    "create",
    help=_(
        "Write podsec's own configs for registry.local (docker-registry on :80) and "
        "sigstore.local (nginx on :81, /var/sigstore read-only, listing only keys/) and "
        "their systemd units; enable and start them when systemd runs the host."
    ),
    epilog=_(
        "Examples:\n\n  podsec services create\n\n  podsec services create --address 192.168.1.10"
    ),
)
@click.option("--address", metavar="IP", help=_("Listen on this address only (default: all)."))
@click.option("--no-enable", is_flag=True, help=_("Do not enable the units."))
@click.option("--json", "json_output", is_flag=True, help=_("Print the report as JSON."))
@click.pass_context
def create_services_cmd(
    ctx: click.Context, address: str | None, no_enable: bool, json_output: bool
) -> None:
    from podsec.registry import service

    env = context.with_json(ctx, json_output)
    report = service.create_services(env.host, address=address, enable=not no_enable)
    if env.json:
        output.emit_json(report)
        return
    for path in report.changed:
        output.result(_("  changed:   {path}").format(path=path))
    for path in report.unchanged:
        output.result(_("  unchanged: {path}").format(path=path))
    for note in report.notes:
        output.info(note)


create_services_main = legacy("podsec.cli.services:create_services_cmd", "podsec-create-services")


@services.command(
    "status",
    help=_("Show whether registry.local and sigstore.local are configured and answering."),
    epilog=_("Examples:\n\n  podsec services status\n\n  podsec services status --json"),
)
@click.option("--json", "json_output", is_flag=True, help=_("Print the status as JSON."))
@click.pass_context
def services_status_cmd(ctx: click.Context, json_output: bool) -> None:
    from podsec.registry import service

    env = context.with_json(ctx, json_output)
    states = service.status(env.host)
    if env.json:
        output.emit_json(states)
    else:
        output.table(
            None,
            [_("service"), _("config"), _("unit"), _("answering"), _("detail")],
            [
                (
                    s.name,
                    s.config if s.config_present else _("missing"),
                    s.unit if s.unit_installed else _("missing"),
                    _("yes") if s.answering else _("no"),
                    s.detail,
                )
                for s in states
            ],
        )
    if not all(s.answering for s in states):
        ctx.exit(1)


@services.command(
    "run",
    help=_(
        "Run registry.local and sigstore.local in the foreground (hosts without systemd): "
        "a crashed service is restarted; SIGTERM or Ctrl-C stops both cleanly."
    ),
    epilog=_("Examples:\n\n  podsec services run\n\n  podsec services run --address 192.168.1.10"),
)
@click.option("--address", metavar="IP", help=_("Listen on this address only (default: all)."))
@click.option("--registry-port", type=int, default=80, show_default=True, help=_("Registry port."))
@click.option("--sigstore-port", type=int, default=81, show_default=True, help=_("Signature port."))
@click.option("--nginx-user", metavar="USER", help=_("Account of the nginx workers."))
@click.pass_context
def services_run_cmd(
    ctx: click.Context,
    *,
    address: str | None,
    registry_port: int,
    sigstore_port: int,
    nginx_user: str | None,
) -> None:
    import signal

    from podsec.registry import service

    env = context.get(ctx)
    sup = service.Supervisor(
        env.host,
        address=address,
        registry_port=registry_port,
        sigstore_port=sigstore_port,
        nginx_user=nginx_user,
        log=output.info,
    )
    signal.signal(signal.SIGTERM, sup.stop)
    signal.signal(signal.SIGINT, sup.stop)
    ctx.exit(sup.run())
