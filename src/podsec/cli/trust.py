"""``podsec policy``, ``podsec users``, ``podsec services``: the image-trust area."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from typing import Any

import click

from podsec.cli import context, output
from podsec.cli.main import legacy
from podsec.errors import UsageError
from podsec.i18n import _


@click.group(help=_("Image trust policy: which images may be pulled, signed by whom."))
def policy() -> None:
    pass


@click.group(help=_("Image users (group podman) and image makers (group podman_dev)."))
def users() -> None:
    pass


@click.group(help=_("The local registry (registry.local) and signature server (sigstore.local)."))
def services() -> None:
    pass


def _as_json(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return obj


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
@click.option("--json", "json_output", is_flag=True, help=_("Print the report as JSON."))
@click.pass_context
def create_policy_cmd(
    ctx: click.Context,
    *,
    registry_ip: str,
    force: bool,
    trust: tuple[str, ...],
    registry_node: bool | None,
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
            progress=prog,
        )
    if env.json:
        output.emit_json(_as_json(report))
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


create_policy_main = legacy("podsec.cli.trust:create_policy_cmd", "podsec-create-policy")


# ------------------------------------------------------------------------------ users
def _read_secrets(
    names: Sequence[str], *, passwords: bool, passphrases: bool
) -> tuple[dict[str, str], dict[str, str]]:
    """Passwords/passphrases: from stdin (one line each, per user in order: password then
    passphrase), or prompted on a terminal; never from the command line."""
    pw: dict[str, str] = {}
    pp: dict[str, str] = {}
    if passwords or passphrases:
        lines = sys.stdin.read().splitlines()
        wanted = len(names) * (int(passwords) + int(passphrases))
        if len(lines) < wanted:
            raise UsageError(
                _("stdin has {have} line(s), {want} expected (one per user and secret)").format(
                    have=len(lines), want=wanted
                )
            )
        it = iter(lines)
        for name in names:
            if passwords:
                pw[name] = next(it)
            if passphrases:
                pp[name] = next(it)
        return pw, pp
    if sys.stdin.isatty():
        for name in names:
            value = click.prompt(
                _("password for {name} (empty: none)").format(name=name),
                default="",
                hide_input=True,
                confirmation_prompt=True,
                show_default=False,
            )
            if value:
                pw[name] = value
    return pw, pp


def _print_users(reports: Sequence[Any], json_out: bool) -> None:
    if json_out:
        output.emit_json([_as_json(r) for r in reports])
        return
    for r in reports:
        state = _("created") if r.created else _("exists")
        line = f"{r.name}: {state}"
        if r.lock:
            line += "; " + _("~/.config/containers locked: {kind}").format(kind=r.lock)
        if r.fingerprint:
            line += "; " + _("key {fpr} for {scope} (sign with --sign-by {by})").format(
                fpr=r.fingerprint, scope=r.scope, by=r.sign_by
            )
        if not r.password_set:
            line += "; " + _("no password set")
        output.result(line)
        for path in r.changed:
            output.result(_("  changed:   {path}").format(path=path))


@users.command(
    "create-podman",
    help=_(
        "Create image users (group podman) with a locked ~/.config/containers holding "
        "storage.conf; the system policy applies to them. Passwords only from "
        "--password-stdin (one line per user) or a terminal prompt."
    ),
    epilog=_(
        "Examples:\n\n  podsec users create-podman alice bob\n\n"
        "  printf 'pw1\\npw2\\n' | podsec users create-podman alice bob --password-stdin"
    ),
)
@click.argument("names", nargs=-1, required=True)
@click.option("--password-stdin", is_flag=True, help=_("Read one password per user from stdin."))
@click.option("--json", "json_output", is_flag=True, help=_("Print the report as JSON."))
@click.pass_context
def create_podman_cmd(
    ctx: click.Context, names: tuple[str, ...], password_stdin: bool, json_output: bool
) -> None:
    from podsec.trust import users as tusers

    env = context.with_json(ctx, json_output)
    tusers.check_users(names)
    pw, _pp = _read_secrets(names, passwords=password_stdin, passphrases=False)
    with output.progress(not env.json) as prog:
        reports = tusers.create_podman_users(env.host, names, passwords=pw, progress=prog)
    _print_users(reports, env.json)


create_podmanusers_main = legacy("podsec.cli.trust:create_podman_cmd", "podsec-create-podmanusers")


@users.command(
    "create-imagemaker",
    help=_(
        "Create image makers (groups podman, podman_dev) with a GPG signing key each, the "
        "public key in /var/sigstore/keys/USER.pgp and a signedBy rule for "
        "registry.local/REPO_PATH; their pushes with --sign-by sign into /var/sigstore. "
        "Without arguments: imagemaker for all of registry.local."
    ),
    epilog=_(
        "Examples:\n\n  podsec users create-imagemaker alice@k8s-p10 bob@apps\n\n"
        "  printf 'passphrase\\n' | podsec users create-imagemaker alice --passphrase-stdin\n\n"
        "  then, as alice: podman push --sign-by alice@registry.local IMG registry.local/k8s-p10/IMG"
    ),
)
@click.argument("specs", nargs=-1, metavar="[USER[@REPO_PATH]]...")
@click.option("--password-stdin", is_flag=True, help=_("Read one password per user from stdin."))
@click.option(
    "--passphrase-stdin",
    is_flag=True,
    help=_("Read one GPG key passphrase per user from stdin (after its password)."),
)
@click.option(
    "--email-domain",
    default="registry.local",
    show_default=True,
    help=_("Key uid e-mail domain: USER@DOMAIN is what --sign-by takes."),
)
@click.option("--json", "json_output", is_flag=True, help=_("Print the report as JSON."))
@click.pass_context
def create_imagemaker_cmd(
    ctx: click.Context,
    *,
    specs: tuple[str, ...],
    password_stdin: bool,
    passphrase_stdin: bool,
    email_domain: str,
    json_output: bool,
) -> None:
    from podsec.trust import users as tusers

    env = context.with_json(ctx, json_output)
    parsed = tusers.parse_maker_specs(specs)
    names = [s.user for s in parsed]
    pw, pp = _read_secrets(names, passwords=password_stdin, passphrases=passphrase_stdin)
    with output.progress(not env.json) as prog:
        reports = tusers.create_imagemakers(
            env.host,
            parsed,
            passwords=pw,
            passphrases=pp,
            email_domain=email_domain,
            progress=prog,
        )
    _print_users(reports, env.json)


create_imagemakeruser_main = legacy(
    "podsec.cli.trust:create_imagemaker_cmd", "podsec-create-imagemakeruser"
)
