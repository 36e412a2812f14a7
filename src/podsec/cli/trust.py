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
from podsec.names import REGISTRY_HOST


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
    "podsec.cli.trust:create_imagemaker_cmd", "podsec-create-imagemakeruser"
)


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
        output.emit_json(_as_json(report))
        return
    for path in report.changed:
        output.result(_("  changed:   {path}").format(path=path))
    for path in report.unchanged:
        output.result(_("  unchanged: {path}").format(path=path))
    for note in report.notes:
        output.info(note)


create_services_main = legacy("podsec.cli.trust:create_services_cmd", "podsec-create-services")


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
        output.emit_json([_as_json(s) for s in states])
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


# ------------------------------------------------------------------------------ show / explain
def _user_home(env: context.CliEnv, user: str | None) -> tuple[str, Any]:
    import getpass
    from pathlib import Path

    from podsec.errors import NotFoundError
    from podsec.host import accounts

    name = user or getpass.getuser()
    entry = accounts.get_user(env.host, name)
    if entry is None:
        if user:
            raise NotFoundError(_("user {name} does not exist").format(name=name))
        return name, None
    return name, Path(entry.home)


def _req_text(r: Any) -> str:
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
    from podsec.trust import policy as pol
    from podsec.trust import view

    env = context.with_json(ctx, json_output)
    name, home = _user_home(env, user)
    trust = view.effective(env.host, home)
    p, conf, shown = trust.policy, trust.regd, trust.policy_shown
    regd_shown = trust.regd_shown
    lookaside = conf.default_docker.url() if conf.default_docker else None
    if env.json:
        output.emit_json(
            {
                "user": name,
                "policy_file": shown,
                "registries_d": regd_shown,
                "default_lookaside": lookaside or conf.builtin,
                "warnings": list(trust.warnings),
                "policy": pol.to_json(p),
                "signed_registries": pol.signed_registries(p),
                "unsigned_registries": pol.unsigned_registries(p),
            }
        )
        return
    output.result(_("policy file: {path} (user {name})").format(path=shown, name=name))
    output.result(_("registries.d: {path}").format(path=regd_shown))
    output.result(
        _("default lookaside: {url}").format(
            url=lookaside or _("built-in ({url})").format(url=conf.builtin)
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
    name, home = _user_home(env, user)
    e = explain.explain(env.host, image, home)
    v = e.verdict
    if env.json:
        output.emit_json(
            {
                "image": image,
                "user": name,
                "policy_file": e.policy_file,
                "registries_d": e.registries_d,
                "warnings": list(e.warnings),
                "transport": e.transport,
                "reference": e.reference,
                "manifest_digest": e.manifest_digest,
                "scope": v.scope,
                "requirements": [r.to_json() for r in v.requirements],
                "keys": list(v.keys),
                "lookaside_url": v.lookaside_url,
                "signatures": [_as_json(s) for s in v.signatures],
                "accepted": v.accepted,
                "reason": v.reason,
            }
        )
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


def _claims_text(claims: Any) -> str:
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


# ------------------------------------------------------------------------------ images audit
@click.command(
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
    default="registry.local",
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
        data = _as_json(report)
        data["findings"] = report.findings
        output.emit_json(data)
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
