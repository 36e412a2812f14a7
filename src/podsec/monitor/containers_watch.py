"""Watch the files of containers: every overlay ``diff`` dir of root's storage, of every
user's rootless storage and of u7s-admin's.

One inotify instance, blocking reads (idle CPU is zero). Changes under ``home``, ``root`` or
``etc`` inside a layer are Warnings, anything else Critical; ``var proc tmp run`` inside each
layer are not watched. Events are reported with the container's name and image (resolved
from the storage's own metadata), not a bare layer id. New layers, containers, storages and
users are picked up as they appear — the original killed and restarted its watcher every
100 s, leaving gaps. File names are bytes and stay data: they are escaped for display and
never reach a shell (the original ``eval``ed them, which ran commands as root).
The watch budget (``fs.inotify.max_user_watches``) and queue overflows are reported.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from podsec.host import inotify as ino
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.monitor.accounts import Account, container_accounts
from podsec.monitor.storage import LAYOUTS, StorageIndex, drivers, load_index
from podsec.names import U7S_USER

TAG = "podsec-inotify-check-containers"
EXCLUDED = (b"var", b"proc", b"tmp", b"run")
WARNING_DIRS = {b"home": "home", b"root": "home", b"etc": "etc"}
DIFF_MASK = (
    ino.IN_CREATE
    | ino.IN_DELETE
    | ino.IN_MODIFY
    | ino.IN_MOVED_FROM
    | ino.IN_MOVED_TO
    | ino.IN_ATTRIB
    | ino.IN_DONT_FOLLOW
    | ino.IN_ONLYDIR
    | ino.IN_EXCL_UNLINK
)
DIR_MASK = ino.IN_CREATE | ino.IN_MOVED_TO | ino.IN_DELETE | ino.IN_ONLYDIR | ino.IN_DONT_FOLLOW
META_MASK = ino.IN_MOVED_TO | ino.IN_CLOSE_WRITE | ino.IN_CREATE | ino.IN_ONLYDIR
REPORTED = (
    ino.IN_CREATE
    | ino.IN_DELETE
    | ino.IN_MODIFY
    | ino.IN_MOVED_FROM
    | ino.IN_MOVED_TO
    | ino.IN_ATTRIB
)


def display(raw: bytes) -> str:
    """A file name for humans: invalid UTF-8 and control characters escaped (never run)."""
    text = raw.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


@dataclass(frozen=True)
class ContainerEvent:
    """One change inside a container's (or image's) files."""

    level: str  # "Warning" | "Critical"
    priority: int
    events: str  # "CREATE", "MODIFY,ISDIR" ...
    owner: str  # storage owner (user name)
    kind: str  # "container" | "image" | "layer"
    name: str
    image: str
    layer: str
    path: bytes  # path inside the container, raw
    where: str  # "home" | "etc" | ""

    def message(self) -> str:
        where = {
            "home": _(" in home directory"),
            "etc": _(" in configuration directory"),
        }.get(self.where, "")
        what = {
            "container": _("container {name} (image {image}, user {owner})"),
            "image": _("image layer of {image} (user {owner})"),
        }.get(self.kind, _("layer {name} (user {owner})"))
        target = what.format(name=self.name, image=self.image or "-", owner=self.owner)
        return _(
            "{level}: An event {events} occurred in the {target}{where} on the file {path}"
        ).format(
            level=self.level,
            events=self.events,
            target=target,
            where=where,
            path=display(self.path),
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "level": self.level,
            "events": self.events,
            "owner": self.owner,
            "kind": self.kind,
            "name": self.name,
            "image": self.image,
            "layer": self.layer,
            "path": display(self.path),
            "where": self.where,
        }


@dataclass
class _Storage:
    owner: str
    graphroot: Path
    index: StorageIndex | None = None
    dirty: bool = True
    watched_layers: set[str] = field(default_factory=set)
    loaded_at: float = 0.0

    def get_index(self) -> StorageIndex:
        if self.index is None or self.dirty:
            self.index = load_index(self.graphroot)
            self.dirty = False
            self.loaded_at = time.monotonic()
        return self.index


@dataclass(frozen=True)
class _Watch:
    kind: str  # "diff" | "overlay" | "layerdir" | "meta" | "anchor"
    path: bytes
    storage: _Storage | None = None
    layer: str = ""
    rel: bytes = b""  # path inside the layer, b"" for the diff root


Notice = Callable[[int, str], None]


class ContainersWatcher:
    """The watch set and the event loop. ``emit`` receives each :class:`ContainerEvent`;
    ``notice(priority, text)`` receives operational messages (budget, overflow)."""

    def __init__(
        self,
        host: Host,
        emit: Callable[[ContainerEvent], None],
        notice: Notice | None = None,
        *,
        accounts: Callable[[], list[Account]] | None = None,
    ):
        self.host = host
        self.emit = emit
        self.notice = notice or (lambda _p, _t: None)
        self._accounts = accounts or (lambda: container_accounts(host))
        self.inotify = ino.Inotify()
        self.watches: dict[int, _Watch] = {}
        self.by_path: dict[bytes, int] = {}
        self.storages: dict[bytes, _Storage] = {}
        self.anchor_names: dict[bytes, set[bytes] | None] = {}  # None: any name
        self.budget_exhausted = 0
        self.overflows = 0
        self.events_seen = 0
        self._rescan_needed = True

    # ------------------------------------------------------------------ watch management
    def _add(self, path: bytes, mask: int, watch: _Watch) -> bool:
        try:
            wd = self.inotify.add(path, mask)
        except OSError as exc:
            if exc.errno == 28:  # ENOSPC: the per-user watch budget is spent
                self.budget_exhausted += 1
                if self.budget_exhausted == 1:
                    self.notice(
                        2,
                        _(
                            "Critical: inotify watch budget exhausted (fs.inotify.max_user_watches={limit}); "
                            "{count} directories are watched, further ones are NOT"
                        ).format(
                            limit=ino.max_user_watches(str(self.host.proc)), count=len(self.watches)
                        ),
                    )
            return False
        old = self.by_path.get(path)
        if old is not None and old != wd:
            self.watches.pop(old, None)
        self.watches[wd] = watch
        self.by_path[path] = wd
        return True

    def _watch_tree(
        self, storage: _Storage, layer: str, diff: bytes, rel: bytes, report: bool
    ) -> None:
        """Watch ``diff/rel`` and every directory below it (not following symlinks).
        With ``report``, entries found while adding (created before the watch existed) are
        reported as CREATE events so nothing slips through the race."""
        stack = [rel]
        while stack:
            current = stack.pop()
            full = diff + current if current else diff
            if not self._add(full, DIFF_MASK, _Watch("diff", full, storage, layer, current)):
                if self.budget_exhausted:
                    return
                continue
            try:
                entries = list(os.scandir(full))
            except OSError:
                continue
            for entry in entries:
                name = os.fsencode(entry.name)
                child = current + b"/" + name
                if not current and name in EXCLUDED:
                    continue
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    is_dir = False
                if report:
                    self._report(
                        storage, layer, child, ino.IN_CREATE | (ino.IN_ISDIR if is_dir else 0)
                    )
                if is_dir:
                    stack.append(child)

    def _watch_storage(self, owner: str, graphroot: Path) -> None:
        key = os.fsencode(graphroot)
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = _Storage(owner, graphroot)
        for driver in drivers(graphroot):
            layers_dir = key + b"/" + LAYOUTS[driver][0].encode()
            if not os.path.isdir(layers_dir):  # noqa: PTH112 - bytes paths
                self._anchor(Path(os.fsdecode(layers_dir)))
                continue
            self._add(layers_dir, DIR_MASK, _Watch("overlay", layers_dir, storage))
            for meta in (b"-layers", b"-containers", b"-images"):
                path = key + b"/" + driver.encode() + meta
                if os.path.isdir(path):  # noqa: PTH112 - bytes paths (names are data)
                    self._add(path, META_MASK, _Watch("meta", path, storage))
        self._sync_layers(storage, report=False)

    def _sync_layers(self, storage: _Storage, report: bool) -> None:
        graph = os.fsencode(storage.graphroot)
        for driver in drivers(storage.graphroot):
            sub_dir, files_dir = LAYOUTS[driver]
            layers_dir = graph + b"/" + sub_dir.encode()
            try:
                names = [
                    os.fsencode(e.name)
                    for e in os.scandir(layers_dir)
                    if e.is_dir(follow_symlinks=False)
                ]
            except OSError:
                continue
            for raw in names:
                layer = raw.decode("utf-8", "replace")
                if raw == b"l" or layer in storage.watched_layers:
                    continue
                layer_dir = layers_dir + b"/" + raw
                content = layer_dir + b"/" + files_dir.encode() if files_dir else layer_dir
                if os.path.isdir(content):  # noqa: PTH112 - bytes paths
                    storage.watched_layers.add(layer)
                    self._watch_tree(storage, layer, content, b"", report)
                else:  # created a moment ago: wait for its diff dir
                    self._add(layer_dir, DIR_MASK, _Watch("layerdir", layer_dir, storage, layer))

    def _anchor(self, target: Path, name: bytes | None = None) -> None:
        """Watch the nearest existing ancestor of ``target`` so its creation is noticed.

        Only entries named like the next component towards ``target`` (or ``name``) trigger
        a rescan: a user's shell writing into their home must not rebuild the watch set.
        """
        current, child = target, name
        root = self.host.root
        while current not in (current.parent, root):
            if current.is_dir():
                break
            child = os.fsencode(current.name)
            current = current.parent
        path = os.fsencode(current)
        names = self.anchor_names.setdefault(path, set())
        if names is not None:
            if child is None:
                self.anchor_names[path] = None  # any new entry matters (/home)
            else:
                names.add(child)
        if path not in self.by_path:
            self._add(path, DIR_MASK, _Watch("anchor", path))

    def rescan(self) -> None:
        """(Re)build the watch set: storages of every account, layers not yet watched."""
        self._rescan_needed = False
        from podsec.monitor.accounts import U7S_STORAGE, USER_STORAGE

        if self.host.path("/home").is_dir():
            self._anchor(self.host.path("/home"))
        if self.host.path("/etc").is_dir():
            self._anchor(self.host.path("/etc"), b"passwd")
        for account in self._accounts():
            for graphroot in account.storages:
                self._watch_storage(account.name, graphroot)
            if not account.is_root:
                self._anchor(account.home / USER_STORAGE / "overlay")
                if account.name == U7S_USER:
                    self._anchor(account.home / U7S_STORAGE / "overlay")
            else:
                self._anchor(self.host.path("/var/lib/containers/storage/overlay"))
        self._anchor(self.host.path("/var/lib/containers/storage/overlay"))
        for home in self._home_dirs():
            self._anchor(home / USER_STORAGE / "overlay")
        for storage in self.storages.values():
            storage.dirty = True
            self._sync_layers(storage, report=False)

    def _home_dirs(self) -> Iterable[Path]:
        try:
            return [
                Path(e.path)
                for e in os.scandir(self.host.path("/home"))
                if e.is_dir(follow_symlinks=False)
            ]
        except OSError:
            return []

    # ------------------------------------------------------------------------ reporting
    def _report(self, storage: _Storage, layer: str, rel: bytes, mask: int) -> None:
        parts = rel.split(b"/", 2)
        top = parts[1] if len(parts) > 1 else b""
        if top in EXCLUDED:
            return
        index = storage.get_index()
        info = index.layers.get(layer)
        if info is None and time.monotonic() - storage.loaded_at > 1.0:
            storage.dirty = True  # a layer we do not know yet: metadata may be newer
            index = storage.get_index()
            info = index.layers.get(layer)
        if info is not None and info.incomplete:
            return  # c/storage is still extracting a pulled layer
        where = WARNING_DIRS.get(top, "")
        level, priority = ("Warning", 5) if where else ("Critical", 2)
        kind, name, image = index.describe_layer(layer)
        self.emit(
            ContainerEvent(
                level,
                priority,
                ino.mask_names(mask & (REPORTED | ino.IN_ISDIR)),
                storage.owner,
                kind,
                name,
                image,
                layer,
                rel or b"/",
                where,
            )
        )

    def handle(self, events: list[ino.Event]) -> None:  # noqa: PLR0912 - one branch per watch kind
        """Process one batch read from inotify."""
        previous: tuple[int, int, bytes] | None = None
        for event in events:
            self.events_seen += 1
            if event.mask & ino.IN_Q_OVERFLOW:
                self.overflows += 1
                self.notice(
                    2,
                    _(
                        "Critical: inotify event queue overflowed (fs.inotify.max_queued_events): "
                        "changes were lost; the watch set is rebuilt"
                    ),
                )
                self._rescan_needed = True
                continue
            watch = self.watches.get(event.wd)
            if watch is None:
                continue
            if event.mask & ino.IN_IGNORED:
                self.watches.pop(event.wd, None)
                if self.by_path.get(watch.path) == event.wd:
                    del self.by_path[watch.path]
                if watch.kind == "diff" and not watch.rel and watch.storage is not None:
                    watch.storage.watched_layers.discard(watch.layer)
                continue
            key = (event.wd, event.mask, event.name)
            if key == previous:
                continue  # the same write reported twice in a row
            previous = key
            if watch.kind == "diff":
                assert watch.storage is not None
                rel = watch.rel + b"/" + event.name if event.name else watch.rel
                if not watch.rel and event.name in EXCLUDED:
                    continue
                self._report(watch.storage, watch.layer, rel, event.mask)
                if event.mask & ino.IN_ISDIR and event.mask & (ino.IN_CREATE | ino.IN_MOVED_TO):
                    self._watch_tree(
                        watch.storage,
                        watch.layer,
                        watch.path[: len(watch.path) - len(watch.rel)],
                        rel,
                        True,
                    )
            elif watch.kind in ("overlay", "layerdir"):
                assert watch.storage is not None
                watch.storage.dirty = True
                self._sync_layers(watch.storage, report=watch.kind == "layerdir")
            elif watch.kind == "meta":
                assert watch.storage is not None
                watch.storage.dirty = True
                self._sync_layers(watch.storage, report=False)
            elif watch.kind == "anchor":
                wanted = self.anchor_names.get(watch.path)
                if wanted is None or event.name in wanted:
                    self._rescan_needed = True

    def run(
        self, should_stop: Callable[[], bool] = lambda: False, idle: float | None = None
    ) -> None:
        """The event loop: block on inotify until ``should_stop()``."""
        self.rescan()
        limit = ino.max_user_watches(str(self.host.proc))
        self.notice(
            6,
            _("Debug: watching {count} directories in {storages} storages (budget {limit})").format(
                count=len(self.watches), storages=len(self.storages), limit=limit
            ),
        )
        while not should_stop():
            events = self.inotify.read(timeout=idle)
            if events:
                self.handle(events)
            if self._rescan_needed:
                self.rescan()

    def close(self) -> None:
        self.inotify.close()


def raise_watch_limit(host: Host, wanted: int) -> int | None:
    """Raise ``fs.inotify.max_user_watches`` to ``wanted`` on the live system (never lower it);
    return the limit in force."""
    current = ino.max_user_watches(str(host.proc))
    if current is not None and current < wanted and host.is_live:
        try:
            Path(host.proc, "sys/fs/inotify/max_user_watches").write_text(f"{wanted}\n")
            current = wanted
        except OSError:
            pass
    return current
