"""Atomic, idempotent file writes with backups and explicit modes and numeric owners.

A leaf of the host layer: owner names are resolved by :mod:`podsec.host.accounts` (against the
host tree's /etc/passwd), never here.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from podsec import readers
from podsec.errors import ValidationError
from podsec.i18n import _

BACKUP_SUFFIX = ".podsec-bak"


_TEMP_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"


def _temp_file(directory: Path, prefix: str) -> tuple[int, str]:
    """A new file ``PREFIX`` + 8 random characters in ``directory``, mode 0600, open for
    writing: ``tempfile.mkstemp``'s names and flags, without importing tempfile (and shutil,
    random, bz2, lzma) in every plugin that saves a cursor (they start every minute)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _attempt in range(100):
        suffix = "".join(_TEMP_CHARS[b % len(_TEMP_CHARS)] for b in os.urandom(8))
        name = str(directory / (prefix + suffix))
        try:
            return os.open(name, flags, 0o600), name
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name {prefix}* in {directory}")


def _owner_ids(owner: int | None, group: int | None) -> tuple[int, int]:
    # numeric only: a name resolved here would read the live /etc/passwd even while
    # writing under --root (host.accounts.ids resolves names against the right tree)
    for value in (owner, group):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise TypeError(f"owner and group are numeric ids, not {value!r}")
    return (-1 if owner is None else owner), (-1 if group is None else group)


def atomic_write(
    path: Path,
    data: str | bytes,
    *,
    mode: int = 0o644,
    owner: int | None = None,
    group: int | None = None,
    backup: bool = True,
) -> bool:
    """Write ``data`` to ``path`` atomically; return False when the content, mode and owner
    were already as asked (nothing is touched then).

    The temp file lives in the same directory (same filesystem, so ``rename`` is atomic), is
    created with ``mode`` from the start (a secret is never briefly world-readable), fsynced,
    then renamed over the target. The replaced file is kept as ``NAME.podsec-bak``.
    ``owner``/``group`` are numeric ids (:func:`podsec.host.accounts.ids` resolves names).
    """
    payload = data.encode() if isinstance(data, str) else data
    uid, gid = _owner_ids(owner, group)
    if path.is_file() and not path.is_symlink():
        st = path.stat()
        same_owner = (uid in (-1, st.st_uid)) and (gid in (-1, st.st_gid))
        if same_owner and (st.st_mode & 0o7777) == mode and path.read_bytes() == payload:
            return False
    _writable_place(path)
    fd, tmp_name = _temp_file(path.parent, f".{path.name}.")
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        if uid != -1 or gid != -1:
            os.chown(tmp, uid, gid)
        if backup and (path.exists() or path.is_symlink()):
            backup_file(path)
        tmp.replace(path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return True


def check_place(path: Path) -> None:
    """Refuse (ValidationError naming it) a target that cannot become a file: a directory,
    or one below a regular file (an ``--output`` under a file). Creates nothing, so a
    command writing several files checks them all first."""
    if path.is_dir() and not path.is_symlink():
        raise ValidationError(_("cannot write {path}: it is a directory").format(path=path))
    blocker = next((p for p in reversed(path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ValidationError(
            _("cannot write {path}: {parent} is not a directory").format(path=path, parent=blocker)
        )


def _writable_place(path: Path) -> None:
    check_place(path)
    path.parent.mkdir(parents=True, exist_ok=True)


def backup_file(path: Path) -> Path:
    """Copy ``path`` to ``path.podsec-bak`` (keeping mode and owner); a symlink is copied as a
    symlink so the backup restores exactly what was there."""
    dest = path.with_name(path.name + BACKUP_SUFFIX)
    # built beside it under a temporary name, then renamed: a kill -9 mid-copy never leaves
    # a partial backup under the backup's name (the previous one stays whole instead)
    fd, tmp_name = _temp_file(path.parent, f".{dest.name}.")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if path.is_symlink():
            tmp.unlink()
            tmp.symlink_to(path.readlink())
        else:
            import shutil  # only when a file is replaced

            shutil.copy2(path, tmp)
            st = path.stat()
            with contextlib.suppress(PermissionError):
                os.chown(tmp, st.st_uid, st.st_gid)
            with tmp.open("rb") as fh:
                os.fsync(fh.fileno())
        tmp.replace(dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return dest


def ensure_dir(
    path: Path,
    *,
    mode: int = 0o755,
    owner: int | None = None,
    group: int | None = None,
) -> bool:
    """Create ``path`` (and parents) and set its mode and owner; return True if anything changed."""
    changed = False
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        changed = True
    st = path.stat()
    if (st.st_mode & 0o7777) != mode:
        path.chmod(mode)
        changed = True
    uid, gid = _owner_ids(owner, group)
    if (uid not in (-1, st.st_uid)) or (gid not in (-1, st.st_gid)):
        os.chown(path, uid, gid)
        changed = True
    return changed


@contextlib.contextmanager
def dir_lock(directory: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``directory`` (created if missing) for the ``with`` body:
    no lock file is left behind, and a killed holder releases it with its last descriptor."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_text(path: Path) -> str | None:
    """The file's text (strict UTF-8), or None if it does not exist; anything but a regular
    file of bounded size is refused (see :mod:`podsec.host.readers`)."""
    return readers.read_text(path)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
