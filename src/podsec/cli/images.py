"""``podsec images``: air-gapped archives, loading and signing, signature audit.

``save``, ``save-k8s``, ``load-sign`` and ``load`` are registered from podsec.cli.archives;
``audit`` is here.
"""

from __future__ import annotations

import dataclasses

import click

from podsec.cli import archives, context, output
from podsec.i18n import _
from podsec.names import REGISTRY_HOST


@click.group(help=_("Image archives for air-gapped nodes, loading with signatures, audits."))
def images() -> None:
    pass


archives.register(images)


# ------------------------------------------------------------------------------ images audit
@images.command(
    "audit",
    help=_(
        "Check that every manifest digest in registry.local has at least one signature "
        "verifying with the key bound to its repository path; list unsigned digests, bad "
        "signatures and orphaned signature directories. Exit 1 on findings."
    ),
    epilog=_("Examples:\n\n  podsec images audit\n\n  podsec images audit --json"),
)
@click.option(
    "--registry",
    default=REGISTRY_HOST,
    show_default=True,
    metavar="HOST[:PORT]",
    help=_("Registry to audit (plain HTTP)."),
)
@click.option(
    "--signatures-dir",
    default="/var/sigstore/sigstore",
    show_default=True,
    metavar="DIR",
    help=_("Local lookaside directory checked for orphaned signatures."),
)
@click.option("--json", "json_output", is_flag=True, help=_("Print the report as JSON."))
@click.pass_context
def audit_cmd(ctx: click.Context, registry: str, signatures_dir: str, json_output: bool) -> None:
    from podsec.registry import audit

    env = context.with_json(ctx, json_output)
    with output.progress(not env.json) as prog:
        report = audit.audit(
            env.host,
            registry=registry,
            signatures_dir=env.host.path(signatures_dir),
            progress=prog,
        )
    if env.json:
        output.emit_json({**dataclasses.asdict(report), "findings": report.findings})
    else:
        output.table(
            _("images in {registry}").format(registry=registry),
            [_("repository"), _("tags"), _("digest"), _("status"), _("detail")],
            [
                (i.repository, ",".join(i.tags), i.digest[:19], i.status, i.reason)
                for i in report.items
            ],
        )
        for o in report.orphans:
            output.result(_("orphaned signatures: {path}").format(path=o))
        for n in report.notes:
            output.info(n)
        output.result(_("{n} finding(s)").format(n=report.findings))
    if report.findings:
        ctx.exit(1)
