"""Image users (group ``podman``) and image makers (groups ``podman`` + ``podman_dev``).

Image users get a locked ``~/.config/containers`` holding only ``storage.conf``: they have
no policy of their own, so the system policy (reject by default, registry.local signed)
applies to them. The lock is ``chattr +i`` where the filesystem supports it, otherwise the
directory is made root-owned and read-only — the report says which.

Image makers get a GPG signing key (batch, optional passphrase), the public key in
``/var/sigstore/keys/USER.pgp``, a ``signedBy`` rule for ``registry.local/REPO_PATH`` in the
system policy (also published for other nodes), their own registries.d whose
``lookaside-staging`` makes ``podman push --sign-by`` write into /var/sigstore/sigstore, and
their own ``~/.config/containers/policy.json``: unrestricted as in the seed (they pull, tag
and build from third-party images), registry.local still only signed.
With ``--sigstore`` a maker gets a sigstore (cosign) key pair instead: the encrypted private
key in ``~/.config/podsec/sigstore.key``, the public key in ``/var/sigstore/keys/USER.pub``, a
``sigstoreSigned`` rule for the scope and ``use-sigstore-attachments: true`` for it in the
system's and the maker's registries.d (``podsec images sign --sigstore`` pushes there).
No other user's files are ever touched (the original rewrote every ~/.config policy).
All names and paths are validated before anything changes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from podsec.errors import NotFoundError, PodsecError, UsageError
from podsec.host import accounts, files
from podsec.host.paths import Host
from podsec.host.run import run
from podsec.i18n import _
from podsec.names import (
    GROUP_PODMAN,
    GROUP_PODMAN_DEV,
    LOOKASIDE_URL,
    PODMAN_DEV_ALIASES,
    REGISTRY_HOST,
    USER_REGISTRIES_D,
)
from podsec.progress import NULL_PROGRESS, Progress
from podsec.trust import keys as gpgkeys
from podsec.trust import policy as pol
from podsec.trust import reference, setup, sigstore_keys
from podsec.trust import registries_d as rd

DEFAULT_MAKER = "imagemaker"
IMMUTABLE = "immutable"
READ_ONLY = "read-only"
STORAGE_CONF = """\
# Written by podsec: rootless image storage of this user (the directory is locked).
[storage]
driver = "overlay"
graphroot = "{home}/.local/share/containers/storage"
"""


@dataclass(frozen=True)
class UserReport:
    name: str
    created: bool
    changed: tuple[str, ...] = ()
    lock: str | None = None
    fingerprint: str | None = None
    scope: str | None = None
    sign_by: str | None = None
    password_set: bool = False


@dataclass(frozen=True)
class MakerSpec:
    user: str
    scope: str  # registry.local or registry.local/PATH


def check_users(names: Sequence[str]) -> list[str]:
    if not names:
        raise UsageError(_("give at least one user name"))
    seen: set[str] = set()
    for name in names:
        accounts.check_name(name)
        if name == "root":
            raise UsageError(_("root cannot be an image user"))
        if name in seen:
            raise UsageError(_("user {name} is listed twice").format(name=name))
        seen.add(name)
    return list(names)


def parse_maker_specs(args: Sequence[str]) -> list[MakerSpec]:
    """``USER[@REPO_PATH]`` arguments (no argument: ``imagemaker``), validated together."""
    items = list(args) or [DEFAULT_MAKER]
    specs: list[MakerSpec] = []
    for item in items:
        user, sep, path = item.partition("@")
        path = path.strip("/")
        if path == REGISTRY_HOST or path.startswith(REGISTRY_HOST + "/"):
            path = path[len(REGISTRY_HOST) :].strip("/")
        if sep and not path and item.rstrip("/").endswith("@"):
            raise UsageError(_("{arg}: empty repository path").format(arg=item))
        if path and not reference.is_valid_repo_path(f"{REGISTRY_HOST}/{path}"):
            shown = path if len(path) <= 80 else path[:77] + "..."
            raise UsageError(
                _("{arg}: invalid repository path {path!r}").format(
                    arg=user + sep + shown, path=shown
                ),
                hint=_("use lower-case path components such as k8s-p10 or team/app"),
            )
        scope = f"{REGISTRY_HOST}/{path}" if path else REGISTRY_HOST
        specs.append(MakerSpec(user, scope))
    check_users([s.user for s in specs])
    scopes = [s.scope for s in specs]
    dup = next((s for s in scopes if scopes.count(s) > 1), None)
    if dup is not None:
        who = [s.user for s in specs if s.scope == dup]
        raise UsageError(
            _("{users}: all would sign the repository path {scope}").format(
                users=", ".join(who), scope=dup
            ),
            hint=_(
                "give each maker its own path as USER@PATH, e.g. {user}@k8s-p10 {other}@team/app"
            ).format(user=who[0], other=who[1]),
        )
    return specs


# ------------------------------------------------------------------------------ helpers
def _home(host: Host, name: str) -> tuple[accounts.User, Path]:
    user = accounts.get_user(host, name)
    if user is None:
        raise NotFoundError(_("user {name} does not exist").format(name=name))
    return user, host.path(user.home)


def set_password(host: Host, name: str, password: str) -> None:
    """Set the password from memory (stdin of chpasswd; never on a command line)."""
    if host.is_live:
        run(["chpasswd"], input=f"{name}:{password}\n", timeout=60)
        return
    # chpasswd has no --prefix: hash here (stdin), then usermod --prefix writes the hash.
    hashed = run(["openssl", "passwd", "-6", "-stdin"], input=password + "\n").stdout.strip()
    run(["usermod", "--prefix", str(host.root), "--password", hashed, "--", name], timeout=60)


def _create(host: Host, name: str, groups: tuple[str, ...]) -> bool:
    created = accounts.get_user(host, name) is None
    accounts.ensure_user(host, name, primary_group=GROUP_PODMAN, supplementary=groups)
    accounts.ensure_subids(host, name)
    return created


def is_immutable(path: Path) -> bool:
    result = run(["lsattr", "-d", str(path)], check=False, timeout=30)
    flags = result.stdout.split(" ", 1)[0] if result.ok else ""
    return "i" in flags


def _chattr(flag: str, path: Path) -> bool:
    return run(["chattr", "-R", flag, str(path)], check=False, timeout=60).ok


def lock_config_dir(
    host: Host, directory: Path, wanted: dict[str, str], uid: int, gid: int
) -> tuple[str, bool]:
    """Put ``wanted`` files into ``directory`` and lock it; return (lock kind, changed)."""
    current = (
        {name: files.read_text(directory / name) for name in wanted} if directory.is_dir() else {}
    )
    extra = (
        sorted(p.name for p in directory.iterdir() if p.name not in wanted)
        if directory.is_dir()
        else []
    )
    immutable = directory.is_dir() and is_immutable(directory)
    if immutable and current == wanted and not extra:
        return IMMUTABLE, False
    if immutable:
        _chattr("-i", directory)
    cfg = directory.parent
    if not cfg.is_dir():
        cfg.mkdir(parents=True)
        os.chown(cfg, uid, gid)
    directory.mkdir(exist_ok=True)
    changed = False
    for name, text in wanted.items():
        changed |= files.atomic_write(
            directory / name, text, mode=0o400, owner=uid, group=gid, backup=False
        )
    os.chown(directory, uid, gid)
    directory.chmod(0o500)
    if _chattr("+i", directory):
        return IMMUTABLE, True
    # No immutable bit here (tmpfs, overlay, no CAP_LINUX_IMMUTABLE): root-owned, read-only.
    for name in wanted:
        os.chown(directory / name, 0, gid)
        (directory / name).chmod(0o444)
    os.chown(directory, 0, gid)
    directory.chmod(0o555)
    return READ_ONLY, changed or True


# ------------------------------------------------------------------------------ image users
def create_podman_users(
    host: Host,
    names: Sequence[str],
    *,
    passwords: dict[str, str] | None = None,
    progress: Progress = NULL_PROGRESS,
) -> list[UserReport]:
    check_users(names)
    accounts.ensure_group(host, GROUP_PODMAN)
    out = []
    for name in names:
        progress.start(name)
        created = _create(host, name, (GROUP_PODMAN,))
        user, home = _home(host, name)
        if not home.is_dir():
            home.mkdir(parents=True, mode=0o700)
            os.chown(home, user.uid, user.gid)
        gid = accounts.gid(host, GROUP_PODMAN)
        lock, changed = lock_config_dir(
            host,
            home / ".config" / "containers",
            {"storage.conf": STORAGE_CONF.format(home=user.home)},
            user.uid,
            gid,
        )
        pw = (passwords or {}).get(name)
        if pw:
            set_password(host, name, pw)
        out.append(
            UserReport(
                name,
                created,
                (f"{user.home}/.config/containers",) if changed else (),
                lock,
                password_set=bool(pw),
            )
        )
        progress.finish(name)
    return out


# ------------------------------------------------------------------------------ image makers
def maker_registries_d(
    lookaside: str = LOOKASIDE_URL,
    staging: str = setup.STAGING,
    attachments: Sequence[str] = (),
) -> str:
    """The maker's own registries.d: lookaside + staging; ``attachments``: the scopes whose
    sigstore signatures are registry attachments (podman and podsec push them there)."""
    docker = {scope: rd.Section(use_sigstore_attachments=True) for scope in attachments}
    conf = rd.RegistriesD(rd.Section(lookaside, staging), docker)
    return rd.render(
        conf, "Written by podsec: your pushes with --sign-by sign into the signature server."
    )


def _gnupg_home(host: Host, user: accounts.User) -> Path:
    return host.path(user.home) / ".gnupg"


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, uid, gid)
        for n in dirnames + filenames:
            os.lchown(Path(dirpath) / n, uid, gid)


def _gpg_key(
    host: Host, user: accounts.User, spec: MakerSpec, passphrase: str | None, email_domain: str
) -> tuple[str, str, list[str]]:
    """(key path, fingerprint, changed files) of a new GPG signing key."""
    gnupg = _gnupg_home(host, user)
    if not gnupg.is_dir():
        gnupg.mkdir(mode=0o700)
    uid_text = f"{spec.user} <{spec.user}@{email_domain}>"
    try:
        key = gpgkeys.generate_key(gnupg, uid_text, passphrase=passphrase)
        armored = gpgkeys.export_public(gnupg, key.fingerprint)
    finally:
        # gpg-agent was started by us for this home: stop it, hand the home to the user
        run(["gpgconf", "--homedir", str(gnupg), "--kill", "all"], check=False, timeout=30)
        _chown_tree(gnupg, user.uid, user.gid)
    key_path = f"{setup.KEYS_DIR}/{spec.user}.pgp"
    changed = []
    dev = accounts.gid(host, GROUP_PODMAN_DEV)
    if gpgkeys.write_public(host.path(key_path), armored, owner=0, group=dev):
        changed.append(key_path)
    return key_path, key.fingerprint, changed


def _sigstore_key(
    host: Host, user: accounts.User, spec: MakerSpec, passphrase: str | None
) -> tuple[str, str, list[str]]:
    """(key path, pin, changed files) of a sigstore key pair: the encrypted private key in
    ``~/.config/podsec/sigstore.key`` (0600, the maker's), the public one published as
    ``/var/sigstore/keys/USER.pub``. An existing pair is kept (rotation makes new ones)."""
    private = host.path(user.home) / sigstore_keys.USER_PRIVATE_KEY
    key_path = f"{setup.KEYS_DIR}/{spec.user}{pol.SIGSTORE_KEY_SUFFIX}"
    public = host.path(key_path)
    changed = []
    if not (private.is_file() and public.is_file()):
        pair = sigstore_keys.generate((passphrase or "").encode())
        for d in (private.parent.parent, private.parent):
            if not d.is_dir():
                d.mkdir(mode=0o700)
                os.chown(d, user.uid, user.gid)
        files.atomic_write(private, pair.private_key, mode=0o600, owner=user.uid, group=user.gid)
        changed.append(f"{user.home}/{sigstore_keys.USER_PRIVATE_KEY}")
        dev = accounts.gid(host, GROUP_PODMAN_DEV)
        if files.atomic_write(public, pair.public_key, mode=0o644, owner=0, group=dev):
            changed.append(key_path)
    pin = "sha256:" + hashlib.sha256(public.read_bytes()).hexdigest()
    return key_path, pin, changed


def _make_one(
    host: Host,
    spec: MakerSpec,
    password: str | None,
    passphrase: str | None,
    email_domain: str,
    *,
    use_sigstore: bool = False,
    attachments: Sequence[str] = (),
) -> tuple[UserReport, str]:
    created = _create(host, spec.user, (GROUP_PODMAN, GROUP_PODMAN_DEV))
    user, home = _home(host, spec.user)
    if not home.is_dir():
        home.mkdir(parents=True, mode=0o700)
        os.chown(home, user.uid, user.gid)
    if use_sigstore:
        key_path, fingerprint, changed = _sigstore_key(host, user, spec, passphrase)
    else:
        key_path, fingerprint, changed = _gpg_key(host, user, spec, passphrase, email_domain)
    regd = host.path(user.home) / USER_REGISTRIES_D / "default.yaml"
    for d in (regd.parent.parent.parent, regd.parent.parent, regd.parent):
        if not d.is_dir():
            d.mkdir()
            os.chown(d, user.uid, user.gid)
    text = maker_registries_d(attachments=attachments)
    if files.atomic_write(regd, text, mode=0o644, owner=user.uid, group=user.gid):
        changed.append(f"{user.home}/{USER_REGISTRIES_D}/default.yaml")
    if password:
        set_password(host, spec.user, password)
    report = UserReport(
        spec.user,
        created,
        tuple(changed),
        None,
        fingerprint,
        spec.scope,
        None if use_sigstore else f"{spec.user}@{email_domain}",
        bool(password),
    )
    return report, key_path


def _write_maker_policy(host: Host, name: str, system: pol.Policy) -> str | None:
    """The maker's own unrestricted policy (setup.maker_policy); its path when written."""
    user, home = _home(host, name)
    path = home / pol.USER_POLICY
    text = pol.render(setup.maker_policy(system))
    pol.parse(text, "generated policy")
    if files.atomic_write(path, text, mode=0o644, owner=user.uid, group=user.gid):
        return f"{user.home}/{pol.USER_POLICY}"
    return None


def check_email_domain(domain: str) -> str:
    """The key uid's mail domain: a DNS name (``USER <USER@DOMAIN>`` must stay one uid; a
    domain such as ``a b <evil@x>`` would forge another identity), or UsageError."""
    import ipaddress

    from podsec.host import ssh

    try:
        ipaddress.ip_address(domain)
        valid = False  # USER@10.0.0.1 is not an address gpg or podman --sign-by agree on
    except ValueError:
        try:
            valid = ssh.host(domain) == domain and not domain.endswith(".")
        except UsageError:
            valid = False
    if not valid:
        raise UsageError(
            _("--email-domain {value!r}: not a DNS domain name").format(value=domain),
            hint=_("e.g. registry.local or example.org"),
        )
    return domain


def create_imagemakers(
    host: Host,
    specs: Sequence[MakerSpec],
    *,
    passwords: dict[str, str] | None = None,
    passphrases: dict[str, str] | None = None,
    email_domain: str = REGISTRY_HOST,
    use_sigstore: bool = False,
    progress: Progress = NULL_PROGRESS,
) -> list[UserReport]:
    """Create (or complete) image makers; see the module docstring. ``use_sigstore``: a
    sigstore key pair instead of a GPG key, a ``sigstoreSigned`` rule for the scope and
    ``use-sigstore-attachments`` for it in registries.d (the system's and the maker's)."""
    check_email_domain(email_domain)
    if not host.path(setup.KEYS_DIR).is_dir():
        raise UsageError(
            _("{path} does not exist: this is not a registry node yet").format(path=setup.KEYS_DIR),
            hint=_("run `podsec policy create REGISTRY_IP` on this node first"),
        )
    current = setup.load_system_policy(host)  # invalid → error before any change
    makers = setup.signed_scopes(current) if current is not None else {}
    attached = set(pol.sigstore_scopes(current) if current is not None else [])
    if use_sigstore:
        attached |= {spec.scope for spec in specs}
    for group in (GROUP_PODMAN, GROUP_PODMAN_DEV):
        accounts.ensure_group(host, group)
    out = []
    for spec in specs:
        progress.start(spec.user)
        report, key_path = _make_one(
            host,
            spec,
            (passwords or {}).get(spec.user),
            (passphrases or {}).get(spec.user),
            email_domain,
            use_sigstore=use_sigstore,
            attachments=sorted(attached),
        )
        makers[spec.scope] = tuple(dict.fromkeys((*makers.get(spec.scope, ()), key_path)))
        out.append(report)
        progress.finish(spec.user)
    policy = setup.base_policy(makers)
    if current is not None:  # keep transports/scopes the administrator added
        docker = {**current.transports.get("docker", {}), **policy.transports["docker"]}
        kept = setup.without_former(current).transports
        policy = pol.Policy((pol.reject(),), {**kept, **policy.transports, "docker": docker})
    written = setup.write_policy(host, policy, publish=True)
    if attached:  # the system's registries.d: attachments for the sigstore scopes
        regd_text = setup.registries_d_text(host, policy)
        if files.atomic_write(host.path(setup.REGISTRIES_D_FILE), regd_text, mode=0o644):
            written.append(setup.REGISTRIES_D_FILE)
    own = [_write_maker_policy(host, spec.user, policy) for spec in specs]
    for i, path in enumerate(own):
        if path:
            out[i] = replace(out[i], changed=(*out[i].changed, path))
    if written and out:
        first = out[0]
        out[0] = UserReport(
            first.name,
            first.created,
            (*first.changed, *written),
            first.lock,
            first.fingerprint,
            first.scope,
            first.sign_by,
            first.password_set,
        )
    return out


def require_image_maker() -> None:
    """Image makers are root or members of podman_dev (the original checked ``id``): the
    running process's own groups decide, as they decide what it may write."""
    import grp
    import pwd

    if os.geteuid() == 0:
        return
    user = pwd.getpwuid(os.getuid()).pw_name
    names = set()
    for gid in os.getgroups():
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    if not names & set(PODMAN_DEV_ALIASES):
        raise PodsecError(
            _("{user} is not an image maker (group podman_dev)").format(user=user),
            hint=_("podsec users create-imagemaker {user}").format(user=user),
        )
