"""``podsec images``: air-gapped archives, loading and signing, signature audit.

``save``, ``save-k8s``, ``load-sign`` and ``load`` are registered from podsec.cli.archives;
``audit`` is here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from podsec.cli import archives, context, output
from podsec.cli.main import GROUP_HELP
from podsec.errors import UsageError
from podsec.i18n import _
from podsec.names import REGISTRY_HOST


@click.group(help=GROUP_HELP["images"])
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
        output.emit_json(report)
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


# ------------------------------------------------------------------------------ images sign
_SIGN_OPTIONS = [
    click.option("--sigstore", "use_sigstore", is_flag=True, help=_("Make sigstore signatures.")),
    click.option(
        "--key",
        "key_path",
        type=click.Path(path_type=Path, dir_okay=False),
        help=_("sigstore private key (default ~/.config/podsec/sigstore.key)."),
    ),
    click.option("--sign-by", metavar="KEY", help=_("GPG key to sign with (simple signatures).")),
    click.option(
        "--passphrase-file",
        type=click.Path(path_type=Path, dir_okay=False),
        help=_("File with the key's passphrase (sigstore: default empty; GPG: else gpg-agent)."),
    ),
    click.option(
        "--registry-url", metavar="URL", help=_("Registry base URL (default: from the image name).")
    ),
    click.option("--json", "json_output", is_flag=True, help=_("Print the result as JSON.")),
]


def _sign_options(func: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(_SIGN_OPTIONS):
        func = option(func)
    return func


def _sign_request(images_: tuple[str, ...], options: dict[str, Any]) -> Any:
    """The SignRequest of the sign options (validated; the passphrase read from its file)."""
    import os

    from podsec.registry import sign
    from podsec.trust.sigstore_keys import USER_PRIVATE_KEY

    use_sigstore, key_path, sign_by = (
        options["use_sigstore"],
        options["key_path"],
        options["sign_by"],
    )
    if use_sigstore == bool(sign_by):
        raise UsageError(_("give either --sigstore or --sign-by KEY"))
    if key_path is not None and not use_sigstore:
        raise UsageError(_("--key is the sigstore private key: use it with --sigstore"))
    passphrase = ""
    passphrase_file = options["passphrase_file"]
    if passphrase_file is not None:
        try:
            passphrase = passphrase_file.read_text().rstrip("\n")
        except OSError as exc:
            raise UsageError(
                _("{path}: cannot read: {err}").format(path=passphrase_file, err=exc.strerror)
            ) from exc
    home = Path.home()
    if use_sigstore and key_path is None:
        key_path = home / USER_PRIVATE_KEY
    gnupg = os.environ.get("GNUPGHOME")
    return sign.SignRequest(
        images=images_,
        sigstore_key=key_path if use_sigstore else None,
        passphrase=passphrase,
        sign_by=sign_by,
        gnupg_home=Path(gnupg) if gnupg else None,
        home=None if os.geteuid() == 0 else home,
        registry_url=options["registry_url"],
    )


def _report_signed(ctx: click.Context, env: Any, done: list[Any]) -> None:
    if env.json:
        output.emit_json([d.as_dict() for d in done])
    else:
        output.table(
            _("signed images"),
            [_("image"), _("digest"), _("kind"), _("new"), _("verdict")],
            [
                (
                    d.image,
                    d.digest[:19],
                    d.kind,
                    _("yes") if d.added else _("no"),
                    _("accepted") if d.accepted else _("REFUSED: ") + d.reason,
                )
                for d in done
            ],
        )
    if not all(d.accepted for d in done):
        ctx.exit(1)


@images.command(
    "sign",
    help=_(
        "Sign images that are already in a registry, in Python: --sigstore makes a cosign key "
        "signature with your sigstore key and pushes it as an attachment (sha256-<hex>.sig); "
        "--sign-by KEY writes a GPG simple signature into your registries.d lookaside-staging. "
        "Each image is then checked against the policy; exit 1 if one is not accepted."
    ),
    epilog=_(
        "Examples:\n\n"
        "  podsec images sign --sigstore registry.local/k8s-p10/myimg:1\n\n"
        "  podsec images sign --sigstore --key ~/keys/old.key --passphrase-file ~/.pass IMG\n\n"
        "  podsec images sign --sign-by alice@registry.local registry.local/k8s-p10/myimg:1"
    ),
)
@click.argument("images_", metavar="IMAGE...", nargs=-1, required=True)
@_sign_options
@click.pass_context
def sign_cmd(ctx: click.Context, /, images_: tuple[str, ...], **options: Any) -> None:
    from podsec.registry import sign

    env = context.with_json(ctx, options["json_output"])
    request = _sign_request(images_, options)
    with output.progress(not env.json) as prog:
        done = sign.sign_images(env.host, request, progress=prog)
    _report_signed(ctx, env, done)


@images.command(
    "resign",
    help=_(
        "Sign every image the registry holds under SCOPE (all of it without one) with your "
        "current key — after podsec users rotate-key, so that --retire can drop the old key. "
        "Images already signed by the key are left alone; each is then checked against the "
        "policy."
    ),
    epilog=_(
        "Examples:\n\n  podsec images resign --sigstore registry.local/apps\n\n"
        "  podsec images resign --sign-by FINGERPRINT registry.local/k8s-p10"
    ),
)
@click.argument("scopes", metavar="[SCOPE]...", nargs=-1)
@click.option(
    "--registry",
    default=REGISTRY_HOST,
    show_default=True,
    metavar="HOST[:PORT]",
    help=_("Registry whose images are signed."),
)
@_sign_options
@click.pass_context
def resign_cmd(
    ctx: click.Context, /, scopes: tuple[str, ...], registry: str, **options: Any
) -> None:
    from podsec.registry import sign

    env = context.with_json(ctx, options["json_output"])
    request = _sign_request((), options)
    with output.progress(not env.json) as prog:
        done = sign.resign(env.host, request, registry=registry, scopes=scopes, progress=prog)
    if not done and not env.json:
        output.info(
            _("no image in {registry} under {scopes}").format(
                registry=registry, scopes=", ".join(scopes) or "/"
            )
        )
    _report_signed(ctx, env, done)
