"""podsec: secure container and rootless Kubernetes nodes.

Layers (enforced by import-linter): ``podsec.cli`` parses and renders; the capability
areas (``trust``, ``registry``, ``u7s``, ``lb``, ``rbac``, ``monitor``) hold typed core
logic that never prints; ``podsec.host`` is the machine seen through a root prefix;
``errors``, ``i18n``, ``config`` and ``progress`` are leaf modules.
"""

__version__ = "0.1.0"
