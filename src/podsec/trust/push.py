"""Sign-on-push through the real tools: ``skopeo copy --sign-by`` and ``podman push --sign-by``.

This is the production signing path (containers/image writes ``signature-N`` into the
``lookaside-staging`` of registries.d). A passphrase is handed over in a 0600 file inside a
private temporary directory that is removed afterwards — never on a command line.
"""

from __future__ import annotations

import os
import pwd
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from podsec.errors import CommandError, PodsecError
from podsec.host.run import run
from podsec.i18n import _
from podsec.trust.keys import short_home

TIMEOUT = 1800.0


@contextmanager
def _passphrase_file(passphrase: str | None, user: str | None = None) -> Iterator[Path | None]:
    if passphrase is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="podsec-pp.") as tmp:
        path = Path(tmp) / "passphrase"
        path.touch(mode=0o600)
        path.write_text(passphrase)
        if user is not None:  # only that user (and root) can read it
            entry = pwd.getpwnam(user)
            for p in (Path(tmp), path):
                os.chown(p, entry.pw_uid, entry.pw_gid)
        yield path


def _signing_error(exc: CommandError, key: str) -> PodsecError:
    tail = exc.stderr.strip().splitlines()[-1] if exc.stderr.strip() else str(exc)
    return PodsecError(
        _("signing with {key} failed: {err}").format(key=key, err=tail),
        hint=_("check the key (gpg --list-secret-keys), its passphrase and registries.d"),
    )


def skopeo_copy_signed(
    src: str,
    dest: str,
    *,
    sign_by: str,
    gnupg_home: Path | None = None,
    passphrase: str | None = None,
    registries_d: Path | None = None,
    policy: Path | None = None,
    dest_tls_verify: bool = False,
    extra: Sequence[str] = (),
) -> None:
    """``skopeo copy --sign-by KEY SRC DEST`` (transport-qualified references)."""
    with short_home(gnupg_home) as home, _passphrase_file(passphrase) as pp:
        argv = ["skopeo"]
        if policy is not None:
            argv += ["--policy", str(policy)]
        if registries_d is not None:
            argv += ["--registries.d", str(registries_d)]
        argv += ["copy", "--quiet", f"--dest-tls-verify={str(dest_tls_verify).lower()}"]
        argv += ["--sign-by", sign_by]
        if pp is not None:
            argv += ["--sign-passphrase-file", str(pp)]
        argv += [*extra, src, dest]
        env = {"GNUPGHOME": str(home)} if home is not None else None
        try:
            run(argv, extra_env=env, timeout=TIMEOUT)
        except CommandError as exc:
            raise _signing_error(exc, sign_by) from exc
        finally:
            if home is not None and home != gnupg_home:
                run(["gpgconf", "--kill", "all"], extra_env=env, check=False, timeout=30)


def podman_push_signed(
    image: str,
    dest: str,
    *,
    sign_by: str,
    gnupg_home: Path | None = None,
    passphrase: str | None = None,
    env: dict[str, str] | None = None,
    as_user: str | None = None,
    tls_verify: bool | None = None,
) -> None:
    """``podman push --sign-by KEY IMAGE DEST``; podman reads registries.d from the user's
    HOME (or /etc), so the signature lands in that user's lookaside-staging."""
    with short_home(gnupg_home) as home, _passphrase_file(passphrase, as_user) as pp:
        argv = ["podman", "push", "--quiet", "--sign-by", sign_by]
        if pp is not None:
            argv += ["--sign-passphrase-file", str(pp)]
        if tls_verify is not None:
            argv.append(f"--tls-verify={str(tls_verify).lower()}")
        argv += [image, dest]
        extra = dict(env or {})
        if home is not None:
            extra["GNUPGHOME"] = str(home)
        try:
            run(argv, extra_env=extra, as_user=as_user, timeout=TIMEOUT)
        except CommandError as exc:
            raise _signing_error(exc, sign_by) from exc
        finally:
            if home is not None and home != gnupg_home:
                run(["gpgconf", "--kill", "all"], extra_env=extra, check=False, timeout=30)
