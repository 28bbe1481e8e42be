"""Text shipped with models: configs (JSON, YAML, MLmodel), Python source and chat templates.

Content detection says only "text" (the head decodes as UTF-8); the name and a look at the
content pick the analysis:

* `.py` / `.pyw` (or a python shebang): Python source, `pysource.analyse_python`.
* `.json` (or text that starts like a JSON object): `configs.analyse_json`.
* `.yaml` / `.yml` / `MLmodel`: `configs.analyse_yaml`; other text (not documentation) holding a
  python YAML tag is parsed as YAML too (a loader does not care about the extension), reporting
  only tags the parser itself reads.
* `.jinja` / `.jinja2` / `.j2`: the chat template analyser.
* anything else (README, .txt, .md, vocabularies): nothing to analyse and nothing reported.

Nothing is loaded, imported, rendered or executed.
"""

from __future__ import annotations

from shardscan.model import Finding, Unit, UnitResult
from shardscan.scanners import configs, pysource
from shardscan.scanners.base import ScanContext, Scanner, finding, unit_view
from shardscan.scanners.detect import extension
from shardscan.storage.reader import RangeReader

PYTHON, JSON, YAML, TEMPLATE, OTHER = "python", "json", "yaml", "template", "other"
EXTENSIONS = {".py": PYTHON, ".pyw": PYTHON, ".json": JSON, ".yaml": YAML, ".yml": YAML,
              ".jinja": TEMPLATE, ".jinja2": TEMPLATE, ".j2": TEMPLATE}
MLMODEL = "mlmodel"
#: Text that explains things: a python YAML tag quoted there is not a config.
DOCUMENTATION = frozenset({".md", ".rst", ".html", ".htm", ".ipynb"})


def classify(name: str, head: bytes) -> str:
    base = name.rsplit("/", 1)[-1]
    if base == "MLmodel":
        return MLMODEL
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
        limit = ctx.limits.max_json_bytes if kind == JSON else ctx.limits.max_text_bytes
        if size > limit:
            if kind == OTHER:
                return UnitResult()  # plain text is not analysed at any size
            return UnitResult([finding("FMT005", self.id, f"{kind} text of {size} bytes exceeds the {limit}-byte "
                                       "analysis limit; it was not analysed", offset=0, size=size, limit=limit)])
        data = view.read(0, size)
        if kind == PYTHON:
            return UnitResult(pysource.analyse_python(data, ctx, self.id))
        text, bad_at = _decode(data)
        findings: list[Finding] = []
        if bad_at is not None and kind != OTHER:
            findings.append(finding("CFG302", self.id, f"{kind} text is not valid UTF-8 (byte {bad_at}); analysed "
                                    "with the bad bytes replaced", offset=bad_at))
        if kind == JSON:
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


def _decode(data: bytes) -> tuple[str, int | None]:
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return data.decode("utf-8", "replace"), exc.start
