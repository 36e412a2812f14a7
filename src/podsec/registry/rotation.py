"""Retiring a rotated key (``podsec users rotate-key USER --retire``): only when nothing breaks.

The policy without the old key is audited against the registry (:mod:`podsec.registry.audit`,
the same engine as every check): every image the current policy accepts must still be
accepted — signed by a key that stays. Otherwise nothing is written and the images that
would break are listed (``podsec images resign`` signs them with the new key). Retiring a
key that is already gone changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from podsec.errors import PodsecError, UsageError
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.names import REGISTRY_HOST
from podsec.progress import NULL_PROGRESS, Progress
from podsec.registry import audit
from podsec.trust import policy as pol
from podsec.trust import rotate, setup


@dataclass(frozen=True)
class Retirement:
    user: str
    retired: str | None  # the key removed (None: nothing to retire)
    kept: tuple[str, ...]
    changed: tuple[str, ...]
    checked: int  # images audited


class WouldBreak(PodsecError):
    def __init__(self, key: str, broken: list[audit.AuditItem]):
        self.broken = broken
        listed = "; ".join(
            f"{i.repository}@{i.digest[:19]} ({','.join(i.tags)}): {i.reason}" for i in broken
        )
        super().__init__(
            _("retiring {key} would refuse {n} image(s): {images}").format(
                key=key, n=len(broken), images=listed
            ),
            hint=_("sign them with the new key first: podsec images resign"),
        )


def retire_key(
    host: Host,
    user: str,
    old: str | None = None,
    *,
    registry: str = REGISTRY_HOST,
    progress: Progress = NULL_PROGRESS,
) -> Retirement:
    policy = setup.load_system_policy(host)
    if policy is None:
        raise UsageError(_("{path} does not exist").format(path=pol.SYSTEM_POLICY))
    keys = rotate.maker_keys(policy, user)
    if old is not None and "/" not in old:
        old = f"{setup.KEYS_DIR}/{old}"
    if len(keys) < 2:
        if old is None or old not in [k.path for k in keys]:
            return Retirement(user, None, tuple(k.path for k in keys), (), 0)
        raise UsageError(
            _("{key} is {user}'s only key: run podsec users rotate-key {user} first").format(
                key=old, user=user
            )
        )
    target = old or keys[0].path
    if target not in [k.path for k in keys]:
        raise UsageError(
            _("{key} is not one of {user}'s keys in the policy ({keys})").format(
                key=target, user=user, keys=", ".join(k.path for k in keys)
            )
        )
    if target == keys[-1].path:
        raise UsageError(_("{key} is the newest key: retire the older one").format(key=target))
    without = rotate.edit_keys(policy, None, None, target)
    now = audit.audit(host, registry=registry, progress=progress, policy=policy)
    after = audit.audit(host, registry=registry, progress=progress, policy=without)
    accepted = {(i.repository, i.digest) for i in now.items if i.status == audit.OK}
    broken = [
        i for i in after.items if i.status != audit.OK and (i.repository, i.digest) in accepted
    ]
    if broken:
        raise WouldBreak(target, broken)
    changed = setup.write_policy(host, without, publish=True)
    kept = tuple(k.path for k in keys if k.path != target)
    return Retirement(user, target, kept, tuple(changed), len(after.items))
