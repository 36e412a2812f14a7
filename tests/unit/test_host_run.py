"""host.run.stream: pipelines through the command runner (stderr kept, CommandError on exit)."""

from pathlib import Path

import pytest

from podsec.errors import CommandError
from podsec.host import run


def test_stream_feeds_and_reads_a_pipe(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with out.open("wb") as sink, run.stream(["tr", "a-z", "A-Z"], stdin="pipe", stdout=sink) as tr:
        tr.stdin.write(b"hello\n")
        tr.stdin.close()
        tr.check(timeout=10)
    assert out.read_bytes() == b"HELLO\n"
    with out.open("rb") as source, run.stream(["cat"], stdin=source) as cat:
        assert cat.stdout.read() == b"HELLO\n"
        cat.check(timeout=10)


def test_stream_bad_exit_raises_with_stderr_tail() -> None:
    argv = ["sh", "-c", "echo first >&2; echo 'the last line' >&2; exit 3"]
    with run.stream(argv) as proc:
        assert proc.stdout.read() == b""
        with pytest.raises(CommandError) as err:
            proc.check(timeout=10)
        assert proc.stderr_tail() == "the last line"
    assert err.value.returncode == 3
    assert "the last line" in err.value.message
    assert "first" in err.value.stderr


def test_stream_missing_program_is_a_command_error() -> None:
    with pytest.raises(CommandError, match="not found"):
        run.stream(["/nonexistent/podsec-no-such-program"])


def test_stream_close_kills_a_running_child() -> None:
    proc = run.stream(["sleep", "30"])
    proc.close()
    assert proc.poll() is not None


def test_stream_stderr_does_not_block_on_a_full_pipe() -> None:
    # 1 MiB on stderr would fill a pipe (64 KiB) and hang the child if stderr were one
    argv = ["sh", "-c", "head -c 1048576 /dev/zero >&2; echo done"]
    with run.stream(argv) as proc:
        assert proc.stdout.read() == b"done\n"
        proc.check(timeout=10)
