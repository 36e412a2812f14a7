"""host.supervise: the restart back-off and the escalating stop both supervisors use."""

import signal
import time

from podsec.host import run, supervise


def test_backoff_doubles_on_quick_crashes_and_starts_over_after_a_stable_run() -> None:
    delays, previous = [], 0.5
    for _ in range(6):
        previous = supervise.next_backoff(previous, uptime=1.0, limit=10.0)
        delays.append(previous)
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert supervise.next_backoff(10.0, uptime=31.0) == 1.0
    assert supervise.next_backoff(10.0, uptime=11.0, stable=10.0) == 1.0


def test_terminate_escalates_to_sigkill_for_a_program_that_ignores_the_signal() -> None:
    # ignores SIGTERM; a plain sleep child would die at once
    proc = run.spawn(["sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"], new_session=True)
    time.sleep(0.3)
    started = time.monotonic()
    supervise.terminate(proc, timeout=0.5, group=True)
    assert proc.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 5


def test_terminate_sends_the_asked_signal() -> None:
    # SIGUSR1, not nginx's SIGQUIT: a shell's background job inherits SIGQUIT ignored
    proc = run.spawn(["sleep", "30"])
    supervise.terminate(proc, sig=signal.SIGUSR1, timeout=5)
    assert proc.returncode == -signal.SIGUSR1
