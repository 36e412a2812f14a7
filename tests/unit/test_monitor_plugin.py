"""The Nagios plugin runtime: ranges, severities, perfdata, output, guarded UNKNOWN, syslog."""

from __future__ import annotations

import math
import socket
import time
from pathlib import Path

import pytest

from podsec.errors import UsageError
from podsec.monitor import plugin, sinks
from podsec.monitor.plugin import Perf, Range, Report, State, build_thresholds, parse_range


@pytest.mark.parametrize(
    ("text", "outside", "inside"),
    [
        ("10", [-1, 11], [0, 5, 10]),
        ("10:", [9.9, -5], [10, 1e9]),
        ("~:10", [11], [-1e9, 10]),
        ("10:20", [9, 21], [10, 15, 20]),
        (":5", [-1, 6], [0, 5]),
        ("@10:20", [10, 15, 20], [9, 21]),  # '@': alert inside
        ("-5:-1", [0, -6], [-5, -1]),
    ],
)
def test_ranges_alert_as_nagios_defines(
    text: str, outside: list[float], inside: list[float]
) -> None:
    rng, warning = parse_range(text)
    assert warning is None
    for value in outside:
        assert rng.alert(value), (text, value)
    for value in inside:
        assert not rng.alert(value), (text, value)


def test_range_endpoints() -> None:
    assert parse_range("~:10")[0].start == -math.inf
    assert parse_range("10:")[0].end == math.inf
    assert parse_range("@1:2")[0].inside


def test_original_dash_form_accepted_with_warning() -> None:
    rng, warning = parse_range("20-100")
    assert (rng.start, rng.end, rng.inside) == (20, 100, False)
    assert warning and "20:100" in warning
    rng, warning = parse_range("@20-100")
    assert rng.inside and rng.alert(50) and warning


@pytest.mark.parametrize("bad", ["", "abc", "10:5", "1:2:3", "@", "~", "10;20"])
def test_bad_ranges_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_range(bad)


def test_highest_severity_wins_not_hash_order() -> None:
    # The original resolved -w 0 -c 100 with metric 500 to Warning (bash hash order).
    th, _w = build_thresholds({"w": "0", "c": "100"})
    assert th.state(500) == State.CRITICAL
    assert th.state(50) == State.WARNING
    assert th.state(0) == State.OK
    th, _w = build_thresholds({"a": "1000", "c": "100", "m": "10", "d": "0"})
    assert th.syslog_level(5000) == ("Crash", 0)
    assert th.syslog_level(500) == ("Critical", 2)
    assert th.syslog_level(50) == ("Middle", 4)
    assert th.syslog_level(5) == ("Debug", 6)
    assert th.syslog_level(0) is None


def test_defaults_without_flags_and_w_is_nagios_only() -> None:
    th, _w = build_thresholds(dict.fromkeys("afchmldw"))
    assert th.critical is not None and th.critical.text == "100"
    assert th.syslog["c"].text == "100"
    th, _w = build_thresholds({"w": "5"})
    assert th.warning is not None and "w" not in th.syslog and th.critical is None


def test_perfdata_format() -> None:
    assert Perf("metric", 418, warn="1", crit="100", min=0).render() == "'metric'=418;1;100;0"
    assert Perf("age", 1.5, uom="h").render() == "'age'=1.5h"
    assert Perf("x", None).render() == "'x'=U"
    assert Perf("it's", 1).render() == "'it''s'=1"
    assert Perf("m", 3, max=90).render() == "'m'=3;;;;90"


def test_report_one_status_line_no_pipe_in_text() -> None:
    r = Report(
        "POLICY",
        State.CRITICAL,
        "users a|b\nand c",
        ("file /etc/x|y", "bad\xff"),
        (Perf("metric", 5),),
    )
    out = r.render().splitlines()
    assert out[0] == "POLICY CRITICAL: users a/b\\x0aand c | 'metric'=5"
    assert out[0].count("|") == 1
    assert out[1] == "file /etc/x/y"
    assert len(out) == 3


def test_worst_state_ordering() -> None:
    assert plugin.worst([State.OK, State.UNKNOWN, State.WARNING]) == State.WARNING
    assert plugin.worst([State.UNKNOWN, State.CRITICAL]) == State.CRITICAL
    assert plugin.worst([State.OK, State.UNKNOWN]) == State.UNKNOWN


def test_guarded_turns_failures_and_timeouts_into_unknown() -> None:
    def boom() -> Report:
        raise KeyError("nope")

    r = plugin.guarded("X", boom)
    assert r.state == State.UNKNOWN and "KeyError" in r.summary

    def slow() -> Report:
        time.sleep(5)
        return Report("X", State.OK, "late")

    r = plugin.guarded("X", slow, timeout=0.2)
    assert r.state == State.UNKNOWN and "timed out" in r.summary

    def bad_range() -> Report:
        parse_range("nonsense")
        return Report("X", State.OK, "")

    assert plugin.guarded("X", bad_range).state == State.UNKNOWN


def test_range_repr() -> None:
    assert str(Range(0, 10, False, "10")) == "10"


def test_syslog_lines_reach_a_datagram_socket(tmp_path: Path) -> None:
    path = tmp_path / "log.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(5)
    try:
        log = sinks.Syslog("podsec-inotify-check-policy", str(path))
        log.log(2, "Critical: Critical(101): Users a b outside the podman group")
        log.log(5, "x" * 5000)  # split, not cut
        first = server.recv(65536).decode()
        assert first.startswith("<10>")  # facility user (1) * 8 + priority 2
        assert "podsec-inotify-check-policy[" in first and first.endswith(
            "outside the podman group"
        )
        parts = [server.recv(65536).decode() for _ in range(3)]
        assert parts[0].startswith("<13>") and parts[-1].endswith("(3/3)")
        assert sum(p.count("x") for p in parts) == 5000
        assert log.errors == []
    finally:
        server.close()


def test_syslog_missing_socket_is_recorded_not_raised(tmp_path: Path) -> None:
    log = sinks.Syslog("t", str(tmp_path / "none.sock"))
    log.log(2, "hello")
    assert log.errors and "none.sock" in log.errors[0]


def test_smtp_address_parsing() -> None:
    assert sinks.parse_smtp("localhost:25") == ("localhost", 25)
    assert sinks.parse_smtp("mail") == ("mail", 25)
    assert sinks.parse_smtp("[::1]:2525") == ("::1", 2525)
    with pytest.raises(sinks.MailError):
        sinks.parse_smtp("host:abc")
