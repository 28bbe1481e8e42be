"""Text shipped with models: configs (JSON, YAML, MLmodel), Python source and chat templates.

Content detection says only "text" (the head decodes as UTF-8); the name and a look at the
content pick the analysis:

* `.py` / `.pyw` (or a python shebang): Python source, `pysource.analyse_python`.
* `.json` (or text that starts like a JSON object): `configs.analyse_json`.
* `.yaml` / `.yml` / `MLmodel`: `configs.analyse_yaml`; other text (not documentation) holding a
  python YAML tag is parsed as YAML too (a loader does not care about the extension), reporting
  only tags the parser itself reads.
* `.jinja` / `.jinja2` / `.j2`: the chat template analyser.
* Orbax `_CHECKPOINT_METADATA`, `_METADATA`, `_sharding` and zarr `.zarray`/`.zattrs`/`zarr.json`:
  `orbax.analyse_text`; OCI/Docker manifests and TorchServe `MAR-INF/MANIFEST.json`:
  `manifests.analyse_manifest`.
* anything else (README, .txt, .md, vocabularies): nothing to analyse.

Every kind is searched for secrets by their conclusive shapes (BIN002, masked).

Nothing is loaded, imported, rendered or executed.
"""

from __future__ import annotations

from shardscan.model import Finding, Unit, UnitResult
from shardscan.scanners import configs, indicators, manifests, orbax, pysource
from shardscan.scanners.base import ScanContext, Scanner, finding, unit_view
from shardscan.scanners.detect import extension
from shardscan.storage.reader import RangeReader

PYTHON, JSON, YAML, TEMPLATE, OTHER = "python", "json", "yaml", "template", "other"
EXTENSIONS = {".py": PYTHON, ".pyw": PYTHON, ".json": JSON, ".yaml": YAML, ".yml": YAML,
              ".jinja": TEMPLATE, ".jinja2": TEMPLATE, ".j2": TEMPLATE}
MLMODEL = "mlmodel"
#: Orbax checkpoint and zarr metadata (`orbax.METADATA_NAMES`): JSON without an extension.
ORBAX = "orbax"
#: Text that explains things: a python YAML tag quoted there is not a config.
DOCUMENTATION = frozenset({".md", ".rst", ".html", ".htm", ".ipynb"})
#: Secrets listed per file.
MAX_SECRETS = 8


def classify(name: str, head: bytes) -> str:
    base = name.rsplit("/", 1)[-1]
    if base == "MLmodel":
        return MLMODEL
    if base in orbax.METADATA_NAMES:
        return ORBAX
    kind = EXTENSIONS.get(extension(base))
    if kind:
        return kind
    first_line = head.split(b"\n", 1)[0]
    if first_line.startswith(b"#!") and b"python" in first_line:
        return PYTHON
    return OTHER


class TextScanner(Scanner):
    id = "text"
    description = "Text shipped with models: JSON/YAML/MLmodel configs, Python source, chat templates"

    def scan(self, unit: Unit, reader: RangeReader, ctx: ScanContext) -> UnitResult:
        view = unit_view(unit, reader)
        size = view.size
        kind = classify(unit.object.uri, view.read(0, 256))
        limit = ctx.limits.max_json_bytes if kind in (JSON, ORBAX) else ctx.limits.max_text_bytes
        if size > limit:
            if kind == OTHER:
                return UnitResult()  # plain text this large is not searched
            return UnitResult([finding("FMT005", self.id, f"{kind} text of {size} bytes exceeds the {limit}-byte "
                                       "analysis limit; it was not analysed", offset=0, size=size, limit=limit)])
        data = view.read(0, size)
        text, bad_at = _decode(data)
        findings = _secrets(text, self.id)
        if kind == PYTHON:
            return UnitResult(findings + pysource.analyse_python(data, ctx, self.id))
        if bad_at is not None and kind != OTHER:
            findings.append(finding("CFG302", self.id, f"{kind} text is not valid UTF-8 (byte {bad_at}); analysed "
                                    "with the bad bytes replaced", offset=bad_at))
        manifest = manifests.manifest_kind(unit.object.uri, text) if kind in (JSON, OTHER) else None
        if kind == ORBAX:
            findings += orbax.analyse_text(unit.object.uri, text, ctx, self.id)
        elif manifest is not None:
            findings += manifests.analyse_manifest(manifest, text, ctx, self.id)
        elif kind == JSON:
            findings += configs.analyse_json(text, ctx, self.id) or []
        elif kind in (YAML, MLMODEL):
            findings += configs.analyse_yaml(text, ctx, self.id, mlmodel=kind == MLMODEL)
        elif kind == TEMPLATE:
            findings += configs.analyse_template(text, scanner_id=self.id, location="", offset=0)
        elif text.lstrip()[:1] == "{":
            findings += configs.analyse_json(text, ctx, self.id, named=False) or []
        elif configs.has_python_tags(text) and extension(unit.object.uri) not in DOCUMENTATION:
            findings += configs.analyse_yaml(text, ctx, self.id, named=False)
        return UnitResult(findings)


def _secrets(text: str, scanner_id: str) -> list[Finding]:
    """Secrets anywhere in the text, whatever its kind (a model card, a `.env`, a config), by
    their conclusive shapes only: `token = os.environ[...]` is code, not a leak."""
    out = []
    for secret in indicators.secrets_in(text, strong_only=True)[:MAX_SECRETS]:
        line = text.count("\n", 0, secret.start) + 1
        out.append(finding(indicators.SECRET_RULE, scanner_id, indicators.secret_message(f"line {line}", secret),
                           offset=configs.byte_offset(text, secret.start), kind=secret.kind, length=secret.length,
                           line=line))
    return out


def _decode(data: bytes) -> tuple[str, int | None]:
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return data.decode("utf-8", "replace"), exc.start
