"""The one command runner.

Every external program podsec starts goes through :func:`run` (wait for it) or
:func:`spawn` (a long-running child). Arguments are argv lists — never a shell string — with
an explicit timeout; a failure raises :class:`~podsec.errors.CommandError` carrying the argv,
the exit status and the tail of stderr. Commands are logged at ``-v`` (logger ``podsec.run``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, NoReturn, TypeAlias

from podsec.errors import CommandError
from podsec.i18n import _

log = logging.getLogger("podsec.run")

DEFAULT_TIMEOUT = 120.0
_TAIL_LINES = 8
_TAIL_CHARS = 1500

Arg = str | Path


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def stderr_tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    tail = "\n".join(lines[-_TAIL_LINES:])
    return tail[-_TAIL_CHARS:]


def _not_found(args: list[str]) -> CommandError:
    return CommandError(
        _("program {prog} not found").format(prog=args[0]),
        argv=args,
        returncode=None,
        hint=_("install it or check PATH; `podsec doctor` lists every program podsec uses"),
    )


def which(program: str, path: str | None = None) -> str | None:
    """Absolute path of ``program`` on PATH (or ``path``), None if absent."""
    return shutil.which(program, path=path)


def _user_env(user: str, base: Mapping[str, str]) -> tuple[int, int, list[int], dict[str, str]]:
    entry = pwd.getpwnam(user)
    groups = os.getgrouplist(user, entry.pw_gid)
    env = dict(base)
    env.update(HOME=entry.pw_dir, USER=user, LOGNAME=user)
    runtime = f"/run/user/{entry.pw_uid}"
    if Path(runtime).is_dir():
        env.setdefault("XDG_RUNTIME_DIR", runtime)
    return entry.pw_uid, entry.pw_gid, groups, env


@dataclass(frozen=True)
class _Identity:
    user: int | None = None
    group: int | None = None
    extra_groups: list[int] | None = None


def _prepare(
    argv: Sequence[Arg],
    env: Mapping[str, str] | None,
    extra_env: Mapping[str, str] | None,
    as_user: str | None,
) -> tuple[list[str], dict[str, str], _Identity]:
    args = [str(a) for a in argv]
    if not args:
        raise ValueError("empty argv")
    base = dict(os.environ if env is None else env)
    ident = _Identity()
    if as_user is not None and as_user != pwd.getpwuid(os.getuid()).pw_name:
        try:
            uid, gid, groups, base = _user_env(as_user, base)
        except KeyError as exc:
            raise CommandError(
                _("user {user} does not exist").format(user=as_user), argv=args, returncode=None
            ) from exc
        ident = _Identity(uid, gid, groups)
    if extra_env:
        base.update(extra_env)
    return args, base, ident


def run(
    argv: Sequence[Arg],
    *,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    input: str | bytes | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    as_user: str | None = None,
    cwd: Path | None = None,
    capture: bool = True,
) -> Result:
    """Run a program to completion.

    ``env`` replaces the environment, ``extra_env`` adds to it; ``as_user`` runs the program
    as that account (HOME, USER, groups set) — only root can do that. With ``check`` a
    non-zero exit raises :class:`CommandError`; with ``capture=False`` the child writes
    straight to our stdout/stderr (used for interactive pass-through like kubeadm).
    """
    args, full_env, ident = _prepare(argv, env, extra_env, as_user)
    log.info("run: %s", shlex.join(args))
    data = input.encode() if isinstance(input, str) else input
    try:
        proc = subprocess.run(
            args,
            input=data,
            stdin=None if data is not None else subprocess.DEVNULL if capture else None,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
            env=full_env,
            cwd=cwd,
            timeout=timeout,
            check=False,
            user=ident.user,
            group=ident.group,
            extra_groups=ident.extra_groups,
        )
    except FileNotFoundError as exc:
        raise _not_found(args) from exc
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
        raise CommandError(
            _("{prog} did not finish within {seconds:g} s").format(
                prog=Path(args[0]).name, seconds=timeout
            ),
            argv=args,
            returncode=None,
            stderr=stderr_tail(err),
        ) from exc
    stdout = proc.stdout.decode(errors="replace") if proc.stdout is not None else ""
    stderr = proc.stderr.decode(errors="replace") if proc.stderr is not None else ""
    result = Result(tuple(args), proc.returncode, stdout, stderr)
    if check and proc.returncode != 0:
        tail = stderr_tail(stderr) or stderr_tail(stdout)
        last = tail.splitlines()[-1] if tail else ""
        message = _("{prog} failed (exit {code})").format(
            prog=Path(args[0]).name, code=proc.returncode
        )
        raise CommandError(
            f"{message}: {last}" if last else message,
            argv=args,
            returncode=proc.returncode,
            stderr=tail,
        )
    return result


def spawn(
    argv: Sequence[Arg],
    *,
    env: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    as_user: str | None = None,
    cwd: Path | None = None,
    stdout: int | None = subprocess.DEVNULL,
    stderr: int | None = subprocess.DEVNULL,
    stdin: int | None = subprocess.DEVNULL,
    new_session: bool = True,
    log_file: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a long-running child (a daemon under a supervisor) and return its handle.

    With ``log_file`` both output streams are appended to that file.
    """
    args, full_env, ident = _prepare(argv, env, extra_env, as_user)
    log.info("spawn: %s", shlex.join(args))
    out: int | IO[bytes] | None = stdout
    err: int | IO[bytes] | None = stderr
    fh = None
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fh = log_file.open("ab")
        out = err = fh
    try:
        return subprocess.Popen(
            args,
            env=full_env,
            cwd=cwd,
            stdin=stdin,
            stdout=out,
            stderr=err,
            start_new_session=new_session,
            user=ident.user,
            group=ident.group,
            extra_groups=ident.extra_groups,
        )
    except FileNotFoundError as exc:
        raise _not_found(args) from exc
    finally:
        if fh is not None:
            fh.close()


def replace_process(argv: Sequence[Arg], *, log_file: Path | None = None) -> NoReturn:
    """Become ``argv`` (exec, same PID): a step that only prepares and then starts one
    long-running program need not stay resident beside it. With ``log_file`` both output
    streams are appended to that file."""
    args = [str(a) for a in argv]
    log.info("exec: %s", shlex.join(args))
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    try:
        os.execvp(args[0], args)  # noqa: S606 - argv list, no shell
    except FileNotFoundError as exc:
        raise _not_found(args) from exc


class Stream:
    """One program of a pipeline, running: its stdin or stdout is a pipe the caller holds.

    stderr goes to a temporary file (a full pipe there would block the child); a bad exit
    raises :class:`CommandError` with its tail from :meth:`check`. Use as a context manager:
    leaving it kills the child if it still runs and closes the pipes.
    """

    def __init__(self, argv: list[str], proc: subprocess.Popen[bytes], err: IO[bytes]):
        self.argv = argv
        self._proc = proc
        self._err = err

    @property
    def stdin(self) -> IO[bytes]:
        assert self._proc.stdin is not None, "started without stdin='pipe'"
        return self._proc.stdin

    @property
    def stdout(self) -> IO[bytes]:
        assert self._proc.stdout is not None, "started without stdout='pipe'"
        return self._proc.stdout

    @property
    def pid(self) -> int:
        return self._proc.pid

    def poll(self) -> int | None:
        return self._proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self._proc.wait(timeout)

    def kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()

    def stderr(self) -> str:
        """All the child wrote to stderr so far."""
        self._err.flush()
        self._err.seek(0)
        return self._err.read().decode(errors="replace")

    def stderr_tail(self) -> str:
        """The last line the child wrote to stderr ("" if none)."""
        tail = stderr_tail(self.stderr())
        return tail.splitlines()[-1] if tail else ""

    def check(self, timeout: float | None = None) -> None:
        """Wait for the exit; a non-zero status raises :class:`CommandError`."""
        code = self.wait(timeout)
        if code != 0:
            last = self.stderr_tail()
            message = _("{prog} failed (exit {code})").format(
                prog=Path(self.argv[0]).name, code=code
            )
            raise CommandError(
                f"{message}: {last}" if last else message,
                argv=self.argv,
                returncode=code,
                stderr=stderr_tail(self.stderr()),
            )

    def close(self) -> None:
        """Kill the child if it still runs, reap it, close the pipes and the stderr file."""
        self.kill()
        self._proc.wait()
        for fh in (self._proc.stdin, self._proc.stdout, self._err):
            if fh is not None:
                with contextlib.suppress(OSError):
                    fh.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


PIPE_END = Literal["pipe"]


def stream(
    argv: Sequence[Arg],
    *,
    stdin: IO[bytes] | PIPE_END | None = None,
    stdout: IO[bytes] | PIPE_END = "pipe",
    env: Mapping[str, str] | None = None,
) -> Stream:
    """Start one program of a pipeline (a compressor fed by us, a decompressor we read).

    ``stdin``: an open file, ``"pipe"`` (write to :attr:`Stream.stdin`) or None (/dev/null);
    ``stdout``: an open file or ``"pipe"`` (read :attr:`Stream.stdout`).
    """
    args, full_env, _ident = _prepare(argv, env, None, None)
    log.info("stream: %s", shlex.join(args))
    err = tempfile.TemporaryFile()  # noqa: SIM115 - owned by the Stream, closed in close()
    try:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE
            if stdin == "pipe"
            else subprocess.DEVNULL
            if stdin is None
            else stdin,
            stdout=subprocess.PIPE if stdout == "pipe" else stdout,
            stderr=err,
            env=full_env,
        )
    except FileNotFoundError as exc:
        err.close()
        raise _not_found(args) from exc
    except BaseException:
        err.close()
        raise
    return Stream(args, proc, err)


# The type of a spawned child, for annotations only: callers start programs through spawn().
Child: TypeAlias = "subprocess.Popen[bytes]"
TimeoutExpired = subprocess.TimeoutExpired
