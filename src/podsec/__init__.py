"""podsec: secure container and rootless Kubernetes nodes.

Layers (enforced by import-linter): ``podsec.cli`` parses and renders; the capability
areas (``trust``, ``registry``, ``u7s``, ``lb``, ``rbac``, ``monitor``) hold typed core
logic that never prints; ``podsec.host`` is the machine seen through a root prefix;
``errors``, ``i18n``, ``config`` and ``progress`` are leaf modules, with ``names`` (the node's
vocabulary: accounts, groups, host names, well-known paths) and ``revocations`` (the
``revoked.json`` format rbac writes and monitor reads).
"""

__version__ = "0.1.0"
