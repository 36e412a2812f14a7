"""containers/storage metadata read directly from a graph root (no podman child needed).

``<driver>-images/images.json``, ``<driver>-layers/layers.json`` (+ ``volatile-layers.json``)
and ``<driver>-containers/containers.json`` (+ ``volatile-containers.json``) say which image
and container a layer belongs to (driver ``overlay`` normally; ``vfs`` where rootless
overlay is unavailable). :data:`LAYOUTS` says where each driver keeps a layer's files. Unreadable or malformed files give empty
results and an ``errors`` entry, never an exception.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# driver → (directory holding one entry per layer, path of the files inside an entry)
LAYOUTS: dict[str, tuple[str, str]] = {"overlay": ("overlay", "diff"), "vfs": ("vfs/dir", "")}


def drivers(graphroot: Path) -> list[str]:
    """Storage drivers with metadata in ``graphroot`` (overlay first)."""
    found = [
        d
        for d in LAYOUTS
        if (graphroot / f"{d}-images").is_dir() or (graphroot / f"{d}-layers").is_dir()
    ]
    return found or ["overlay"]


@dataclass(frozen=True)
class StoredImage:
    id: str
    digest: str  # manifest digest ("sha256:...") as pulled
    names: tuple[str, ...]
    top_layer: str
    digests: tuple[str, ...] = ()  # every manifest digest the image is known by


@dataclass(frozen=True)
class StoredContainer:
    id: str
    name: str
    image_id: str
    image_name: str
    layer: str


@dataclass(frozen=True)
class LayerInfo:
    id: str
    parent: str
    incomplete: bool


@dataclass
class StorageIndex:
    """Layer → container / image lookup for one graph root."""

    graphroot: Path
    images: dict[str, StoredImage] = field(default_factory=dict)
    containers: dict[str, StoredContainer] = field(default_factory=dict)  # by RW layer id
    layers: dict[str, LayerInfo] = field(default_factory=dict)
    image_by_top_layer: dict[str, StoredImage] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def describe_layer(self, layer_id: str) -> tuple[str, str, str]:
        """(kind, name, image) for a layer: kind is "container", "image" or "layer"."""
        container = self.containers.get(layer_id)
        if container is not None:
            return "container", container.name or container.id[:12], container.image_name
        image = self.image_by_top_layer.get(layer_id)
        if image is None:
            # a lower layer: find an image whose chain includes it
            for img in self.images.values():
                if layer_id in self._chain(img.top_layer):
                    image = img
                    break
        if image is not None:
            return "image", image.id[:12], image.names[0] if image.names else image.id[:12]
        return "layer", layer_id[:12], ""

    def _chain(self, top: str) -> list[str]:
        chain, current, guard = [], top, 0
        while current and guard < 256:
            chain.append(current)
            info = self.layers.get(current)
            current = info.parent if info else ""
            guard += 1
        return chain


def _load_list(path: Path, errors: list[str]) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        errors.append(f"{path}: {exc}")
        return []
    if not isinstance(data, list):
        errors.append(f"{path}: not a JSON list")
        return []
    return [item for item in data if isinstance(item, dict) and isinstance(item.get("id"), str)]


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _strs(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def load_images(graphroot: Path, errors: list[str] | None = None) -> list[StoredImage]:
    errs = errors if errors is not None else []
    out = []
    items = [
        item
        for driver in drivers(graphroot)
        for item in _load_list(graphroot / f"{driver}-images" / "images.json", errs)
    ]
    for item in items:
        digests = {
            v
            for k, v in (item.get("big-data-digests") or {}).items()
            if isinstance(k, str) and k.startswith("manifest") and isinstance(v, str)
        }
        digest = item.get("digest") if isinstance(item.get("digest"), str) else ""
        if digest:
            digests.add(digest)
        out.append(
            StoredImage(
                id=item["id"],
                digest=digest or (sorted(digests)[0] if digests else ""),
                names=_strs(item.get("names")),
                top_layer=_str(item.get("layer")),
                digests=tuple(sorted(digests)),
            )
        )
    return out


def load_index(graphroot: Path) -> StorageIndex:
    index = StorageIndex(graphroot)
    for image in load_images(graphroot, index.errors):
        index.images[image.id] = image
        if image.top_layer:
            index.image_by_top_layer[image.top_layer] = image
    found = drivers(graphroot)
    layer_files = [
        graphroot / f"{d}-layers" / n
        for d in found
        for n in ("layers.json", "volatile-layers.json")
    ]
    container_files = [
        graphroot / f"{d}-containers" / n
        for d in found
        for n in ("containers.json", "volatile-containers.json")
    ]
    for path in layer_files:
        for item in _load_list(path, index.errors):
            flags = item.get("flags")
            index.layers[item["id"]] = LayerInfo(
                item["id"],
                _str(item.get("parent")),
                isinstance(flags, dict) and bool(flags.get("incomplete")),
            )
    for path in container_files:
        for item in _load_list(path, index.errors):
            layer = item.get("layer")
            if not isinstance(layer, str):
                continue
            names = _strs(item.get("names"))
            image_id = _str(item.get("image"))
            image_name = ""
            try:
                meta = json.loads(item.get("metadata") or "{}")
                if isinstance(meta, dict) and isinstance(meta.get("image-name"), str):
                    image_name = meta["image-name"]
            except (ValueError, TypeError):
                pass
            if not image_name and image_id in index.images:
                img = index.images[image_id]
                image_name = img.names[0] if img.names else image_id[:12]
            index.containers[layer] = StoredContainer(
                item["id"], names[0] if names else "", image_id, image_name, layer
            )
    return index
