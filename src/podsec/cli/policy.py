"""``podsec policy``: create the node's image trust policy, show it, explain a decision."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from podsec.cli import context, output
from podsec.cli.main import GROUP_HELP, legacy
from podsec.i18n import _
from podsec.names import KEYS_URL

if TYPE_CHECKING:
    from podsec.trust.policy import Requirement
    from podsec.trust.signature import Claims


@click.group(help=GROUP_HELP["policy"])
def policy() -> None:
    pass


# ------------------------------------------------------------------------------ policy create
@policy.command(
    "create",
    help=_(
        "Configure this node's container trust: /etc/hosts names, groups podman and "
        "podman_dev, /var/sigstore, a reject-by-default policy.json accepting registry.local "
        "only with the image makers' keys, registries.d lookaside, registry.local as HTTP. "
        "On a node that is not the registry node, the published policy and keys are "
        "installed only when pinned with --trust."
    ),
    epilog=_(
        "Examples:\n\n  podsec policy create 192.168.1.10\n\n"
        "  podsec policy create 192.168.1.10 --trust sha256:4f2c...  (other nodes)\n\n"
        "  podsec policy create 192.168.1.10 --force  (move names mapped elsewhere)"
    ),
)
@click.argument("registry_ip")
@click.option("--force", is_flag=True, help=_("Move registry.local etc. from another address."))
@click.option(
    "--trust",
    "trust",
    multiple=True,
    metavar="FINGERPRINT|sha256:HEX",
    help=_("Pin for the published policy (sha256) or a maker key (fingerprint); repeatable."),
)
@click.option(
    "--registry-node/--client-node",
    "registry_node",
    default=None,
    help=_("Override the automatic check whether REGISTRY_IP is an address of this node."),
)
@click.option(
    "--pause-image",
    metavar="IMAGE",
    help=_("Pod infra (pause) image for podman, e.g. registry.local/k8s-p10/pause:3.9."),
)
@click.option("--json", "json_output", is_flag=True, help=_("Print the report as JSON."))
@click.pass_context
def create_policy_cmd(
    ctx: click.Context,
    *,
    registry_ip: str,
    force: bool,
    trust: tuple[str, ...],
    registry_node: bool | None,
    pause_image: str | None,
    json_output: bool,
) -> None:
    from podsec.trust import setup

    env = context.with_json(ctx, json_output)
    with output.progress(not env.json) as prog:
        report = setup.create_policy(
            env.host,
            registry_ip,
            force=force,
            trust=trust,
            registry_node=registry_node,
            pause_image=pause_image,
            progress=prog,
        )
    if env.json:
        output.emit_json(report)
        return
    role = _("registry node") if report.registry_node else _("client node")
    output.result(_("podsec policy for {addr} ({role})").format(addr=report.address, role=role))
    for path in report.changed:
        output.result(_("  changed:   {path}").format(path=path))
    for path in report.unchanged:
        output.result(_("  unchanged: {path}").format(path=path))
    for note in report.notes:
        output.info(note)
    if report.pins:
        output.info(
            _("other nodes: podsec policy create {addr} {pins}").format(
                addr=report.address, pins=" ".join(f"--trust {p}" for p in report.pins)
            )
        )


create_policy_main = legacy("podsec.cli.policy:create_policy_cmd", "podsec-create-policy")


@policy.command(
    "sync",
    help=_(
        "On a client node: install the registry node's published policy.json, keys and the "
        "registries.d podsec writes for them — only when --trust pins cover them (as for "
        "policy create); prints what differed. Nothing changes when a pin does not match."
    ),
    epilog=_(
        "Examples:\n\n  podsec policy sync --trust sha256:4f2c...\n\n"
        "  podsec policy sync --trust FINGERPRINT --trust sha256:<hex of carol.pub>"
    ),
)
@click.option(
    "--trust",
    "trust",
    multiple=True,
    metavar="FINGERPRINT|sha256:HEX",
    help=_("Pin for the published policy (sha256) or a maker key; repeatable."),
)
@click.option(
    "--keys-url",
    default=KEYS_URL,
    show_default=True,
    metavar="URL",
    help=_("Where the registry node publishes its policy and keys."),
)
@click.option("--json", "json_output", is_flag=True, help=_("Print the report as JSON."))
@click.pass_context
def sync_cmd(
    ctx: click.Context, *, trust: tuple[str, ...], keys_url: str, json_output: bool
) -> None:
    from podsec.trust import sync

    env = context.with_json(ctx, json_output)
    report = sync.sync(env.host, trust, keys_url=keys_url)
    if env.json:
        output.emit_json(report)
        return
    for line in sync.describe(report.drift_before):
        output.info(_("was: {what}").format(what=line))
    for path in report.changed:
        output.result(_("  changed:   {path}").format(path=path))
    if not report.changed:
        output.result(_("in sync with {url}").format(url=keys_url))


# ------------------------------------------------------------------------------ show / explain
def _req_text(r: Requirement) -> str:
    text = str(r.type)
    if r.keys:
        text += " " + ",".join(r.keys)
    if r.key_data:
        text += " keyData"
    if r.signed_identity:
        text += f" ({r.signed_identity.get('type')})"
    return text


@policy.command(
    "show",
    help=_("Show the policy that applies to a user (their own file or the system one)."),
    epilog=_("Examples:\n\n  podsec policy show\n\n  podsec policy show --user alice --json"),
)
@click.option("--user", "user", metavar="USER", help=_("Whose view (default: yourself)."))
@click.option("--json", "json_output", is_flag=True, help=_("Print as JSON."))
@click.pass_context
def policy_show_cmd(ctx: click.Context, user: str | None, json_output: bool) -> None:
    from podsec.trust import view

    env = context.with_json(ctx, json_output)
    shown = view.for_user(env.host, user)
    if env.json:
        output.emit_json(shown)
        return
    trust, p = shown.view, shown.view.policy
    output.result(
        _("policy file: {path} (user {name})").format(path=trust.policy_shown, name=shown.user)
    )
    output.result(_("registries.d: {path}").format(path=trust.regd_shown))
    output.result(
        _("default lookaside: {url}").format(
            url=trust.default_lookaside or _("built-in ({url})").format(url=trust.regd.builtin)
        )
    )
    for warning in trust.warnings:
        output.info(warning)
    rows = [("*", "default", "; ".join(_req_text(r) for r in p.default))]
    for t in sorted(p.transports):
        for scope, reqs in sorted(p.transports[t].items()):
            rows.append((t, scope or '""', "; ".join(_req_text(r) for r in reqs)))
    output.table(None, [_("transport"), _("scope"), _("requirements")], rows)


@policy.command(
    "explain",
    help=_(
        "Explain the decision for IMAGE: policy file, transport, most specific scope and "
        "its requirements, keys, lookaside URL — and the verdict after actually fetching "
        "and verifying the signatures."
    ),
    epilog=_(
        "Examples:\n\n  podsec policy explain registry.local/k8s-p10/pause:3.9\n\n"
        "  podsec policy explain docker://docker.io/library/busybox --user alice --json"
    ),
)
@click.argument("image")
@click.option("--user", "user", metavar="USER", help=_("Whose view (default: yourself)."))
@click.option("--json", "json_output", is_flag=True, help=_("Print as JSON."))
@click.pass_context
def policy_explain_cmd(ctx: click.Context, image: str, user: str | None, json_output: bool) -> None:
    from podsec.registry import explain
    from podsec.trust import policy as pol

    env = context.with_json(ctx, json_output)
    e = explain.explain_for(env.host, image, user)
    v = e.verdict
    if env.json:
        output.emit_json(e)
    else:
        scope_text = (
            _("the global default")
            if v.scope == pol.DEFAULT_SCOPE
            else f'transports.{e.transport}["{v.scope}"]'
        )
        lines = [
            _("policy file:  {v}").format(v=e.policy_file),
            _("transport:    {v}").format(v=e.transport),
            _("reference:    {v}").format(v=e.reference),
            _("digest:       {v}").format(v=e.manifest_digest or "-"),
            _("scope:        {v}").format(v=scope_text),
        ]
        lines += [_("requirement:  {v}").format(v=_req_text(r)) for r in v.requirements]
        if v.lookaside_url:
            lines.append(_("signatures:   {v}/signature-N").format(v=v.lookaside_url))
        if v.attachments:
            lines.append(_("attachments:  {v} (sigstore)").format(v=v.attachments))
        for s in v.signatures:
            lines.append(f"  signature-{s.index} [{'ok' if s.ok else '--'}] {s.reason}")
            lines.append("    " + _claims_text(s.claims))
        verdict_text = _("ACCEPTED") if v.accepted else _("REFUSED")
        lines.append(_("verdict:      {v}: {reason}").format(v=verdict_text, reason=v.reason))
        for line in lines:
            output.result(line)
        for warning in e.warnings:
            output.info(warning)
    if not v.accepted:
        ctx.exit(1)


def _claims_text(claims: Claims | None) -> str:
    """A signature's own claims, read without verification (for ``policy explain``)."""
    if claims is None:
        return _("claims: -")
    if claims.problem and not claims.docker_reference:
        return _("claims (unverified): key {key}; {problem}").format(
            key=claims.key_id or "?", problem=claims.problem
        )
    return _("claims (unverified): identity {ref}, digest {digest}, key {key}").format(
        ref=claims.docker_reference or "?",
        digest=claims.manifest_digest or "?",
        key=claims.key_id or "?",
    )
