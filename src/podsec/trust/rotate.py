"""Rotating an image maker's signing key without an outage (``podsec users rotate-key``).

The life of a rotation, each step idempotent and leaving a policy that accepts every image
that was accepted before:

1. :func:`rotate_key` makes a new key *beside* the old one: ``/var/sigstore/keys/USER.N.pub``
   (sigstore; generation N = 2, 3, …) or ``USER.N.pgp`` (GPG), and every scope that trusts
   the maker's current key trusts both (``keyPaths``). Only then does the maker's signing
   key switch: ``~/.config/podsec/sigstore.key`` becomes the new one (the old one is kept as
   ``sigstore.key.<old name>``), or for GPG the report names the new fingerprint to sign with.
   An interrupted run is completed by running it again; a finished rotation is not repeated
   until the old key is retired.
2. ``podsec images resign`` signs what the registry holds with the new key.
3. ``rotate-key --retire`` (:mod:`podsec.registry.rotation`) removes the old key from the
   policy only when every image of those scopes has a signature by a key that stays.

The files written here are the published policy's: other nodes pick the change up with
``podsec policy create … --trust`` (the new key pinned) as with any maker change.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from podsec.errors import NotFoundError, UsageError
from podsec.host import accounts, files
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.names import GROUP_PODMAN_DEV, REGISTRY_HOST
from podsec.trust import policy as pol
from podsec.trust import setup, sigstore_keys

GPG_SUFFIX = ".pgp"
_GENERATION = re.compile(r"(?P<user>[a-z_][a-z0-9_-]*)(?:\.(?P<n>[0-9]+))?\.(?P<kind>pub|pgp)")


@dataclass(frozen=True)
class KeyFile:
    path: str  # /var/sigstore/keys/USER[.N].pub|pgp
    user: str
    generation: int
    kind: str  # "sigstore" | "gpg"


def key_file(path: str) -> KeyFile | None:
    """What a key path of the policy says about its maker (None: not a podsec key)."""
    if not path.startswith(setup.KEYS_DIR + "/"):
        return None
    m = _GENERATION.fullmatch(Path(path).name)
    if m is None:
        return None
    kind = "sigstore" if m["kind"] == "pub" else "gpg"
    return KeyFile(path, m["user"], int(m["n"] or 1), kind)


def maker_keys(policy: pol.Policy, user: str) -> list[KeyFile]:
    """The maker's keys the policy names, oldest generation first."""
    found = {
        k.path: k
        for r in _signature_reqs(policy)
        for path in r.keys
        if (k := key_file(path)) is not None and k.user == user
    }
    return sorted(found.values(), key=lambda k: k.generation)


def _signature_reqs(policy: pol.Policy) -> list[pol.Requirement]:
    return [
        r
        for scopes in policy.transports.values()
        for reqs in scopes.values()
        for r in reqs
        if r.type in (pol.SIGNED_BY, pol.SIGSTORE_SIGNED)
    ]


def _with_keys(req: pol.Requirement, keys: list[str]) -> pol.Requirement:
    if len(keys) == 1:
        return replace(req, key_path=keys[0], key_paths=None)
    return replace(req, key_path=None, key_paths=tuple(keys))


def edit_keys(
    policy: pol.Policy, add_beside: str | None, new: str | None, drop: str | None
) -> pol.Policy:
    """``policy`` with ``new`` next to ``add_beside`` in every requirement naming it, and/or
    ``drop`` removed from every requirement (a requirement left with no key is an error:
    the scope would accept nothing — or everything, were it removed)."""
    transports: dict[str, pol.Scopes] = {}
    for t, scopes in policy.transports.items():
        transports[t] = {}
        for scope, reqs in scopes.items():
            out = []
            for req in reqs:
                keys = list(req.keys)
                if req.type in (pol.SIGNED_BY, pol.SIGSTORE_SIGNED) and keys:
                    if add_beside in keys and new is not None and new not in keys:
                        keys.insert(keys.index(add_beside) + 1, new)
                    if drop in keys:
                        keys.remove(drop)
                        if not keys:
                            raise UsageError(
                                _("{scope}: {key} is its only key; rotate it first").format(
                                    scope=scope, key=drop
                                )
                            )
                out.append(_with_keys(req, keys) if keys != list(req.keys) else req)
            transports[t][scope] = tuple(out)
    return pol.Policy(policy.default, transports)


@dataclass(frozen=True)
class Rotation:
    user: str
    kind: str
    old: str
    new: str
    changed: tuple[str, ...]
    pin: str  # what other nodes pass to --trust for the new key
    sign_by: str | None = None  # GPG: the new key's fingerprint
    already: bool = False  # the rotation had been done: nothing changed


def _current_policy(host: Host) -> pol.Policy:
    current = setup.load_system_policy(host)
    if current is None:
        raise NotFoundError(
            _("{path} does not exist").format(path=pol.SYSTEM_POLICY),
            hint=_("run `podsec policy create REGISTRY_IP` on this node first"),
        )
    return current


def rotate_key(host: Host, user: str, *, passphrase: str | None = None) -> Rotation:
    """Step 1 of a rotation (see the module docstring)."""
    accounts.check_name(user)
    policy = _current_policy(host)
    keys = maker_keys(policy, user)
    if not keys:
        raise NotFoundError(
            _("no key of {user} is in {path}").format(user=user, path=pol.SYSTEM_POLICY),
            hint=_("podsec users create-imagemaker {user} makes one").format(user=user),
        )
    kinds = {k.kind for k in keys}
    if len(kinds) > 1:
        raise UsageError(_("{user} has GPG and sigstore keys: rotate one kind at a time"))
    if len(keys) > 1:
        # a rotation in progress: make sure its last step happened, then stop
        return _finish(host, user, keys[-2], keys[-1], policy, already=True)
    old = keys[0]
    generation = old.generation + 1
    suffix = pol.SIGSTORE_KEY_SUFFIX if old.kind == "sigstore" else GPG_SUFFIX
    new_path = f"{setup.KEYS_DIR}/{user}.{generation}{suffix}"
    new = KeyFile(new_path, user, generation, old.kind)
    changed: list[str] = []
    if old.kind == "sigstore":
        changed += _new_sigstore_key(host, user, new, passphrase)
    else:
        changed += _new_gpg_key(host, user, old, new, passphrase)
    updated = edit_keys(policy, old.path, new.path, None)
    changed += setup.write_policy(host, updated, publish=True)
    rotation = _finish(host, user, old, new, updated)
    return replace(rotation, changed=(*changed, *rotation.changed))


def _user(host: Host, user: str) -> accounts.User:
    found = accounts.get_user(host, user)
    if found is None:
        raise NotFoundError(_("user {name} does not exist").format(name=user))
    return found


def _pending(host: Host, u: accounts.User) -> Path:
    return host.path(u.home) / (sigstore_keys.USER_PRIVATE_KEY + ".new")


def _new_sigstore_key(host: Host, user: str, new: KeyFile, passphrase: str | None) -> list[str]:
    """The new pair: the private key parked as ``sigstore.key.new`` until the policy
    trusts the public one (a signature by a key nobody trusts yet would refuse images)."""
    u = _user(host, user)
    pending = _pending(host, u)
    public = host.path(new.path)
    changed = []
    if not (pending.is_file() and public.is_file()):
        pair = sigstore_keys.generate((passphrase or "").encode())
        pending.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        files.atomic_write(pending, pair.private_key, mode=0o600, owner=u.uid, group=u.gid)
        dev = accounts.gid(host, GROUP_PODMAN_DEV)
        files.atomic_write(public, pair.public_key, mode=0o644, owner=0, group=dev)
        changed += [f"{u.home}/{sigstore_keys.USER_PRIVATE_KEY}.new", new.path]
    return changed


def _key_files(host: Host, user: str, kind: str) -> list[str]:
    """The maker's key files of ``kind`` in /var/sigstore/keys (every generation)."""
    keys_dir = host.path(setup.KEYS_DIR)
    found = [key_file(f"{setup.KEYS_DIR}/{p.name}") for p in keys_dir.glob(f"{user}*")]
    return [k.path for k in found if k is not None and k.user == user and k.kind == kind]


def _new_gpg_key(
    host: Host, user: str, old: KeyFile, new: KeyFile, passphrase: str | None
) -> list[str]:
    """A new GPG key beside the old one in the maker's keyring (same user ID: sign with its
    fingerprint — gpg would pick the older key for the e-mail address)."""
    from podsec.host.run import run
    from podsec.trust import keys as gpgkeys

    u = _user(host, user)
    if host.path(new.path).is_file():
        return []
    gnupg = host.path(u.home) / ".gnupg"
    gnupg.mkdir(mode=0o700, exist_ok=True)
    # the new key has the maker's user ID too (the old key file says which); a key of that
    # ID no key file publishes is one an interrupted rotation made: it is the new key
    published = set()
    uid = f"{user} <{user}@{REGISTRY_HOST}>"
    for k in _key_files(host, user, "gpg"):
        for info in gpgkeys.key_file_info(host.path(k).read_bytes()):
            published.add(info.fingerprint)
            if k == old.path and info.uids:
                uid = info.uids[0]
    try:
        leftover = [k for k in gpgkeys.secret_keys(gnupg, uid) if k.fingerprint not in published]
        key = (
            leftover[-1]
            if leftover
            else gpgkeys.generate_key(gnupg, uid, passphrase=passphrase, another=True)
        )
        armored = gpgkeys.export_public(gnupg, key.fingerprint)
    finally:
        run(["gpgconf", "--homedir", str(gnupg), "--kill", "all"], check=False, timeout=30)
        for dirpath, dirnames, names in os.walk(gnupg):
            os.chown(dirpath, u.uid, u.gid)
            for n in dirnames + names:
                os.lchown(Path(dirpath) / n, u.uid, u.gid)
    dev = accounts.gid(host, GROUP_PODMAN_DEV)
    gpgkeys.write_public(host.path(new.path), armored, owner=0, group=dev)
    return [new.path]


def _finish(
    host: Host, user: str, old: KeyFile, new: KeyFile, policy: pol.Policy, *, already: bool = False
) -> Rotation:
    """The last step: the maker signs with the new key from now on."""
    import hashlib

    changed: list[str] = []
    sign_by = None
    u = _user(host, user)
    if new.kind == "sigstore":
        pending = _pending(host, u)
        current = host.path(u.home) / sigstore_keys.USER_PRIVATE_KEY
        if pending.is_file():
            if current.is_file():
                keep = current.with_name(f"{current.name}.{Path(old.path).stem}")
                current.replace(keep)
                changed.append(str(host.unroot(keep)))
            pending.replace(current)
            changed.append(f"{u.home}/{sigstore_keys.USER_PRIVATE_KEY}")
    else:
        from podsec.trust import keys as gpgkeys

        info = gpgkeys.key_file_info(host.path(new.path).read_bytes())
        sign_by = info[0].fingerprint if info else None
    data = host.path(new.path).read_bytes()
    pin = "sha256:" + hashlib.sha256(data).hexdigest()
    if sign_by is not None:
        pin = sign_by
    return Rotation(
        user, new.kind, old.path, new.path, tuple(changed), pin, sign_by, already and not changed
    )
