"""Root-prefixed paths.

Every file podsec reads or writes goes through :meth:`Host.path`, so ``--root DIR`` (or
``PODSEC_ROOT``) makes a test or an image builder configure a tree that is not ``/``. The
kernel's views (``/proc``, ``/sys``, ``/dev``) are separate because they describe the running
machine, not the tree being configured; tests point them at fixtures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class Host:
    root: Path = Path("/")
    proc: Path = Path("/proc")
    sys: Path = Path("/sys")
    dev: Path = Path("/dev")

    @property
    def is_live(self) -> bool:
        """True when configuring the running system (root ``/``): only then may podsec apply
        changes to the kernel (sysctl -w) or talk to the running service manager."""
        return self.root == Path("/")

    def path(self, absolute: str | PurePosixPath) -> Path:
        """Map an absolute path of the configured system into the root prefix."""
        text = str(absolute)
        if not text.startswith("/"):
            raise ValueError(f"host paths are absolute, got {text!r}")
        return self.root / text.lstrip("/")

    def unroot(self, real: Path) -> str:
        """The path as the configured system sees it (for messages and config contents)."""
        try:
            return "/" + str(real.relative_to(self.root))
        except ValueError:
            return str(real)
