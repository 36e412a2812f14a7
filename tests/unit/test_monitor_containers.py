"""watch-containers with real inotify on storage trees laid out like containers/storage:
levels, names resolved from metadata, exclusions, new layers without restart, hostile file
names that must stay data, queue overflow and watch budget reported."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from podsec.host import inotify as ino
from podsec.host.paths import Host
from podsec.monitor import containers_watch as cw

IMAGE_LAYER = "a" * 64
CT_LAYER = "b" * 64


def make_storage(graph: Path) -> None:
    for d in ("overlay", "overlay-layers", "overlay-containers", "overlay-images"):
        (graph / d).mkdir(parents=True, exist_ok=True)
    for layer in (IMAGE_LAYER, CT_LAYER):
        for sub in ("etc", "usr/bin", "var/log", "tmp", "home/u"):
            (graph / "overlay" / layer / "diff" / sub).mkdir(parents=True, exist_ok=True)
    (graph / "overlay/l").mkdir(exist_ok=True)
    (graph / "overlay-layers/layers.json").write_text(
        json.dumps([{"id": IMAGE_LAYER}, {"id": CT_LAYER, "parent": IMAGE_LAYER}])
    )
    (graph / "overlay-images/images.json").write_text(
        json.dumps([{"id": "c" * 64, "names": ["registry.local/p10/web:1"], "layer": IMAGE_LAYER}])
    )
    (graph / "overlay-containers/containers.json").write_text(
        json.dumps(
            [
                {
                    "id": "d" * 64,
                    "names": ["webserver"],
                    "image": "c" * 64,
                    "layer": CT_LAYER,
                    "metadata": json.dumps({"image-name": "registry.local/p10/web:1"}),
                }
            ]
        )
    )


@pytest.fixture
def watcher(host_root: Path):  # type: ignore[no-untyped-def]
    graph = host_root / "var/lib/containers/storage"
    make_storage(graph)
    events: list[cw.ContainerEvent] = []
    notices: list[tuple[int, str]] = []
    w = cw.ContainersWatcher(Host(host_root), events.append, lambda p, t: notices.append((p, t)))
    w.rescan()
    w.events, w.notices, w.graph = events, notices, graph  # type: ignore[attr-defined]
    yield w
    w.close()


def pump(w: cw.ContainersWatcher, rounds: int = 3) -> None:
    for _ in range(rounds):
        batch = w.inotify.read(timeout=0.3)
        if not batch:
            break
        w.handle(batch)
        if w._rescan_needed:
            w.rescan()


def test_levels_names_and_exclusions(watcher: cw.ContainersWatcher) -> None:
    diff = watcher.graph / "overlay" / CT_LAYER / "diff"  # type: ignore[attr-defined]
    (diff / "etc/passwd").write_text("x")
    (diff / "usr/bin/sh").write_text("x")
    (diff / "home/u/.bashrc").write_text("x")
    (diff / "var/log/app.log").write_text("x")  # excluded
    (diff / "tmp/scratch").write_text("x")  # excluded
    pump(watcher)
    events = watcher.events  # type: ignore[attr-defined]
    by_path: dict[bytes, cw.ContainerEvent] = {}
    for e in events:
        by_path.setdefault(e.path, e)
    assert set(by_path) == {b"/etc/passwd", b"/usr/bin/sh", b"/home/u/.bashrc"}
    assert by_path[b"/etc/passwd"].level == "Warning" and by_path[b"/etc/passwd"].priority == 5
    assert by_path[b"/usr/bin/sh"].level == "Critical" and by_path[b"/usr/bin/sh"].priority == 2
    msg = by_path[b"/usr/bin/sh"].message()
    assert msg.startswith("Critical: An event CREATE occurred in the container webserver")
    assert "registry.local/p10/web:1" in msg and msg.endswith("on the file /usr/bin/sh")
    assert "in configuration directory" in by_path[b"/etc/passwd"].message()
    assert "in home directory" in by_path[b"/home/u/.bashrc"].message()


def test_image_layer_change_is_named_by_image(watcher: cw.ContainersWatcher) -> None:
    diff = watcher.graph / "overlay" / IMAGE_LAYER / "diff"  # type: ignore[attr-defined]
    (diff / "usr/bin/ls").write_text("trojan")
    pump(watcher)
    (e,) = [e for e in watcher.events if e.path == b"/usr/bin/ls"][:1]  # type: ignore[attr-defined]
    assert e.kind == "image" and "registry.local/p10/web:1" in e.message()


def test_new_directories_and_new_layers_without_restart(watcher: cw.ContainersWatcher) -> None:
    graph = watcher.graph  # type: ignore[attr-defined]
    diff = graph / "overlay" / CT_LAYER / "diff"
    (diff / "opt/deep").mkdir(parents=True)
    pump(watcher)
    (diff / "opt/deep/payload").write_text("x")
    pump(watcher)
    paths = {e.path for e in watcher.events}  # type: ignore[attr-defined]
    assert b"/opt/deep/payload" in paths

    new = "e" * 64
    (graph / "overlay" / new).mkdir()
    pump(watcher)
    (graph / "overlay" / new / "diff/usr").mkdir(parents=True)
    layers = json.loads((graph / "overlay-layers/layers.json").read_text())
    layers.append({"id": new, "parent": IMAGE_LAYER})
    (graph / "overlay-layers/layers.json.tmp").write_text(json.dumps(layers))
    (graph / "overlay-layers/layers.json.tmp").rename(graph / "overlay-layers/layers.json")
    pump(watcher)
    (graph / "overlay" / new / "diff/usr/evil").write_text("x")
    pump(watcher)
    assert any(e.layer == new and e.path == b"/usr/evil" for e in watcher.events)  # type: ignore[attr-defined]


def test_new_user_storage_is_picked_up(watcher: cw.ContainersWatcher, host_root: Path) -> None:
    with (host_root / "etc/passwd").open("a") as fh:
        fh.write("dave:x:3001:3001::/home/dave:/bin/bash\n")
    home = host_root / "home/dave"
    home.mkdir()
    pump(watcher)
    make_storage(home / ".local/share/containers/storage")
    pump(watcher, rounds=6)
    watcher.rescan()
    (home / ".local/share/containers/storage/overlay" / CT_LAYER / "diff/usr/bin/x").write_text("1")
    pump(watcher)
    ev = [e for e in watcher.events if e.owner == "dave"]  # type: ignore[attr-defined]
    assert ev and ev[0].name == "webserver"


HOSTILE = [
    b"$(touch podsec-pwned-PID)",
    b"';touch podsec-pwned-PID;'",
    b"`touch podsec-pwned-PID`",
    b"line\nbreak\n'x' 'y'",
    b"bad\xff\xfeutf8",
    b"pipe|in|name",
]


def test_hostile_file_names_are_data(
    watcher: cw.ContainersWatcher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where an eval of the names would create its file
    pid = str(os.getpid()).encode()
    diff = os.fsencode(watcher.graph / "overlay" / CT_LAYER / "diff" / "usr/bin")  # type: ignore[attr-defined]
    names = [n.replace(b"PID", pid) for n in HOSTILE]
    for name in names:
        fd = os.open(diff + b"/" + name, os.O_CREAT | os.O_WRONLY, 0o644)
        os.close(fd)
    pump(watcher)
    got = {e.path for e in watcher.events}  # type: ignore[attr-defined]
    for name in names:
        assert b"/usr/bin/" + name in got
    assert not list(tmp_path.glob("podsec-pwned-*"))
    for e in watcher.events:  # type: ignore[attr-defined]
        msg = e.message()
        assert "\n" not in msg and "\xff" not in msg
    msgs = " ".join(e.message() for e in watcher.events)  # type: ignore[attr-defined]
    assert "$(touch podsec-pwned-" in msgs and "bad\\xff\\xfeutf8" in msgs


def test_queue_overflow_is_reported_and_rescans(watcher: cw.ContainersWatcher) -> None:
    watcher.handle([ino.Event(-1, ino.IN_Q_OVERFLOW, 0, b"")])
    assert watcher.overflows == 1
    assert any("overflowed" in t and p == 2 for p, t in watcher.notices)  # type: ignore[attr-defined]
    assert watcher._rescan_needed


def test_watch_budget_exhaustion_is_reported(
    host_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_storage(host_root / "var/lib/containers/storage")
    notices: list[tuple[int, str]] = []
    w = cw.ContainersWatcher(Host(host_root), lambda e: None, lambda p, t: notices.append((p, t)))
    real_add = w.inotify.add
    budget = {"left": 5}

    def limited(path: bytes, mask: int) -> int:
        if budget["left"] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        budget["left"] -= 1
        return real_add(path, mask)

    monkeypatch.setattr(w.inotify, "add", limited)
    try:
        w.rescan()
    finally:
        w.close()
    assert w.budget_exhausted > 0
    assert any("budget exhausted" in t and "max_user_watches" in t for _p, t in notices)


def test_display_escapes() -> None:
    assert cw.display(b"a\nb\xff") == "a\\x0ab\\xff"


def test_vfs_driver_layout(host_root: Path) -> None:
    # rootless podman without fuse-overlayfs uses vfs: vfs/dir/<layer> holds the files
    graph = host_root / "home/eve/.local/share/containers/storage"
    for d in ("vfs-layers", "vfs-containers", "vfs-images"):
        (graph / d).mkdir(parents=True)
    (graph / "vfs/dir" / CT_LAYER / "usr/bin").mkdir(parents=True)
    (graph / "vfs-layers/layers.json").write_text(json.dumps([{"id": CT_LAYER}]))
    (graph / "vfs-containers/containers.json").write_text(
        json.dumps([{"id": "d" * 64, "names": ["rootless-web"], "image": "", "layer": CT_LAYER}])
    )
    with (host_root / "etc/passwd").open("a") as fh:
        fh.write("eve:x:3002:3002::/home/eve:/bin/bash\n")
    events: list[cw.ContainerEvent] = []
    w = cw.ContainersWatcher(Host(host_root), events.append)
    try:
        w.rescan()
        (graph / "vfs/dir" / CT_LAYER / "usr/bin/x").write_text("1")
        pump(w)
    finally:
        w.close()
    assert events and events[0].owner == "eve" and events[0].name == "rootless-web"
    assert events[0].path == b"/usr/bin/x"


def test_unrelated_files_in_homes_do_not_rebuild_the_watch_set(host_root: Path) -> None:
    with (host_root / "etc/passwd").open("a") as fh:
        fh.write("fred:x:3003:3003::/home/fred:/bin/bash\n")
    home = host_root / "home/fred"
    home.mkdir()
    w = cw.ContainersWatcher(Host(host_root), lambda e: None)
    try:
        w.rescan()
        (home / ".bash_history").write_text("ls\n")
        (host_root / "etc/motd").write_text("hi\n")
        w.handle(w.inotify.read(timeout=0.5))
        assert not w._rescan_needed
        (home / ".local").mkdir()  # on the way to ~/.local/share/containers/storage
        w.handle(w.inotify.read(timeout=0.5))
        assert w._rescan_needed
    finally:
        w.close()
