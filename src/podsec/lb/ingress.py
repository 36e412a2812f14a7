"""``podsec ingress prepare``: an ingress-nginx deploy manifest for a registry.local cluster.

The seed's manual steps, done on the YAML itself (ruamel round trip: comments, key order and
quoting survive): every container image is re-pointed to the local registry with its digest
dropped (``registry.k8s.io/ingress-nginx/controller:v1.8.0@sha256:…`` →
``registry.local/ingress-nginx/controller:v1.8.0``), and the controller Service's http port
(``appProtocol: http``) gets a fixed ``nodePort`` that haproxy's ``http`` backend targets.
The ``podman tag``/``push`` commands that put the images into the registry are returned too.
"""

from __future__ import annotations

import io
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podsec.errors import UsageError, ValidationError
from podsec.i18n import _
from podsec.names import REGISTRY_HOST
from podsec.progress import NULL_PROGRESS, Progress

DEFAULT_NODE_PORT = 31000
NODE_PORT_RANGE = (30000, 32767)  # kube-apiserver's default --service-node-port-range
_WORKLOADS = {"Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job", "Pod", "CronJob"}
_REGISTRY_RE = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)*$")


@dataclass(frozen=True)
class ImageMove:
    source: str  # as written in the manifest (with the digest, which podman tag accepts)
    target: str  # in the local registry, digest dropped


@dataclass(frozen=True)
class Prepared:
    text: str
    images: tuple[ImageMove, ...]
    service: str  # namespace/name of the Service that got the nodePort
    node_port: int


def retarget(image: str, registry: str) -> str:
    """``registry.k8s.io/a/b:t@sha256:…`` → ``REGISTRY/a/b:t``."""
    name = image.split("@", 1)[0]
    parts = name.split("/")
    first = parts[0]
    if len(parts) > 1 and ("." in first or ":" in first or first == "localhost"):
        parts = parts[1:]
    elif len(parts) == 1:
        parts = ["library", *parts]  # Docker Hub's implicit namespace
    return registry.rstrip("/") + "/" + "/".join(parts)


def _yaml() -> Any:
    from ruamel.yaml import YAML

    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096  # never re-wrap long lines (args, annotations)
    y.indent(mapping=2, sequence=2, offset=0)
    return y


def _pod_specs(doc: Any) -> Iterator[Any]:
    kind = doc.get("kind")
    if kind not in _WORKLOADS:
        return
    spec = doc.get("spec") or {}
    if kind == "Pod":
        yield spec
    elif kind == "CronJob":
        yield ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template", {}).get("spec")
    else:
        yield (spec.get("template") or {}).get("spec")


def _containers(pod: Any) -> Iterator[Any]:
    if not isinstance(pod, dict):
        return
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in pod.get(key) or []:
            if isinstance(container, dict) and isinstance(container.get("image"), str):
                yield container


def _pull_comment_in(mapping: Any, key: str) -> None:
    """An end-of-line comment after a value that got shorter would keep its old column
    (a long run of spaces after the digest-less image): put it right after the value."""
    items = getattr(getattr(mapping, "ca", None), "items", {})
    entry = items.get(key)
    token = entry[2] if entry and len(entry) > 2 else None
    mark = getattr(token, "start_mark", None)
    if mark is not None and hasattr(mark, "column"):
        mark.column = 0


def _http_port(doc: Any) -> Any | None:
    """The http port entry of an ingress controller Service (appProtocol http, else name
    http), skipping the admission webhook Service."""
    if doc.get("kind") != "Service":
        return None
    name = str((doc.get("metadata") or {}).get("name", ""))
    if name.endswith("-admission"):
        return None
    ports = (doc.get("spec") or {}).get("ports") or []
    for key in ("appProtocol", "name"):
        for port in ports:
            if isinstance(port, dict) and port.get(key) == "http":
                return port
    return None


def prepare(
    text: str,
    *,
    node_port: int = DEFAULT_NODE_PORT,
    registry: str = REGISTRY_HOST,
    source: str = "manifest",
) -> Prepared:
    low, high = NODE_PORT_RANGE
    if not low <= node_port <= high:
        raise UsageError(
            _("--node-port must be in {low}–{high} (the NodePort range), not {n}").format(
                low=low, high=high, n=node_port
            )
        )
    if not _REGISTRY_RE.match(registry):
        raise UsageError(_("invalid registry {name!r}").format(name=registry))
    y = _yaml()
    from ruamel.yaml.error import YAMLError

    try:
        docs = list(y.load_all(text))
    except YAMLError as exc:
        raise ValidationError(
            _("{file}: not valid YAML: {err}").format(file=source, err=str(exc).splitlines()[0])
        ) from None

    moves: dict[str, ImageMove] = {}
    services: list[tuple[Any, Any]] = []
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        for pod in _pod_specs(doc):
            for container in _containers(pod):
                image = container["image"]
                target = retarget(image, registry)
                if image != target:
                    container["image"] = target
                    _pull_comment_in(container, "image")
                    moves.setdefault(image, ImageMove(image, target))
        port = _http_port(doc)
        if port is not None:
            services.append((doc, port))

    if not services:
        raise ValidationError(
            _("{file}: no Service with an http port (appProtocol: http) found").format(file=source),
            hint=_("is this an ingress-nginx deploy manifest?"),
        )
    # the controller's own Service when several qualify
    services.sort(
        key=lambda s: (s[0].get("metadata") or {}).get("name") != "ingress-nginx-controller"
    )
    doc, port = services[0]
    port["nodePort"] = node_port
    spec = doc["spec"]
    if spec.get("type") in (None, "ClusterIP"):
        spec["type"] = "NodePort"
    meta = doc.get("metadata") or {}
    service = f"{meta.get('namespace', 'default')}/{meta.get('name', '?')}"

    out = io.StringIO()
    y.dump_all(docs, out)
    return Prepared(out.getvalue(), tuple(moves.values()), service, node_port)


def commands(moves: tuple[ImageMove, ...], sign_by: str | None = None) -> list[list[str]]:
    """The seed's ``podman tag`` + ``podman push`` (signed with ``--sign-by`` when asked)."""
    argv = [["podman", "tag", m.source, m.target] for m in moves]
    sign = ["--sign-by", sign_by] if sign_by else []
    argv += [["podman", "push", *sign, m.target] for m in moves]
    return argv


def push(
    moves: tuple[ImageMove, ...],
    sign_by: str | None = None,
    *,
    progress: Progress = NULL_PROGRESS,
) -> None:
    """Run :func:`commands` (tag then push each image)."""
    from podsec.host.run import run

    todo = commands(moves, sign_by)
    task = _("images to registry")
    progress.start(task, total=len(todo))
    for argv in todo:
        run(argv, timeout=1800)
        progress.advance(task)
    progress.finish(task)


@dataclass(frozen=True)
class PreparedFile:
    """``podsec ingress prepare``: the prepared manifest, where it went, what is left to run."""

    prepared: Prepared
    commands: tuple[tuple[str, ...], ...]  # podman commands still to run (none after a push)
    written: Path | None  # None: the caller prints the text
    changed: bool

    def as_dict(self) -> dict[str, Any]:
        p = self.prepared
        return {
            "service": p.service,
            "nodePort": p.node_port,
            "images": [{"source": m.source, "target": m.target} for m in p.images],
            "commands": [shlex.join(c) for c in self.commands],
        }


def prepare_file(
    manifest: str,
    *,
    node_port: int = DEFAULT_NODE_PORT,
    registry: str = REGISTRY_HOST,
    output: Path | None,
    push_images: bool = False,
    sign_by: str | None = None,
    written: Callable[[Path, bool], None] = lambda _path, _changed: None,
    progress: Progress = NULL_PROGRESS,
) -> PreparedFile:
    """Read ``manifest``, :func:`prepare` it, write it to ``output`` (None: the caller prints
    it; ``written`` is told the file and whether it changed), and with ``push_images`` run
    the commands that put the images into the registry."""
    from podsec.errors import NotFoundError
    from podsec.host import files

    text = files.read_text(Path(manifest))
    if text is None:
        raise NotFoundError(_("manifest {file} does not exist").format(file=manifest))
    prepared = prepare(text, node_port=node_port, registry=registry, source=manifest)
    cmds = tuple(tuple(c) for c in commands(prepared.images, sign_by))
    changed = False
    if output is not None:
        changed = files.atomic_write(output, prepared.text, mode=0o644)
        written(output, changed)
    if push_images:
        push(prepared.images, sign_by, progress=progress)
    return PreparedFile(prepared, () if push_images else cmds, output, changed)
