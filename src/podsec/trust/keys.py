"""GPG keys of image makers: batch generation, export, fingerprints (gpg CLI via host.run)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from podsec.errors import CommandError, PodsecError, UsageError, ValidationError
from podsec.host import files
from podsec.host.run import run
from podsec.i18n import _

DEFAULT_ALGO = "ed25519"


@dataclass(frozen=True)
class KeyInfo:
    fingerprint: str
    uids: tuple[str, ...]


# gpg-agent's socket lives in the home unless /run/user/UID exists; a unix socket path
# must fit in 108 bytes, so a deep home (a --root tree) is reached through a short symlink.
_SOCKET_ROOM = 70


@contextmanager
def short_home(gnupg_home: Path | None) -> Iterator[Path | None]:
    if gnupg_home is None or len(str(gnupg_home)) <= _SOCKET_ROOM:
        yield gnupg_home
        return
    with tempfile.TemporaryDirectory(prefix="pgh.", dir="/tmp") as tmp:
        link = Path(tmp) / "h"
        link.symlink_to(gnupg_home)
        yield link


def _gpg(
    gnupg_home: Path | None,
    *args: str,
    as_user: str | None = None,
    input: str | None = None,
    check: bool = True,
) -> str:
    with short_home(gnupg_home) as home:
        env = {"GNUPGHOME": str(home)} if home is not None else None
        result = run(
            ["gpg", "--batch", "--no-tty", *args],
            extra_env=env,
            as_user=as_user,
            input=input,
            timeout=120,
            check=check,
        )
        if home is not None and home != gnupg_home:
            # the agent started for the temporary name must not outlive it
            run(["gpgconf", "--kill", "all"], extra_env=env, check=False, timeout=30)
    return result.stdout


def _parse_colons(text: str, secret: bool = False) -> list[KeyInfo]:
    out: list[KeyInfo] = []
    fpr: str | None = None
    uids: list[str] = []
    head = "sec" if secret else "pub"
    want_fpr = False
    for line in text.splitlines():
        f = line.split(":")
        if f[0] == head:
            if fpr:
                out.append(KeyInfo(fpr, tuple(uids)))
            fpr, uids, want_fpr = None, [], True
        elif f[0] == "fpr" and want_fpr:
            fpr, want_fpr = f[9], False
        elif f[0] == "uid" and len(f) > 9:
            uids.append(f[9])
        elif f[0] in ("sub", "ssb"):
            want_fpr = False
    if fpr:
        out.append(KeyInfo(fpr, tuple(uids)))
    return out


def secret_keys(gnupg_home: Path | None, uid: str, *, as_user: str | None = None) -> list[KeyInfo]:
    """Every secret key matching ``uid``, in keyring order (oldest first)."""
    text = _gpg(
        gnupg_home, "--with-colons", "--list-secret-keys", "--", uid, as_user=as_user, check=False
    )
    return _parse_colons(text, secret=True)


def signing_key(gnupg_home: Path | None, key_id: str) -> KeyInfo | None:
    """The one secret key ``key_id`` names (None: none). A name matching several keys — a
    maker's e-mail address after ``users rotate-key`` — is refused, as containers/image
    refuses it for ``--sign-by``; gpg itself would silently pick the oldest."""
    found = secret_keys(gnupg_home, key_id)
    if len(found) > 1:
        raise UsageError(
            _("{key} names {n} secret keys ({fingerprints}): sign with one fingerprint").format(
                key=key_id, n=len(found), fingerprints=", ".join(k.fingerprint for k in found)
            ),
            hint=_("after podsec users rotate-key the newest key is the last one"),
        )
    return found[0] if found else None


def generate_key(
    gnupg_home: Path | None,
    uid: str,
    *,
    passphrase: str | None = None,
    algo: str = DEFAULT_ALGO,
    as_user: str | None = None,
    another: bool = False,
) -> KeyInfo:
    """Create a signing-only key for ``uid`` (``Name <email>``) unless one exists — with
    ``another``, a further key beside the existing ones (a key rotation); the new one is
    returned.

    Batch mode; the passphrase (empty: none) goes to gpg on stdin.
    """
    before = secret_keys(gnupg_home, uid, as_user=as_user)
    if before and not another:
        return before[0]
    try:
        _gpg(
            gnupg_home,
            "--pinentry-mode",
            "loopback",
            "--passphrase-fd",
            "0",
            # without --yes gpg refuses a second key for a user ID that has one
            *(["--yes"] if another else []),
            "--quick-gen-key",
            "--",
            uid,
            algo,
            "sign",
            "never",
            as_user=as_user,
            input=(passphrase or "") + "\n",
        )
    except CommandError as exc:
        raise PodsecError(
            _("cannot create a GPG key for {uid}: {err}").format(uid=uid, err=exc.stderr or exc)
        ) from exc
    known = {k.fingerprint for k in before}
    created = [
        k for k in secret_keys(gnupg_home, uid, as_user=as_user) if k.fingerprint not in known
    ]
    if not created:
        raise PodsecError(_("gpg created no key for {uid}").format(uid=uid))
    return created[-1]


def export_public(gnupg_home: Path | None, key_id: str, *, as_user: str | None = None) -> str:
    """The armored public key."""
    text = _gpg(gnupg_home, "--armor", "--export", "--", key_id, as_user=as_user)
    if "BEGIN PGP PUBLIC KEY BLOCK" not in text:
        raise PodsecError(_("no public key {key} to export").format(key=key_id))
    return text


def write_public(
    path: Path,
    armored: str,
    *,
    owner: int | None = None,
    group: int | None = None,
) -> bool:
    """Install a public key file (world-readable: the signature server publishes it)."""
    return files.atomic_write(path, armored, mode=0o644, owner=owner, group=group)


def key_file_info(data: bytes) -> list[KeyInfo]:
    """Fingerprints and uids of the keys in a key file, without importing it anywhere."""
    with tempfile.TemporaryDirectory(prefix="podsec-gpg.") as tmp:
        home = Path(tmp) / "gnupg"
        home.mkdir(mode=0o700)
        f = Path(tmp) / "key"
        f.write_bytes(data)
        result = run(
            [
                "gpg",
                "--batch",
                "--no-tty",
                "--no-autostart",
                "--with-colons",
                "--import-options",
                "show-only",
                "--import",
                str(f),
            ],
            extra_env={"GNUPGHOME": str(home)},
            timeout=30,
            check=False,
        )
    keys = _parse_colons(result.stdout)
    if not keys:
        raise ValidationError(_("not an OpenPGP public key"))
    return keys


def fingerprint(path: Path) -> str:
    """The primary fingerprint of the (first) key in ``path``."""
    try:
        return key_file_info(path.read_bytes())[0].fingerprint
    except ValidationError as exc:
        raise ValidationError(f"{path}: {exc.message}") from exc
