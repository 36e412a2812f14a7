"""Smoke tests proving the real-component Kubernetes harness (issue 3).

The control plane comes from tests/fixtures/kube.py (``control_plane`` fixture); the images from
scripts/build-images.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.fixtures.kube import ControlPlane, https_get, require_k8s_binaries
from tests.fixtures.require import IMAGES_DIR, K8S_VERSION, require_path

pytestmark = pytest.mark.cluster

IMAGE_REPO = "registry.local/p10"


def _poll(fn, timeout: float = 30.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(interval)


def test_healthz(control_plane: ControlPlane) -> None:
    out = control_plane.kubectl("get", "--raw", "/healthz")
    assert out.stdout.strip() == "ok"
    version = json.loads(control_plane.kubectl("get", "--raw", "/version").stdout)
    assert version["gitVersion"] == K8S_VERSION


def test_controller_manager_keeps_its_state_in_the_test_dir(control_plane: ControlPlane) -> None:
    """Its flexvolume directory (default /usr/libexec/kubernetes/kubelet-plugins/volume/exec,
    which it creates at start) is under the fixture's tmp dir: the fixture left that
    directory on the real machine, where a later rootless node found it by luck (issue 12)."""
    pid = control_plane.pids["kube-controller-manager"]
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    own = control_plane.work_dir / "cm-flexvolume"
    assert f"--flex-volume-plugin-dir={own}".encode() in argv
    assert _poll(own.is_dir)  # created by the controller-manager's volume plugin prober


def test_csr_approved_and_issued(control_plane: ControlPlane) -> None:
    user = f"alice-{uuid.uuid4().hex[:6]}"
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "devs"),
                    x509.NameAttribute(NameOID.COMMON_NAME, user),
                ]
            )
        )
        .sign(key, hashes.SHA256())
    )
    pem = csr.public_bytes(serialization.Encoding.PEM)
    manifest = {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": user},
        "spec": {
            "request": base64.b64encode(pem).decode(),
            "signerName": "kubernetes.io/kube-apiserver-client",
            "usages": ["client auth"],
        },
    }
    control_plane.kubectl("create", "-f", "-", input=json.dumps(manifest))
    control_plane.kubectl("certificate", "approve", user)

    def issued() -> str:
        obj = json.loads(control_plane.kubectl("get", "csr", user, "-o", "json").stdout)
        return obj.get("status", {}).get("certificate", "")

    b64 = _poll(issued, timeout=30)
    assert b64, "CSR approved but no certificate issued within 30 s (controller-manager signer?)"
    cert = x509.load_pem_x509_certificate(base64.b64decode(b64))
    subject = cert.subject
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == user
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "devs"
    ca = x509.load_pem_x509_certificate(control_plane.ca_cert.read_bytes())
    assert cert.issuer == ca.subject
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()


def test_forbidden_request_is_audited(control_plane: ControlPlane, kubeconfig_for) -> None:
    user = f"bob-{uuid.uuid4().hex[:6]}"
    kubeconfig = kubeconfig_for(user, ["devs"])
    out = control_plane.kubectl(
        "get", "pods", "-n", "kube-system", kubeconfig=kubeconfig, check=False
    )
    assert out.returncode != 0
    assert "forbidden" in out.stderr.lower()

    def forbidden_events() -> list[dict]:
        return [
            e
            for e in control_plane.audit_events()
            if e.get("user", {}).get("username") == user  # type: ignore[union-attr]
            and e.get("responseStatus", {}).get("code") == 403  # type: ignore[union-attr]
        ]

    events = _poll(forbidden_events, timeout=15)
    assert events, f"no 403 audit event for {user} in {control_plane.audit_log}"
    event = events[0]
    assert event["verb"] == "list"
    assert event["objectRef"]["resource"] == "pods"
    assert event["objectRef"]["namespace"] == "kube-system"
    # the policy keeps system:masters out of the log
    assert not any(
        "system:masters" in e.get("user", {}).get("groups", [])  # type: ignore[union-attr]
        for e in control_plane.audit_events()
    )


def test_pretty_json_and_yaml_do_not_crash_apiserver(control_plane: ControlPlane) -> None:
    """An unpatched reflect2 makes kube-apiserver die with SIGSEGV on pretty/YAML encoding."""
    name = f"pretty-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl(
        "create", "configmap", name, "-n", "default", "--from-literal=a=1", "--from-literal=b=2"
    )
    out = control_plane.kubectl(
        "get", "--raw", f"/api/v1/namespaces/default/configmaps/{name}?pretty=true"
    )
    assert "\n    " in out.stdout  # indented
    assert json.loads(out.stdout)["data"] == {"a": "1", "b": "2"}

    # curl's user agent and a YAML Accept header go through json-iterator too
    path = f"/api/v1/namespaces/default/configmaps/{name}"
    cert = (control_plane.admin_cert, control_plane.admin_key)
    for headers in ({"User-Agent": "curl/8.0"}, {"Accept": "application/yaml"}):
        status, body = https_get(
            control_plane.host,
            control_plane.port,
            path,
            ca=control_plane.ca_cert,
            cert=cert,
            headers=headers,
            timeout=10,
        )
        assert status == 200, body
        assert name in body
    assert control_plane.kubectl("get", "--raw", "/healthz").stdout.strip() == "ok"


def test_kubeadm_images_are_in_oci_layout() -> None:
    bin_dir = require_k8s_binaries("kubeadm")
    index = require_path(IMAGES_DIR / "oci" / "index.json", "OCI layout of scripts/build-images")
    out = subprocess.run(
        [
            str(bin_dir / "kubeadm"),
            "config",
            "images",
            "list",
            "--kubernetes-version",
            K8S_VERSION,
            "--image-repository",
            IMAGE_REPO,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    wanted = [r for r in out.stdout.split() if "/coredns" not in r]
    assert len(wanted) == 6, wanted
    refs = {
        m.get("annotations", {}).get("org.opencontainers.image.ref.name")
        for m in json.loads(index.read_text())["manifests"]
    }
    missing = [r for r in wanted if r not in refs]
    assert not missing, f"missing from {index}: {missing}"
    listed = (IMAGES_DIR / "images.txt").read_text().split()
    assert set(wanted) <= set(listed)
