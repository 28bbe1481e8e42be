"""TorchScript source in `torch.jit.save` archives: the `<prefix>/code/**.py` members.

torch.jit.load compiles these members (TorchScript is Python syntax); nothing here compiles,
imports or runs them: each member is read (at most `MAX_SOURCE` bytes), parsed with `ast.parse`
and walked, or, when it does not parse, scanned for dotted names with a regular expression.

What TorchScript can reach is decided by the JIT's builtin set, not Python's:

* `torch.<op>` / `torch.ops.aten.<op>` and `ops.prim.<op>` are the ATen and interpreter builtins
  every model uses. Among them a few touch the file system: `aten::save` (`torch.save(obj,
  filename)`, registered for TorchScript, writes a pickle to a path) and `aten::from_file`
  (`torch.from_file(filename, shared=True)` maps a file and, shared, writes back to it).
  TRC106 (WARNING).
* `ops.<ns>.<op>` / `torch.ops.<ns>.<op>` and `__torch__.torch.classes.<ns>.<Class>` outside the
  namespaces PyTorch, torchvision and torchaudio register are custom operators and classes: the
  archive loads only once a native library providing them has been loaded, and that library's
  code runs with the model. TRC104 (WARNING).
* Python callables (os.system, subprocess, exec, eval, __import__, open, pickle.loads...) are not
  TorchScript builtins: the JIT refuses to compile them, and torch.jit.save never writes them.
  Their presence means a crafted archive aimed at a loader that runs code/ as Python (or at a
  compiler bug). Process, code, native-library, install and network capabilities are TRC105
  (CRITICAL); file writes, `open()` and deserialisers are TRC106 (WARNING). The capability table
  is pysource's (`CALLS`), so the two analyses agree on what a Python name does.
* String constants: shell commands and network code (indicators.find_network_code, plus a few
  shell idioms) are TRC107 WARNING; plain URLs are TRC107 INFO, since assertion messages quote
  documentation links.

TRC108 (INFO) says a member was not fully analysed: larger than MAX_SOURCE (its head is
token-scanned), not UTF-8 or not valid syntax (token scan of the text decoded with replacement).
"""

from __future__ import annotations

import ast
import re

from shardscan.model import Finding, Severity
from shardscan.scanners.base import ScanContext, finding
from shardscan.scanners.indicators import find_network_code, find_urls, mask
from shardscan.scanners.pysource import (
    BUILTIN_NAMES,
    CALLS,
    CODE,
    DESERIALISE,
    INSTALL,
    NATIVE,
    NETWORK,
    OPENERS,
    OS_PREFIXES,
    PROCESS,
    WRITE,
)
from shardscan.storage.reader import RangeReader

#: Bytes of one code member analysed at most; real members are kilobytes, scripted LLMs a few MiB.
MAX_SOURCE = 8 * 1024 * 1024
#: Findings per member per rule at most: a hostile member cannot make the report explode.
MAX_FINDINGS_PER_RULE = 50

#: Operator namespaces registered by PyTorch itself, torchvision and torchaudio.
KNOWN_OP_NAMESPACES = frozenset({
    "aten", "prim", "quantized", "_quantized", "quantized_decomposed", "_caffe2", "profiler",
    "prepacked", "_nnapi", "xnnpack", "mkldnn", "mkldnn_prepacked", "onednn", "_c10d_functional",
    "c10d_functional", "_c10d_functional_autograd", "c10d", "rngprims", "higher_order", "inductor",
    "torchvision", "image", "torchaudio", "torchaudio_sox", "torchaudio_ffmpeg",
})
#: Custom-class namespaces (torch.classes.<ns>.<Class>) registered by PyTorch itself.
KNOWN_CLASS_NAMESPACES = frozenset({
    "quantized", "xnnpack", "_nnapi", "mkldnn", "onednn", "dist_c10d", "c10d", "profiling", "_TorchScriptTesting",
    "torchvision", "torchaudio",
})
#: TorchScript builtins and Python callables that read or write files (TRC106).
FILE_CALLS = frozenset({
    "torch.save", "torch.from_file", "torch.load", "torch.jit.save", "torch.jit.load",
    "torch.ops.aten.save", "torch.ops.aten.from_file", "torch.serialization.save",
    "torch.serialization.load", "torch.storage.UntypedStorage.from_file",
    "torch.UntypedStorage.from_file", *OPENERS,
})
#: Python capabilities that make TRC105 (CRITICAL); the rest of pysource's table makes TRC106.
CRITICAL_CAPABILITIES = frozenset({PROCESS, CODE, NATIVE, INSTALL, NETWORK})
#: Names that reach any module or attribute by computed name: foreign to TorchScript.
DYNAMIC = frozenset({"builtins.__import__", "builtins.globals", "builtins.vars", "builtins.locals",
                     "builtins.compile", "builtins.exec", "builtins.eval", "builtins.breakpoint"})
DYNAMIC_PREFIXES = ("importlib.", "subprocess.", "pty.", "ctypes.", "runpy.", "socket.")
SHELL = re.compile(r"/bin/(?:ba|z|da|k)?sh\b|\b(?:ba)?sh\s+-c\b|\bpowershell(?:\.exe)?\s|\bcmd(?:\.exe)?\s+/c\b"
                   r"|\brm\s+-rf?\s|\bchmod\s+\+?[0-7x]+\s|\bnohup\s|\bcrontab\s", re.IGNORECASE)
DOTTED = re.compile(r"\b[A-Za-z_]\w*(?:\s*\.\s*[A-Za-z_]\w*)*")


def is_code_member(name: str) -> bool:
    """`<prefix>/code/...py`, the TorchScript source a layout's is_torchscript() calls code."""
    parts = name.split("/")
    return len(parts) >= 3 and parts[1] == "code" and name.endswith(".py")


def is_extra_member(name: str) -> bool:
    """`<prefix>/extra/<file>`: torch.jit extra files, opaque to torch, so scanned by content."""
    parts = name.split("/")
    return len(parts) >= 3 and parts[1] == "extra" and bool(parts[-1])


def classify(dotted: str) -> tuple[str, str, str] | None:
    """(rule, capability, shown name) for a dotted name as written in TorchScript source."""
    if dotted.startswith("__torch__."):
        dotted = dotted[len("__torch__."):]
    if dotted.startswith("ops."):
        dotted = "torch." + dotted
    parts = dotted.split(".")
    if len(parts) >= 4 and parts[:2] == ["torch", "ops"] and parts[2] not in KNOWN_OP_NAMESPACES:
        return "TRC104", "custom-op", f"{parts[2]}::{parts[3]}"
    if len(parts) >= 4 and parts[:2] == ["torch", "classes"] and parts[2] not in KNOWN_CLASS_NAMESPACES:
        return "TRC104", "custom-class", f"torch.classes.{parts[2]}.{parts[3]}"
    if dotted.startswith("torch.") and dotted.endswith(".load_library"):
        return "TRC105", NATIVE, dotted
    if len(parts) == 1 and dotted in BUILTIN_NAMES:
        dotted = f"builtins.{dotted}"
    if dotted in FILE_CALLS:
        return "TRC106", WRITE, dotted
    capability = CALLS.get(dotted)
    if capability is None and dotted.startswith(OS_PREFIXES):
        capability = PROCESS
    if capability is None and (dotted in DYNAMIC or dotted.startswith(DYNAMIC_PREFIXES)):
        capability = CODE
    if capability in CRITICAL_CAPABILITIES:
        return "TRC105", capability, dotted
    if capability in (WRITE, DESERIALISE):
        return "TRC106", capability, dotted
    return None


def _dotted(node: ast.AST, depth: int = 0) -> str | None:
    """`a.b.c` for a Name/Attribute chain; `__import__("os").x` and `getattr(m, "x")` followed."""
    if depth > 64:
        return None
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, depth + 1)
        return f"{base}.{node.attr}" if base else None
    if isinstance(node, ast.Call) and node.args:
        func = _dotted(node.func, depth + 1)
        first = node.args[0]
        if func in ("__import__", "importlib.import_module") and isinstance(first, ast.Constant) and isinstance(
                first.value, str):
            return first.value
        if func == "getattr" and len(node.args) >= 2:
            name = node.args[1]
            base = _dotted(first, depth + 1)
            if base and isinstance(name, ast.Constant) and isinstance(name.value, str):
                return f"{base}.{name.value}"
    return None


class _Member:
    def __init__(self, ctx: ScanContext, scanner_id: str, source: bytes) -> None:
        self.ctx, self.scanner_id = ctx, scanner_id
        self.findings: list[Finding] = []
        self.seen: set[tuple[str, int, str]] = set()
        self.counts: dict[str, int] = {}
        starts, pos = [0], source.find(b"\n")
        while pos >= 0:
            starts.append(pos + 1)
            pos = source.find(b"\n", pos + 1)
        self.line_starts = starts

    def offset_of(self, line: int, col: int) -> int | None:
        return self.line_starts[line - 1] + col if 0 < line <= len(self.line_starts) else None

    def line_of(self, pos: int) -> int:
        lo, hi = 0, len(self.line_starts)
        while lo + 1 < hi:
            mid = (lo + hi) // 2
            if self.line_starts[mid] <= pos:
                lo = mid
            else:
                hi = mid
        return lo + 1

    def report(self, rule_id: str, line: int, key: str, message: str, offset: int | None,
               severity: Severity | None = None, **evidence: object) -> None:
        if (rule_id, line, key) in self.seen:
            return
        self.seen.add((rule_id, line, key))
        self.counts[rule_id] = self.counts.get(rule_id, 0) + 1
        if self.counts[rule_id] > MAX_FINDINGS_PER_RULE:
            return
        self.findings.append(finding(rule_id, self.scanner_id, f"line {line}: {message}", offset=offset,
                                     severity=severity, line=line, **evidence))

    def name(self, dotted: str, line: int, offset: int | None) -> None:
        hit = classify(dotted)
        if hit is None:
            return
        rule_id, capability, shown = hit
        if capability == "custom-op":
            what = f"calls custom operator {shown}, which needs a native library"
        elif capability == "custom-class":
            what = f"uses custom class {shown}, which needs a native library"
        elif rule_id == "TRC106" and shown.startswith("torch."):
            what = f"calls {shown}, a TorchScript builtin that touches files"
        else:
            what = f"names {shown} ({capability}), not a TorchScript builtin: torch.jit.save never writes it"
        self.report(rule_id, line, shown, f"TorchScript code {what}", offset, callable=shown,
                    capability=capability)

    def text(self, value: str, line: int, offset: int | None) -> None:
        for ind in find_network_code(value):
            self.report("TRC107", line, ind.text, f"string holds {ind.kind}: {ind.text[:120]!r}", offset,
                        indicator=ind.kind)
        for m in SHELL.finditer(value):
            shown = mask(value[max(0, m.start() - 40):m.end() + 80])
            self.report("TRC107", line, m.group(0), f"string holds a shell command: {shown[:160]!r}", offset,
                        indicator="shell")
        for ind in find_urls(value):
            self.report("TRC107", line, ind.text, f"string holds a URL: {ind.text[:160]!r}", offset,
                        severity=Severity.INFO, indicator=ind.kind)

    def walk(self, tree: ast.AST) -> None:
        limit = self.ctx.limits.max_ast_nodes
        for count, node in enumerate(ast.walk(tree), 1):
            if count > limit:
                self.findings.append(finding("TRC108", self.scanner_id, f"TorchScript code has more than {limit} "
                                             "syntax nodes; the rest was not analysed", offset=0))
                return
            if count % 50_000 == 0:
                self.ctx.check_deadline()
            line, col = getattr(node, "lineno", 0), getattr(node, "col_offset", 0)
            if isinstance(node, (ast.Name, ast.Attribute, ast.Call)):
                dotted = _dotted(node)
                if dotted:
                    self.name(dotted, line, self.offset_of(line, col))
            elif isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
                value = node.value if isinstance(node.value, str) else node.value.decode("latin-1")
                self.text(value, line, self.offset_of(line, col))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for module in modules:
                    if module.split(".")[0] not in ("torch", "__torch__", "typing", "builtins", "math"):
                        self.report("TRC105", line, module, f"TorchScript code imports {module!r}, which "
                                    "TorchScript does not compile", self.offset_of(line, col),
                                    callable=module, capability=CODE)

    def tokens(self, text: str) -> None:
        """Fallback for a member that does not parse: dotted names and the whole text's strings."""
        for count, m in enumerate(DOTTED.finditer(text), 1):
            if count % 50_000 == 0:
                self.ctx.check_deadline()
            dotted = re.sub(r"\s+", "", m.group(0))
            if "." in dotted or dotted in BUILTIN_NAMES:
                if dotted in BUILTIN_NAMES and not re.match(r"\s*\(", text[m.end():m.end() + 8]):
                    continue  # a bare builtin name counts only when called: `eval(`, `open(`
                self.name(dotted, self.line_of(m.start()), None)
        self.text(text, 0, None)


def analyse_torchscript(data: RangeReader, ctx: ScanContext, scanner_id: str) -> list[Finding]:
    """Findings for one `code/**.py` member; offsets are relative to the member's content."""
    size = data.size
    source = data.read(0, min(size, MAX_SOURCE))
    member = _Member(ctx, scanner_id, source)
    notes: list[Finding] = []
    if size > MAX_SOURCE:
        notes.append(finding("TRC108", scanner_id, f"TorchScript code member is {size} bytes; only the first "
                             f"{MAX_SOURCE} were token-scanned", offset=0, size=size, limit=MAX_SOURCE))
        member.tokens(source.decode("utf-8", "replace"))
        return notes + member.findings
    try:
        source.decode("utf-8")
    except UnicodeDecodeError as exc:
        notes.append(finding("TRC108", scanner_id, f"TorchScript code is not UTF-8 (byte {exc.start}); "
                             "token-scanned instead of parsed", offset=exc.start))
        member.tokens(source.decode("utf-8", "replace"))
        return notes + member.findings
    try:
        tree = ast.parse(source, type_comments=False)
    except SyntaxError as exc:
        notes.append(finding("TRC108", scanner_id, f"TorchScript code does not parse: {exc.msg} (line "
                             f"{exc.lineno}); token-scanned instead", offset=0, line=exc.lineno))
        member.tokens(source.decode("utf-8", "replace"))
        return notes + member.findings
    except (ValueError, RecursionError, MemoryError, OverflowError) as exc:
        notes.append(finding("TRC108", scanner_id, f"TorchScript code is too deeply nested to parse "
                             f"({type(exc).__name__}); token-scanned instead", offset=0))
        member.tokens(source.decode("utf-8", "replace"))
        return notes + member.findings
    try:
        member.walk(tree)
    except RecursionError:
        notes.append(finding("TRC108", scanner_id, "TorchScript code nests too deeply to analyse; "
                             "token-scanned instead", offset=0))
        member.tokens(source.decode("utf-8", "replace"))
    return notes + member.findings
