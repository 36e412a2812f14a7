"""One reader for every configuration and state file podsec parses.

A hostile or broken tree can put anything where a config file should be: a FIFO (reading it
blocks forever), a device, a socket, a directory, a symlink loop, gigabytes, bytes that are not
UTF-8, or JSON/YAML/TOML nested deep enough to exhaust the parser's recursion. Every reader
here turns each of those into a :class:`FileFormatError` naming the file and the problem
(byte offset for bad UTF-8), so commands exit with one line and plugins say UNKNOWN:

- :func:`read_bytes` / :func:`read_text`: regular files only (stat first, then open with
  ``O_NONBLOCK`` and check ``fstat`` again, so a file swapped for a FIFO cannot block us), at
  most ``limit`` bytes, strict UTF-8;
- :func:`parse_json`, :func:`parse_yaml`, :func:`parse_toml`: the syntax error with its
  position, and nesting bounded by ``max_depth`` (YAML also refuses recursive aliases and
  excessive alias expansion, the "billion laughs").

A missing file is ``None`` for the ``read_*`` functions: whether that is an error is the
caller's decision.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import yaml

from podsec.errors import ValidationError
from podsec.i18n import _

MAX_BYTES = 8 << 20  # config and state files are kilobytes; 8 MiB is generous
MAX_DEPTH = 64  # containers/image and kubectl files nest < 10 levels
MAX_ALIAS_NODES = 100_000  # YAML nodes reachable through aliases, per document


class FileFormatError(ValidationError):
    """A file podsec must read is not a readable regular file of the expected format."""

    def __init__(self, source: str, problem: str, hint: str | None = None):
        super().__init__(
            _("{file}: {problem}").format(file=source, problem=problem),
            hint=hint if hint is not None else _("fix the file; nothing was changed"),
        )
        self.source = source
        self.problem = problem


def _kind(mode: int) -> str:
    kinds: tuple[tuple[Callable[[int], bool], str], ...] = (
        (stat.S_ISDIR, _("a directory")),
        (stat.S_ISFIFO, _("a FIFO")),
        (stat.S_ISSOCK, _("a socket")),
        (stat.S_ISCHR, _("a character device")),
        (stat.S_ISBLK, _("a block device")),
    )
    return next((name for test, name in kinds if test(mode)), _("a special file"))


def _os_problem(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return _("symbolic link loop")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return _("permission denied")
    return _("cannot read: {err}").format(err=exc.strerror or exc)


def require_regular(path: Path, *, shown: str | None = None) -> bool:
    """False when ``path`` is missing, True when it is a regular file (symlinks followed);
    anything else raises :class:`FileFormatError` — without opening it."""
    source = shown or str(path)
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise FileFormatError(source, _os_problem(exc)) from exc
    if not stat.S_ISREG(st.st_mode):
        raise FileFormatError(
            source, _("is {kind}, not a regular file").format(kind=_kind(st.st_mode))
        )
    return True


def read_bytes(path: Path, *, limit: int = MAX_BYTES, shown: str | None = None) -> bytes | None:
    """The content of the regular file ``path`` (symlinks followed), or None if it is missing.

    Anything else — a directory, FIFO, socket, device, a symlink loop, a dangling symlink's
    loop, more than ``limit`` bytes — raises :class:`FileFormatError` naming ``shown``.
    """
    source = shown or str(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None  # a parent is a regular file: nothing can exist below it
    except OSError as exc:
        raise FileFormatError(source, _os_problem(exc)) from exc
    if not stat.S_ISREG(st.st_mode):
        raise FileFormatError(
            source, _("is {kind}, not a regular file").format(kind=_kind(st.st_mode))
        )
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FileFormatError(source, _os_problem(exc)) from exc
    try:
        st = os.fstat(fd)  # the name may have been swapped between stat and open
        if not stat.S_ISREG(st.st_mode):
            raise FileFormatError(
                source, _("is {kind}, not a regular file").format(kind=_kind(st.st_mode))
            )
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise FileFormatError(source, _("larger than {limit} bytes").format(limit=limit))
    except OSError as exc:
        raise FileFormatError(source, _os_problem(exc)) from exc
    finally:
        os.close(fd)
    return b"".join(chunks)


def decode(data: bytes, source: str) -> str:
    """``data`` as strict UTF-8; the error gives the offset of the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileFormatError(
            source, _("not valid UTF-8 (byte {offset})").format(offset=exc.start)
        ) from exc


def read_text(path: Path, *, limit: int = MAX_BYTES, shown: str | None = None) -> str | None:
    """:func:`read_bytes` decoded as strict UTF-8 (None if the file is missing)."""
    data = read_bytes(path, limit=limit, shown=shown)
    return None if data is None else decode(data, shown or str(path))


def check_depth(value: object, source: str, max_depth: int = MAX_DEPTH) -> None:
    """Refuse a parsed document nested deeper than ``max_depth`` (walked without recursion;
    shared subtrees — YAML aliases — are walked once)."""
    stack: list[tuple[object, int]] = [(value, 0)]
    seen: set[int] = set()
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, dict | list | tuple):
            continue
        if depth >= max_depth:
            raise _too_deep(source, max_depth)
        if id(item) in seen:
            continue
        seen.add(id(item))
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children)


def _too_deep(source: str, max_depth: int) -> FileFormatError:
    return FileFormatError(source, _("nested deeper than {depth} levels").format(depth=max_depth))


def parse_json(
    data: str | bytes,
    source: str,
    *,
    max_depth: int = MAX_DEPTH,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
) -> Any:
    """Parse JSON text (bytes must be UTF-8); errors name ``source`` and the position."""
    text = decode(data, source) if isinstance(data, bytes) else data
    try:
        value = json.loads(text, object_pairs_hook=object_pairs_hook)
    except json.JSONDecodeError as exc:
        raise FileFormatError(
            source,
            _("invalid JSON at line {line}, column {col}: {err}").format(
                line=exc.lineno, col=exc.colno, err=exc.msg
            ),
        ) from exc
    except RecursionError as exc:
        raise _too_deep(source, max_depth) from exc
    check_depth(value, source, max_depth)
    return value


def read_json(path: Path, *, limit: int = MAX_BYTES, shown: str | None = None, **kw: Any) -> Any:
    """:func:`read_text` + :func:`parse_json`; None if the file is missing."""
    text = read_text(path, limit=limit, shown=shown)
    return None if text is None else parse_json(text, shown or str(path), **kw)


class _DepthExceeded(Exception):
    pass


@functools.cache
def _bounded_base() -> type[yaml.SafeLoader]:
    import yaml

    class Bounded(yaml.SafeLoader):
        """SafeLoader whose composer counts depth and alias expansion (PyYAML's composer
        recurses once per level; the C loader may even overflow the C stack)."""

        max_depth = MAX_DEPTH

        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self._depth = 0
            self._alias_nodes = 0
            self._open: set[str] = set()

        def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
            events: Any = self  # PyYAML's event methods are untyped
            if self.check_event(yaml.AliasEvent):
                event = events.peek_event()
                if event.anchor in self._open:
                    raise yaml.composer.ComposerError(
                        None, None, f"recursive alias {event.anchor!r}", event.start_mark
                    )
                node = super().compose_node(parent, index)
                self._alias_nodes += _size(node) if node is not None else 0
                if self._alias_nodes > MAX_ALIAS_NODES:
                    raise yaml.composer.ComposerError(
                        None, None, "too many nodes through aliases", event.start_mark
                    )
                return node
            self._depth += 1
            if self._depth > self.max_depth:
                raise _DepthExceeded
            anchor = events.peek_event().anchor
            if anchor is not None:
                self._open.add(anchor)
            try:
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1
                if anchor is not None:
                    self._open.discard(anchor)

    return Bounded


def _size(node: yaml.Node) -> int:
    import yaml

    count = 0
    stack = [node]
    while stack and count <= MAX_ALIAS_NODES:
        item = stack.pop()
        count += 1
        if isinstance(item, yaml.SequenceNode):
            stack.extend(item.value)
        elif isinstance(item, yaml.MappingNode):
            for key, value in item.value:
                stack.extend((key, value))
    return count


_LOADERS: dict[type[Any], type[yaml.SafeLoader]] = {}


def bounded_loader(base: type[yaml.SafeLoader] | None = None) -> type[yaml.SafeLoader]:
    """A loader class with ``base``'s constructors (SafeLoader's by default) and the bounded
    composer: depth, recursive aliases and alias expansion are limited."""
    bounded = _bounded_base()
    if base is None or issubclass(base, bounded):
        return bounded
    if base not in _LOADERS:
        _LOADERS[base] = type(f"Bounded{base.__name__}", (bounded, base), {})
    return _LOADERS[base]


def parse_yaml(
    text: str | bytes,
    source: str,
    *,
    loader: type[yaml.SafeLoader] | None = None,
    max_depth: int = MAX_DEPTH,
    all_documents: bool = False,
) -> Any:
    """Parse YAML with a safe ``loader`` (SafeLoader or a subclass: its constructors are kept),
    bounded; ``all_documents`` returns the list of documents of a multi-document stream."""
    import yaml

    doc_text = decode(text, source) if isinstance(text, bytes) else text
    cls = bounded_loader(loader)
    instance: Any = cls(doc_text)
    instance.max_depth = max_depth
    try:
        if all_documents:
            docs: list[Any] = []
            while instance.check_data():
                docs.append(instance.get_data())
            value: Any = docs
        else:
            value = instance.get_single_data()
    except _DepthExceeded as exc:
        raise _too_deep(source, max_depth) from exc
    except RecursionError as exc:
        raise _too_deep(source, max_depth) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or ""
        if mark is None:
            raise FileFormatError(source, _("invalid YAML: {err}").format(err=problem)) from exc
        raise FileFormatError(
            source,
            _("invalid YAML at line {line}, column {col}: {err}").format(
                line=mark.line + 1, col=mark.column + 1, err=problem
            ),
        ) from exc
    except yaml.YAMLError as exc:
        raise FileFormatError(
            source, _("invalid YAML: {err}").format(err=" ".join(str(exc).split()))
        ) from exc
    finally:
        instance.dispose()
    check_depth(value, source, max_depth + 1)
    return value


def parse_toml(text: str | bytes, source: str, *, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """Parse TOML (bytes must be UTF-8), bounded like JSON."""
    import tomllib  # only where a TOML file exists (podsec.toml is optional): start-up

    doc_text = decode(text, source) if isinstance(text, bytes) else text
    try:
        value = tomllib.loads(doc_text)
    except tomllib.TOMLDecodeError as exc:
        raise FileFormatError(source, _("invalid TOML: {err}").format(err=exc)) from exc
    except RecursionError as exc:
        raise _too_deep(source, max_depth) from exc
    check_depth(value, source, max_depth)
    return value
