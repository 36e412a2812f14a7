"""policy.json parsing: containers/image's unmarshaller cases, row by row.

Each row is the JSON one of containers/image's tests feeds its parser (``level`` says at
which object) and whether containers/image accepts it; podsec parses the same JSON — placed
where such an object sits in a policy.json — and must give the same verdict.
"""

from __future__ import annotations

from typing import Any

import pytest

from podsec.errors import ValidationError
from podsec.trust import policy
from tests.conformance.tables import rows

KEY = '{"type":"signedBy","keyType":"GPGKeys","keyData":"YWJj","signedIdentity":%s}'
WRAP = {
    "policy": "%s",
    "requirements": '{"default":%s}',
    "requirement": '{"default":[%s]}',
    "identity": '{"default":[' + KEY + "]}",
    "docker_scopes": '{"default":[{"type":"reject"}],"transports":{"docker":%s}}',
    "dir_scopes": '{"default":[{"type":"reject"}],"transports":{"dir":%s}}',
    "fulcio": '{"default":[{"type":"sigstoreSigned","fulcio":%s,"rekorPublicKeyPath":"/r"}]}',
    "pki": '{"default":[{"type":"sigstoreSigned","pki":%s}]}',
}


def accepted(row: dict[str, Any]) -> bool:
    text = WRAP[row["level"]].replace("%s", row["json"])
    try:
        policy.parse(text, "policy.json")
    except ValidationError as exc:
        # one line naming the file and the field
        assert exc.message.startswith("policy.json: ") and "\n" not in exc.message
        return False
    return True


@pytest.mark.parametrize("row", rows("policy_parse") + rows("policy_parse_sigstore"))
def test_policy_parse(row: dict[str, Any]) -> None:
    assert accepted(row) is row["valid"], row["json"]
