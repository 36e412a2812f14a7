"""``podsec users``: image users (group podman) and image makers (group podman_dev)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from podsec.cli import context, output
from podsec.cli.main import GROUP_HELP, legacy
from podsec.errors import UsageError
from podsec.i18n import _
from podsec.names import REGISTRY_HOST

if TYPE_CHECKING:
    from podsec.trust.users import UserReport


@click.group(help=GROUP_HELP["users"])
def users() -> None:
    pass


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


def _print_users(reports: Sequence[UserReport], json_out: bool) -> None:
    if json_out:
        output.emit_json(reports)
        return
    for r in reports:
        state = _("created") if r.created else _("exists")
        line = f"{r.name}: {state}"
        if r.lock:
            line += "; " + _("~/.config/containers locked: {kind}").format(kind=r.lock)
        if r.fingerprint and r.sign_by is None:
            line += "; " + _(
                "sigstore key {pin} for {scope} (sign with podsec images sign --sigstore)"
            ).format(pin=r.fingerprint, scope=r.scope)
        elif r.fingerprint:
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


create_podmanusers_main = legacy("podsec.cli.users:create_podman_cmd", "podsec-create-podmanusers")


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
        "\n\n  podsec users create-imagemaker --sigstore carol@apps\n\n"
        "  then, as carol: podsec images sign --sigstore registry.local/apps/IMG:1"
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
    default=REGISTRY_HOST,
    show_default=True,
    help=_("Key uid e-mail domain: USER@DOMAIN is what --sign-by takes."),
)
@click.option(
    "--sigstore",
    "use_sigstore",
    is_flag=True,
    help=_(
        "A sigstore (cosign) key pair instead of a GPG key: ~/.config/podsec/sigstore.key "
        "(encrypted with the passphrase, empty if none is given), /var/sigstore/keys/USER.pub, "
        "a sigstoreSigned rule and use-sigstore-attachments for the scope."
    ),
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
    use_sigstore: bool,
    json_output: bool,
) -> None:
    from podsec.trust import users as tusers

    env = context.with_json(ctx, json_output)
    parsed = tusers.parse_maker_specs(specs)
    tusers.check_email_domain(email_domain)  # before any secret is read or account made
    names = [s.user for s in parsed]
    pw, pp = _read_secrets(names, passwords=password_stdin, passphrases=passphrase_stdin)
    with output.progress(not env.json) as prog:
        reports = tusers.create_imagemakers(
            env.host,
            parsed,
            passwords=pw,
            passphrases=pp,
            email_domain=email_domain,
            use_sigstore=use_sigstore,
            progress=prog,
        )
    _print_users(reports, env.json)
    from podsec.trust import setup

    if not env.json and any(setup.PUBLISHED_POLICY in r.changed for r in reports):
        from podsec.host import etc_hosts

        address = etc_hosts.lookup(env.host, REGISTRY_HOST) or "REGISTRY_IP"
        pins = " ".join(f"--trust {p}" for p in setup.pin_values(env.host))
        if pins:
            output.info(
                _(
                    "the published policy changed; other nodes: podsec policy create {addr} {pins}"
                ).format(addr=address, pins=pins)
            )


create_imagemakeruser_main = legacy(
    "podsec.cli.users:create_imagemaker_cmd", "podsec-create-imagemakeruser"
)


@users.command(
    "rotate-key",
    help=_(
        "Rotate an image maker's signing key without an outage: a new key is added beside the "
        "old one in every scope that trusts it (keyPaths), then becomes the one the maker signs "
        "with. Re-sign what the registry holds (podsec images resign), then --retire OLD "
        "removes the old key — only when images audit shows every image signed by a key that "
        "stays; otherwise it lists what would break and changes nothing. Each step can be "
        "re-run."
    ),
    epilog=_(
        "Examples:\n\n  podsec users rotate-key carol\n\n"
        "  (as carol) podsec images resign --sigstore registry.local/apps\n\n"
        "  podsec users rotate-key carol --retire carol.pub"
    ),
)
@click.argument("user", metavar="USER")
@click.option(
    "--retire",
    metavar="KEY",
    help=_("Remove this key (file name in /var/sigstore/keys, or path) from the policy."),
)
@click.option(
    "--passphrase-stdin", is_flag=True, help=_("Read the new key's passphrase from stdin.")
)
@click.option(
    "--registry",
    default=REGISTRY_HOST,
    show_default=True,
    metavar="HOST[:PORT]",
    help=_("Registry audited before a key is retired."),
)
@click.option("--json", "json_output", is_flag=True, help=_("Print the report as JSON."))
@click.pass_context
def rotate_key_cmd(
    ctx: click.Context,
    *,
    user: str,
    retire: str | None,
    passphrase_stdin: bool,
    registry: str,
    json_output: bool,
) -> None:
    env = context.with_json(ctx, json_output)
    if retire is not None:
        from podsec.registry import rotation

        with output.progress(not env.json) as prog:
            done = rotation.retire_key(env.host, user, retire, registry=registry, progress=prog)
        if env.json:
            output.emit_json(done)
        elif done.retired is None:
            output.result(_("{user}: no key to retire").format(user=user))
        else:
            output.result(
                _("{user}: {key} retired; kept {kept} ({n} images checked)").format(
                    user=user, key=done.retired, kept=", ".join(done.kept), n=done.checked
                )
            )
            for path in done.changed:
                output.result(_("  changed:   {path}").format(path=path))
        return
    from podsec.trust import rotate

    passphrase = None
    if passphrase_stdin:
        import sys

        passphrase = sys.stdin.readline().rstrip("\n")
    done_rot = rotate.rotate_key(env.host, user, passphrase=passphrase)
    if env.json:
        output.emit_json(done_rot)
        return
    if done_rot.already:
        output.result(
            _("{user}: already rotated to {new}; re-sign, then --retire {old}").format(
                user=user, new=done_rot.new, old=done_rot.old.rsplit("/", 1)[-1]
            )
        )
    else:
        output.result(
            _("{user}: new key {new} beside {old} (pin: --trust {pin})").format(
                user=user, new=done_rot.new, old=done_rot.old, pin=done_rot.pin
            )
        )
    for path in done_rot.changed:
        output.result(_("  changed:   {path}").format(path=path))
    how = (
        _("podsec images resign --sigstore SCOPE")
        if done_rot.kind == "sigstore"
        else _("podsec images resign --sign-by {fpr} SCOPE").format(fpr=done_rot.sign_by)
    )
    output.info(
        _("next, as {user}: {how}; then podsec users rotate-key {user} --retire {old}").format(
            user=user, how=how, old=done_rot.old.rsplit("/", 1)[-1]
        )
    )
