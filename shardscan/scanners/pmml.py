"""PMML files: XML entity abuse, external references and script carried in Extensions.

PMML (Predictive Model Markup Language, dmg.org) is XML. Engines (JPMML, PyPMML, Nyoka, many
commercial scorers) parse it with general XML parsers, so the risks are those of XML and of
the one free-form element PMML defines, `<Extension>`:

* PMM001 (CRITICAL): a DOCTYPE that declares an external entity (`SYSTEM`/`PUBLIC`) or names
  an external DTD: a parser that resolves it reads local files or fetches URLs (XXE, SSRF).
* PMM002 (WARNING): a DOCTYPE with internal entities only (entity expansion, "billion laughs"),
  or a DOCTYPE at all: PMML needs none.
* PMM003 (WARNING): the XML is malformed (or not UTF-8/encoded as declared): an integrity issue,
  loaders refuse it or read it differently.
* PMM004 (INFO): references to resources outside the file (`xsi:schemaLocation` URLs, URLs in
  an Extension's attributes or text): listed so a download location is seen.
* PMM005 (CRITICAL): an Extension whose attributes or text hold code: the Python, shell and
  script-markup heuristics of the SafeTensors metadata checks (`eval(`, `os.system(`,
  `subprocess.*(`, `import os`, `<script`, `curl ... | sh`...).
* PMM006 (WARNING): an Extension that declares a script (its `name`, `extender` or `value`
  names a script language: script, jython, python, javascript, groovy, shell, lambda, code...),
  used by some engines to run user code, without a recognised code pattern.
* PMM007 (WARNING): the document exceeds a parser limit (element nesting or count); the rest was
  not analysed. A file larger than `max_pmml_bytes` is not parsed (FMT005).
* BIN002 (WARNING, shared by every format): secrets (tokens, keys, passwords) in Extensions, masked.

The XML is parsed with `defusedxml` (expat underneath): entity declarations and external
references are refused, never expanded or fetched. When a DOCTYPE stops the parse, the
Extensions are checked by pattern over the whole text instead.
"""

from __future__ import annotations

import re
from typing import Any

from shardscan.model import Unit, UnitResult
from shardscan.scanners import indicators
from shardscan.scanners.base import CappedFindings, ScanContext, Scanner, ScanTimeout, rebase, unit_view
from shardscan.scanners.indicators import CODE_PATTERNS, SECRET_RULE, shown
from shardscan.storage.reader import RangeReader

#: Findings of one rule listed before the rest are counted in one more finding.
MAX_REPORTED = 8
SCRIPT_NAME = re.compile(r"script|jython|python|javascript|ecmascript|groovy|shell|bash|lambda|\bcode\b|\bexec",
                         re.IGNORECASE)
#: Lines shaped like Python or JavaScript definitions and imports.
SCRIPT_LINE = re.compile(r"(?m)^\s*(?:def\s+\w+\s*\(|function\s*\w*\s*\(|import\s+[\w.]+"
                         r"|from\s+[\w.]+\s+import\b|(?:var|let|const)\s+\w+\s*=)")
URL = re.compile(r"\b(?:https?|ftp|file|s3|gs|hdfs|ssh|git|jar)://[^\s\"'<>]+", re.IGNORECASE)
DOCTYPE = re.compile(rb"<!DOCTYPE\s+[^\s\[>]+(?P<ext>\s+(?:SYSTEM|PUBLIC)\b[^\[>]*)?", re.IGNORECASE)
ENTITY = re.compile(rb"<!ENTITY\s+(?P<param>%\s+)?(?P<name>[^\s>]+)\s+(?P<kind>SYSTEM|PUBLIC)?", re.IGNORECASE)
EXTENSION_TEXT = re.compile(rb"<(?:\w+:)?Extension\b.*?(?:</(?:\w+:)?Extension>|/>)", re.DOTALL)


class _ReaderFile:
    """A file-like view of a reader for the streaming parser."""

    def __init__(self, reader: RangeReader, ctx: ScanContext, chunk: int) -> None:
        self.reader, self.ctx, self.pos, self.chunk = reader, ctx, 0, chunk

    def read(self, n: int = -1) -> bytes:
        self.ctx.check_deadline()
        n = self.chunk if n is None or n < 0 else min(n, self.chunk)
        data = self.reader.read(self.pos, min(n, self.reader.size - self.pos))
        self.pos += len(data)
        return data


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


#: Elements between deadline checks (a power of two less one: a mask).
DEADLINE_EVERY = 0xFFF
#: The local name of PMML's free-form element, the only one whose content is judged.
EXTENSION = "Extension"


class _LimitReached(Exception):
    """A parser bound was met: the walk stops, the rest of the document is not analysed."""

    def __init__(self, what: str, depth: int, count: int) -> None:
        super().__init__(what)
        self.what, self.depth, self.count = what, depth, count


_WALKER: type | None = None


def _walker_class() -> type:
    """defusedxml's DefusedXMLParser with lean element callbacks, built on first use (a missing
    defusedxml is reported by the caller, not at import).

    Why: the stock callbacks build an Element for every start tag and resolve every attribute
    name, and iterparse queues two events per element; on a large PMML file (millions of
    coefficients) that Python work, not expat, was the whole cost (about 10 MB/s). Here an
    element outside an Extension costs one depth/count update, character data outside
    Extensions reaches no Python code at all, and the tree is built only for Extensions. The
    DTD, entity and external-reference guards are defusedxml's own handlers on the same expat
    parser, untouched."""
    global _WALKER
    if _WALKER is not None:
        return _WALKER
    from xml.etree.ElementTree import TreeBuilder

    from defusedxml.ElementTree import DefusedXMLParser

    class Walker(DefusedXMLParser):  # type: ignore[misc,valid-type]
        def __init__(self, ctx: ScanContext, on_root: Any, on_extension: Any) -> None:
            super().__init__(target=TreeBuilder(), forbid_dtd=False, forbid_entities=True, forbid_external=True)
            self.ctx, self.on_root, self.on_extension = ctx, on_root, on_extension
            self.max_depth, self.max_count = ctx.limits.max_pmml_depth, ctx.limits.max_pmml_elements
            self.depth = self.count = self.building = 0
            self._text_off()

        def _text_off(self) -> None:
            """Outside Extensions character data is dropped inside expat (no handler at all)."""
            self.parser.CharacterDataHandler = None
            self.parser.DefaultHandlerExpand = None

        def _start(self, tag: str, attr_list: list[str]) -> None:
            self.depth += 1
            self.count += 1
            if not self.count & DEADLINE_EVERY:
                self.ctx.check_deadline()
            if self.depth > self.max_depth or self.count > self.max_count:
                what = (f"nesting deeper than {self.max_depth}" if self.depth > self.max_depth
                        else f"more than {self.max_count} elements")
                raise _LimitReached(what, self.depth, self.count)
            if self.count == 1:
                attrib = dict(zip(attr_list[::2], attr_list[1::2], strict=True))
                self.on_root(attrib, _local(tag))
            if self.building or (tag.endswith(EXTENSION) and _local(tag) == EXTENSION):
                if not self.building:
                    self.target = TreeBuilder()
                    self.parser.CharacterDataHandler = self.target.data
                self.building += 1
                super()._start(tag, attr_list)

        def _end(self, tag: str) -> None:
            self.depth -= 1
            if self.building:
                self.building -= 1
                elem = super()._end(tag)
                if not self.building:
                    self._text_off()
                    self.on_extension(elem)

    _WALKER = Walker
    return Walker


class PmmlScanner(Scanner):
    id = "pmml"
    description = "PMML: XML entity abuse (XXE, billion laughs), external references, script in Extensions"

    def scan(self, unit: Unit, reader: RangeReader, ctx: ScanContext) -> UnitResult:
        view = unit_view(unit, reader)
        report = CappedFindings(self.id, MAX_REPORTED)
        result = UnitResult()
        try:
            self._scan(view, ctx, report)
        except ScanTimeout:
            result.error = "timed out"
        report.summarise()
        result.findings = rebase(report.findings, unit.start)
        return result

    def _scan(self, reader: RangeReader, ctx: ScanContext, report: CappedFindings) -> None:
        limits = ctx.limits
        size = reader.size
        if size > limits.max_pmml_bytes:
            report.add("FMT005", f"PMML document of {size} bytes exceeds the {limits.max_pmml_bytes}-byte "
                                 "limit: not parsed", offset=0, size=size, limit=limits.max_pmml_bytes)
            return
        head = reader.read(0, min(size, limits.max_pmml_prolog))
        dtd = self._doctype(head, report)
        try:
            import defusedxml.ElementTree  # noqa: F401 -- a missing dependency is not a malformed file
        except ImportError:
            report.add("FMT005", "PMML not parsed: the defusedxml package is not installed", offset=0)
            self._pattern_scan(reader, ctx, report)
            return
        try:
            self._parse(reader, ctx, report)
        except ScanTimeout:
            raise
        except Exception as exc:  # defusedxml refusals and expat errors: reported, never raised
            name = type(exc).__name__
            if name in ("EntitiesForbidden", "ExternalReferenceForbidden", "DTDForbidden", "NotSupportedError"):
                if not dtd:
                    report.add("PMM002", f"the XML parser refused a declaration ({name}): "
                                         f"{shown(str(exc))}", offset=0)
                self._pattern_scan(reader, ctx, report)
            else:
                line = getattr(exc, "position", None)
                report.add("PMM003", f"PMML is not well-formed XML: {shown(str(exc))}", offset=None,
                           position=str(line) if line else None)
                self._pattern_scan(reader, ctx, report)

    @staticmethod
    def _doctype(head: bytes, report: CappedFindings) -> bool:
        """PMM001/PMM002 from the prolog; True when a DOCTYPE was reported."""
        m = DOCTYPE.search(head)
        if m is None:
            return False
        entities = list(ENTITY.finditer(head))
        external = [e for e in entities if e.group("kind")]
        if m.group("ext"):
            report.add("PMM001", "DOCTYPE names an external DTD "
                                 f"({shown(m.group('ext').decode('utf-8', 'replace').strip())}): a resolving "
                                 "parser fetches it (SSRF, XXE)", offset=m.start())
        for e in external:
            kind = "parameter entity" if e.group("param") else "entity"
            report.add("PMM001", f"DOCTYPE declares external {kind} "
                                 f"{shown(e.group('name').decode('utf-8', 'replace'))!r} ({e.group('kind').decode()}): "
                                 "a resolving parser reads local files or fetches URLs (XXE)",
                       offset=e.start(), entity=shown(e.group("name").decode("utf-8", "replace")))
        internal = len(entities) - len(external)
        if internal:
            report.add("PMM002", f"DOCTYPE declares {internal} internal entit{'y' if internal == 1 else 'ies'}: "
                                 "entity expansion (billion laughs) exhausts a parser's memory; PMML needs none",
                       offset=m.start(), count=internal)
        elif not external and not m.group("ext"):
            report.add("PMM002", "document carries a DOCTYPE; PMML needs none", offset=m.start())
        return True

    def _parse(self, reader: RangeReader, ctx: ScanContext, report: CappedFindings) -> None:
        """Stream the document through defusedxml's parser: elements are counted, only the root
        and the Extensions (the one free-form element) are looked at."""
        source = _ReaderFile(reader, ctx, ctx.limits.stream_chunk)
        walker = _walker_class()(ctx, lambda attrib, name: self._root(attrib, name, report),
                                 lambda elem: self._extension(elem, ctx, report))
        try:
            while data := source.read(ctx.limits.stream_chunk):
                walker.feed(data)
            walker.close()
        except _LimitReached as stop:
            report.add("PMM007", f"PMML document has {stop.what}: the rest was not analysed",
                       depth=stop.depth, elements=stop.count)

    @staticmethod
    def _root(attrib: dict[str, str], name: str, report: CappedFindings) -> None:
        for key, value in attrib.items():
            if _local(key) == "schemaLocation" or _local(key) == "noNamespaceSchemaLocation":
                for url in URL.findall(value):
                    report.add("PMM004", f"root element names a schema at {shown(url)}: a validating "
                                         "engine may fetch it", url=shown(url))
        if name != "PMML":
            report.add("PMM003", f"root element is <{shown(name, 40)}>, not <PMML>", element=shown(name, 40))

    def _extension(self, elem: Any, ctx: ScanContext, report: CappedFindings) -> None:
        limit = ctx.limits.max_pmml_extension_chars
        attrs = " ".join(f"{_local(k)}={v}" for k, v in elem.attrib.items())
        parts: list[str] = []
        total = 0
        for sub in elem.iter():
            for text in (" ".join(f"{_local(k)}={v}" for k, v in sub.attrib.items()) if sub is not elem else "",
                         sub.text or "", sub.tail if sub is not elem else ""):
                if text and total < limit:
                    parts.append(text[: limit - total])
                    total += len(parts[-1])
        label = shown(elem.attrib.get("name") or elem.attrib.get("extender") or "", 60)
        self._judge(f"<Extension {label!r}>" if label else "<Extension>", attrs, " ".join(parts), report)

    def _judge(self, where: str, attrs: str, text: str, report: CappedFindings, offset: int | None = None) -> None:
        whole = f"{attrs}\n{text}"
        code = [(label, m) for label, p in CODE_PATTERNS if (m := p.search(whole))]
        if code:
            labels = ", ".join(sorted({label for label, _ in code}))
            m = code[0][1]
            report.add("PMM005", f"{where} holds code ({labels}): "
                                 f"{shown(whole[max(0, m.start() - 30): m.end() + 30])!r}",
                       offset=offset, patterns=labels)
        elif SCRIPT_NAME.search(attrs) or SCRIPT_LINE.search(text):
            report.add("PMM006", f"{where} declares or carries a script ({shown(attrs or text[:60], 80)!r}): "
                                 "engines that run Extension scripts would execute it", offset=offset)
        for url in URL.findall(whole)[:MAX_REPORTED]:
            report.add("PMM004", f"{where} references {shown(url)}", offset=offset, url=shown(url))
        for secret in indicators.find_secrets(whole)[:4]:
            report.add(SECRET_RULE, indicators.secret_message(where, secret), offset=offset, kind=secret.kind,
                       length=secret.length)

    def _pattern_scan(self, reader: RangeReader, ctx: ScanContext, report: CappedFindings) -> None:
        """The Extensions found by pattern when the XML could not be parsed."""
        limit = ctx.limits.max_pmml_bytes
        data = reader.read(0, min(reader.size, limit))
        for m in EXTENSION_TEXT.finditer(data):
            ctx.check_deadline()
            chunk = m.group(0)[: ctx.limits.max_pmml_extension_chars].decode("utf-8", "replace")
            attrs = chunk.split(">", 1)[0]
            self._judge("<Extension> (found by pattern: the XML did not parse)", attrs, chunk, report,
                        offset=m.start())
