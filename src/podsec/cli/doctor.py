"""``podsec doctor``: the rootless readiness preflight."""

from __future__ import annotations

import click

from podsec.cli import context, output
from podsec.cli.main import GROUP_HELP
from podsec.i18n import _

_STYLE = {"ok": "[green]ok[/green]", "warn": "[yellow]warn[/yellow]", "fail": "[red]fail[/red]"}


@click.command(
    help=GROUP_HELP["doctor"],
    epilog=_(
        "Examples:\n\n  podsec doctor\n\n  podsec doctor --json | jq '.checks[] | select(.status != \"ok\")'"
    ),
)
@click.option("--json", "json_output", is_flag=True, help=_("Print the checks as JSON."))
@click.option("--no-tools", is_flag=True, help=_("Skip the external program versions."))
@click.pass_context
def doctor(ctx: click.Context, json_output: bool, no_tools: bool) -> int:
    from podsec.host import preflight

    env = context.with_json(ctx, json_output)
    report = preflight.doctor(env.host, tools=not no_tools)
    checks, counts = report.checks, report.summary
    if env.json:
        output.emit_json(report)
    else:
        rows = [(c.id, _STYLE[c.status], c.found, c.fix) for c in checks]
        output.table(_("podsec doctor"), [_("check"), _("status"), _("found"), _("fix")], rows)
        output.result(
            _("{ok} ok, {warn} warnings, {fail} failures").format(
                ok=counts["ok"], warn=counts["warn"], fail=counts["fail"]
            )
        )
    return 1 if counts["fail"] else 0
