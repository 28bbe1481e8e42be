"""Manifests of the containers models ship in, read as what they are.

* OCI image layout `index.json`, OCI image manifests and indexes, Docker distribution manifests
  (v2 schema 2) and manifest lists: JSON with `schemaVersion` and a `mediaType` and/or `layers`,
  `config`, `manifests` descriptors (image-spec descriptor.md, manifest.md, image-index.md). Blobs
  of an OCI layout (`blobs/sha256/<hex>`, no extension) are recognised by that content.
* `docker save` `manifest.json`: a list of `{"Config", "RepoTags", "Layers"}` paths inside the tar.
* TorchServe `.mar` archives' `MAR-INF/MANIFEST.json`: `{"runtime", "model": {"modelName",
  "serializedFile", "handler", "modelFile", "requirementsFile", "envelope", ...},
  "archiverVersion"}` (model-archiver's manifest.py).

The layers, blobs and archive members themselves are scanned by the container scanners; this
module judges what the manifest asks of the tool that reads it: foreign layers fetched from URLs
(MAN002), paths and digests that leave the archive (MAN003), digests that are not content
addresses (MAN004), URLs in annotations (MAN006) and secrets in them (BIN002, masked; conclusive shapes are
reported by the text scanner's whole-file pass), and TorchServe's
custom handlers, per-model pip installs and runtimes (MAN007-MAN009). Malformed manifests are
MAN001. Nothing is fetched, installed or imported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from shardscan.model import Finding
from shardscan.scanners import indicators
from shardscan.scanners.base import CappedFindings, ScanContext
from shardscan.scanners.orbax import weak_secrets

MAX_REPORTED = 8
OCI, DOCKER_SAVE, TORCHSERVE = "oci", "docker-save", "torchserve"
#: Digest algorithms and their hex lengths (image-spec descriptor.md "Registered algorithms").
DIGEST_HEX = {"sha256": 64, "sha512": 128, "blake3": 64}
DIGEST = re.compile(r"(?P<alg>[a-z0-9]+(?:[+._-][a-z0-9]+)*):(?P<enc>[a-zA-Z0-9=_-]+)")
#: TorchServe's built-in handlers (ts/torch_handler/*.py), by the short names the archiver takes.
TORCHSERVE_HANDLERS = frozenset({
    "image_classifier", "image_segmenter", "object_detector", "text_classifier", "text_handler",
    "vision_handler", "base_handler", "densenet_handler", "dali_image_classifier", "dali_image_segmenter",
})
TORCHSERVE_ENVELOPES = frozenset({"json", "body", "kserve", "kservev2", "kfserving", "kfservingv2"})
PYTHON_RUNTIMES = frozenset({"python", "python3"})
#: Media types of manifests, indexes and manifest lists (OCI and Docker).
MANIFEST_TYPES = frozenset({
    "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json",
})


def manifest_kind(name: str, text: str) -> str | None:
    """Which manifest `text` (named `name`) is, cheaply, or None for any other JSON."""
    base = name.rsplit("/", 1)[-1]
    if name.endswith("MAR-INF/MANIFEST.json"):
        return TORCHSERVE
    head = text[:4096]
    if base == "manifest.json" and text.lstrip()[:1] == "[" and '"Layers"' in text:
        return DOCKER_SAVE
    shaped = '"schemaVersion"' in head and ('"mediaType"' in head or '"layers"' in text or '"manifests"' in text)
    if shaped and (base in ("index.json", "manifest.json") or "." not in base or "blobs/" in name):
        return OCI
    return None


def _escapes(path: str) -> bool:
    p = path.replace("\\", "/")
    return p.startswith("/") or bool(re.match(r"[A-Za-z]:/", p)) or ".." in p.split("/")


class _Manifest:
    def __init__(self, text: str, ctx: ScanContext, scanner_id: str) -> None:
        self.text, self.ctx = text, ctx
        self.report = CappedFindings(scanner_id, MAX_REPORTED)

    def offset(self, needle: str) -> int | None:
        i = self.text.find(json.dumps(needle)) if needle else -1
        return None if i < 0 else len(self.text[:i].encode("utf-8", "surrogatepass"))

    def add(self, rule_id: str, message: str, needle: str = "", **evidence: object) -> None:
        self.report.add(rule_id, message, offset=self.offset(needle), **evidence)

    def path(self, where: str, value: Any, what: str) -> None:
        if value is None or value == "":
            return
        if not isinstance(value, str):
            self.add("MAN001", f"{where}: {what} is a {type(value).__name__}, not a path")
            return
        if _escapes(value):
            self.add("MAN003", f"{where}: {what} {indicators.mask(value)[:160]!r} is absolute or climbs out of the "
                               "archive", value, path=indicators.mask(value)[:160])

    def digest(self, where: str, value: Any) -> None:
        if not isinstance(value, str):
            self.add("MAN001", f"{where}: digest is {'missing' if value is None else 'not a string'}")
            return
        m = DIGEST.fullmatch(value)
        if m is None:
            if "/" in value or ".." in value or "\\" in value:
                self.add("MAN003", f"{where}: digest {value[:100]!r} holds path characters: a layout reader "
                                   "resolving blobs/<alg>/<hex> leaves the blobs directory", value)
            else:
                self.add("MAN004", f"{where}: digest {value[:100]!r} is not algorithm:encoded", value)
            return
        want = DIGEST_HEX.get(m["alg"])
        if want is not None and not re.fullmatch(f"[0-9a-f]{{{want}}}", m["enc"]):
            self.add("MAN004", f"{where}: {m['alg']} digest {value[:100]!r} is not {want} lowercase hex digits",
                     value)

    def strings(self, where: str, value: Any, depth: int = 0) -> None:
        """Secrets (masked) and URLs in annotations, labels and other free text."""
        if depth > 16:
            return
        if isinstance(value, dict):
            for k, v in list(value.items())[: self.ctx.limits.max_manifest_entries]:
                self.strings(f"{where}/{k}"[:200], v, depth + 1)
                self.strings(f"{where}/{k}"[:200], str(k), depth + 1) if len(str(k)) >= 8 else None
        elif isinstance(value, list):
            for i, v in enumerate(value[: self.ctx.limits.max_manifest_entries]):
                self.strings(f"{where}[{i}]", v, depth + 1)
        elif isinstance(value, str) and len(value) >= 8:
            for s in weak_secrets(value, where.rsplit("/", 1)[-1])[:2]:
                self.report.add(indicators.SECRET_RULE, indicators.secret_message(where, s), offset=None,
                                kind=s.kind, length=s.length)
            for url in indicators.find_urls(value)[:2]:
                self.report.add("MAN006", f"{where} names {url.text[:160]}", offset=None, url=url.text[:160])

    # -- OCI / Docker distribution -------------------------------------------------------------

    def descriptor(self, where: str, d: Any) -> None:
        if not isinstance(d, dict):
            self.add("MAN001", f"{where}: descriptor is a {type(d).__name__}, not an object")
            return
        self.digest(where, d.get("digest"))
        size = d.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            self.add("MAN001", f"{where}: size {str(size)[:40]!r} is not a non-negative integer")
        if not isinstance(d.get("mediaType", ""), str):
            self.add("MAN001", f"{where}: mediaType is not a string")
        urls = d.get("urls")
        if urls:
            shown = [indicators.mask(str(u))[:120] for u in (urls if isinstance(urls, list) else [urls])[:3]]
            self.add("MAN002", f"{where}: layer is fetched from {', '.join(shown)} at pull time (foreign layer), "
                               "not from the registry", str(urls[0]) if isinstance(urls, list) and urls else "",
                     urls=", ".join(shown))
        if "annotations" in d:
            self.strings(f"{where}/annotations", d["annotations"])

    def oci(self, doc: Any) -> None:
        if not isinstance(doc, dict):
            self.add("MAN001", f"OCI manifest is a JSON {type(doc).__name__}, not an object")
            return
        if doc.get("schemaVersion") != 2:
            self.add("MAN001", f"schemaVersion is {str(doc.get('schemaVersion'))[:20]!r}, not 2", "schemaVersion")
        media = doc.get("mediaType")
        if media is not None and (not isinstance(media, str) or ("manifest" in media and media not in MANIFEST_TYPES
                                                                 and not media.startswith("application/vnd."))):
            self.add("MAN001", f"mediaType {str(media)[:80]!r} is not a manifest media type", "mediaType")
        if "config" in doc:
            self.descriptor("config", doc["config"])
        for key in ("layers", "manifests", "blobs"):
            items = doc.get(key)
            if items is None:
                continue
            if not isinstance(items, list):
                self.add("MAN001", f"{key} is a {type(items).__name__}, not a list", key)
                continue
            if len(items) > self.ctx.limits.max_manifest_entries:
                self.add("MAN001", f"{key} lists {len(items)} descriptors, beyond the "
                                   f"{self.ctx.limits.max_manifest_entries} checked", key)
            for i, d in enumerate(items[: self.ctx.limits.max_manifest_entries]):
                self.descriptor(f"{key}[{i}]", d)
        if "subject" in doc:
            self.descriptor("subject", doc["subject"])
        if "annotations" in doc:
            self.strings("annotations", doc["annotations"])

    # -- docker save -------------------------------------------------------------------------------

    def docker_save(self, doc: Any) -> None:
        if not isinstance(doc, list):
            self.add("MAN001", f"docker-save manifest.json is a JSON {type(doc).__name__}, not a list")
            return
        for i, entry in enumerate(doc[: self.ctx.limits.max_manifest_entries]):
            if not isinstance(entry, dict):
                self.add("MAN001", f"[{i}] is a {type(entry).__name__}, not an image entry")
                continue
            self.path(f"[{i}]/Config", entry.get("Config"), "config path")
            layers = entry.get("Layers")
            if not isinstance(layers, list):
                self.add("MAN001", f"[{i}]/Layers is {'missing' if layers is None else 'not a list'}")
                layers = []
            for j, layer in enumerate(layers[: self.ctx.limits.max_manifest_entries]):
                self.path(f"[{i}]/Layers[{j}]", layer, "layer path")
            for key, value in entry.items():
                if key == "LayerSources" and isinstance(value, dict):
                    for digest, d in list(value.items())[: self.ctx.limits.max_manifest_entries]:
                        self.digest(f"[{i}]/LayerSources", digest)
                        self.descriptor(f"[{i}]/LayerSources/{digest[:80]}", d)
            self.strings(f"[{i}]/RepoTags", entry.get("RepoTags"))

    # -- TorchServe ----------------------------------------------------------------------------------

    def torchserve(self, doc: Any) -> None:
        if not isinstance(doc, dict) or not isinstance(doc.get("model"), dict):
            self.add("MAN001", "MAR-INF/MANIFEST.json is not an object with a \"model\" object")
            return
        model = doc["model"]
        runtime = doc.get("runtime")
        if isinstance(runtime, str) and runtime.lower() not in PYTHON_RUNTIMES:
            self.add("MAN009", f"runtime {runtime[:40]!r} is not python", "runtime", runtime=runtime[:40])
        for key in ("serializedFile", "modelFile", "handler", "requirementsFile", "extraFiles", "configFile"):
            value = model.get(key)
            for part in (value.split(",") if isinstance(value, str) and key == "extraFiles" else [value]):
                target = part.split(":", 1)[0] if key == "handler" and isinstance(part, str) else part
                self.path(f"model/{key}", target, key)
        handler = model.get("handler")
        if isinstance(handler, str) and handler:
            module = handler.split(":", 1)[0]
            short = module.removesuffix(".py").removeprefix("ts.torch_handler.")
            if short not in TORCHSERVE_HANDLERS:
                self.add("MAN007", f"handler {handler[:120]!r} is not a TorchServe built-in handler: its Python runs "
                                   "in the model server at load", handler, handler=handler[:120])
        envelope = model.get("envelope")
        if isinstance(envelope, str) and envelope and envelope not in TORCHSERVE_ENVELOPES:
            self.add("MAN007", f"envelope {envelope[:120]!r} is not a TorchServe built-in envelope: its Python runs "
                               "in the model server", envelope, handler=envelope[:120])
        req = model.get("requirementsFile")
        if isinstance(req, str) and req:
            self.add("MAN008", f"requirementsFile {req[:120]!r}: TorchServe pip-installs it when "
                               "install_py_dep_per_model is on (the file is scanned as an archive member)", req,
                     requirements=req[:120])
        self.strings("model", {k: v for k, v in model.items() if k not in ("handler",)})


def _walk_depth(value: Any, limit: int) -> Iterator[None]:
    stack = [(value, 0)]
    while stack:
        v, d = stack.pop()
        if d > limit:
            raise RecursionError
        if isinstance(v, dict):
            stack += [(x, d + 1) for x in v.values()]
        elif isinstance(v, list):
            stack += [(x, d + 1) for x in v]
        yield None


def analyse_manifest(kind: str, text: str, ctx: ScanContext, scanner_id: str, *, location: str = "") -> list[Finding]:
    """Findings for a manifest `manifest_kind` recognised."""
    m = _Manifest(text, ctx, scanner_id)
    try:
        doc = json.loads(text)
        for n, _ in enumerate(_walk_depth(doc, ctx.limits.max_config_depth)):
            if n > ctx.limits.max_config_nodes:
                raise RecursionError
    except RecursionError:
        m.report.add("MAN001", f"{kind} manifest nests or counts beyond the parser limits: not analysed", offset=0)
        doc = None
    except ValueError as exc:
        m.report.add("MAN001", f"{kind} manifest is not valid JSON: {str(exc)[:160]}", offset=0)
        doc = None
    if doc is not None:
        {OCI: m.oci, DOCKER_SAVE: m.docker_save, TORCHSERVE: m.torchserve}[kind](doc)
    m.report.summarise()
    return [f.within(location) if location else f for f in m.report.findings]
