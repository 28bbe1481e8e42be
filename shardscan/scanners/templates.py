"""Static analysis of Jinja chat templates (server-side template injection, CVE-2024-34359).

llama-cpp-python < 0.2.72 rendered `tokenizer.chat_template` from a GGUF in a plain
`jinja2.Environment`, so a template that walks from any object to `__globals__` or
`__subclasses__()` ran commands on the host. Hugging Face `tokenizer_config.json`
(`chat_template`) and standalone `chat_template.jinja` files carry the same templates.

The template is never rendered and jinja2 is never imported: the text is split into data,
`{{ }}` expressions, `{% %}` statements and `{# #}` comments here, the tokens inside tags are
lexed as Jinja lexes them (string escapes decoded the way Jinja decodes them), constant string
expressions are folded (`+`, `~`, `|join`, `|format`, `|reverse`, `|replace`, `[::-1]`...), and
every name the template uses as an attribute, a subscript key, an `|attr()` argument or a call
is judged:

* TPL101 (critical): a walk through Python internals: `__globals__`, `__builtins__`,
  `__subclasses__`, `__mro__`, `__base__`, `__import__`...
* TPL102 (critical): a module or call that runs commands or code (`os`, `subprocess`, `popen`,
  `system`, `eval`, `exec`, `__import__(`, `import_module`).
* TPL103 (warning): lesser constructs no chat template needs: other dunders, private `_attrs`,
  Flask-style `request`/`config`/`self` objects, `{% include %}`/`{% import %}`.
* TPL105 (warning): names hidden from plain reading: escapes spelling `_`, names assembled from
  pieces, `|attr()` with a computed argument.
* TPL104 (warning): a template that does not tokenise or exceeds the size bound; the part that
  could be read is still analysed.

Real templates (Llama 2/3, ChatML/Qwen, Mistral, Gemma, Phi-3, DeepSeek, tool-calling ones with
`raise_exception`) use none of these, so they give no finding.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field

from shardscan.limits import DEFAULT_LIMITS, Limits
from shardscan.model import Finding
from shardscan.scanners.base import finding

#: Dunders whose reach is the interpreter itself: globals, builtins, the class hierarchy that
#: leads to every loaded class, code objects and the import machinery.
CRITICAL_DUNDERS = frozenset({
    "__globals__", "__builtins__", "__subclasses__", "__mro__", "__base__", "__bases__",
    "__import__", "__code__", "__func__", "__self__", "__loader__", "__spec__", "__closure__",
    "__getattribute__", "__reduce__", "__reduce_ex__", "__subclasshook__", "__dict__",
    "__module__", "__file__", "__kwdefaults__", "__defaults__",
})
#: Modules that, reached from a template, mean commands or code (`globals.os.popen`).
DANGEROUS_MODULES = frozenset({
    "os", "subprocess", "sys", "builtins", "importlib", "posix", "nt", "pty", "socket",
    "shutil", "ctypes", "popen2", "runpy", "pickle", "marshal",
})
#: Callables that run commands or code when a template calls them.
DANGEROUS_CALLS = frozenset({
    "popen", "system", "popen2", "popen3", "popen4", "Popen", "call", "check_call",
    "check_output", "getoutput", "getstatusoutput", "run", "spawnl", "spawnle", "spawnlp",
    "spawnv", "spawnve", "spawnvp", "posix_spawn", "posix_spawnp", "execl", "execle", "execlp",
    "execv", "execve", "execvp", "execvpe", "startfile", "eval", "exec", "execfile", "compile",
    "__import__", "import_module", "load_module", "reload", "getattr", "setattr", "delattr",
    "open", "fork", "kill", "remove", "unlink", "rmtree", "loads", "load",
})
#: Calls that are plainly harmless as a method on data and common in real templates, so only
#: the dangerous set above minus these counts when the callee is a bare attribute.
BENIGN_METHODS = frozenset({"call", "run", "load", "loads", "remove", "open", "compile"})
#: Objects of web frameworks (Flask, Django) that SSTI payloads start from; a chat template has
#: no use for them.
CONTEXT_OBJECTS = frozenset({"request", "config", "self", "session", "url_for", "get_flashed_messages"})
#: Jinja globals whose functions are the classic way in to `__globals__`.
JINJA_GLOBALS = frozenset({"lipsum", "cycler", "joiner", "namespace", "range", "dict"})
#: Statements that pull other templates from the loader.
LOADER_STATEMENTS = frozenset({"include", "import", "from", "extends"})
#: Longest string a folded expression may build before folding gives up on it.
MAX_FOLDED = 4096
#: Folds per tag: real templates need a handful.
MAX_FOLDS = 4096
#: Syntax errors recovered from per template (each costs a scan to the next error).
MAX_RECOVERIES = 16
#: Findings of one rule about one template beyond which only a count is kept.
MAX_FINDINGS_PER_RULE = 10

_DUNDER = re.compile(r"__[A-Za-z0-9_]+__")
_WHOLE_DUNDER = re.compile(r"__[A-Za-z][A-Za-z0-9_]*__")
_STRING = re.compile(r"'([^'\\]*(?:\\.[^'\\]*)*)'|\"([^\"\\]*(?:\\.[^\"\\]*)*)\"", re.S)
_NAME = re.compile(r"[^\W\d]\w*")
_NUMBER = re.compile(r"(?:0[bB][01_]+|0[oO][0-7_]+|0[xX][0-9a-fA-F_]+|\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?)")
_OPERATOR = re.compile(r"//|\*\*|==|!=|<=|>=|[-+*/%~|.,:;=<>()\[\]{}]")
_SPACE = re.compile(r"\s+")
_TAG_START = re.compile(r"\{[{%#]")
_RAW = re.compile(r"\{%[-+]?\s*raw\s*[-+]?%\}.*?\{%[-+]?\s*endraw\s*[-+]?%\}", re.S)
_FORMAT_SPEC = re.compile(r"%([sdrc%])")


class TemplateSyntaxError(ValueError):
    def __init__(self, reason: str, position: int) -> None:
        super().__init__(f"{reason} (at character {position})")
        self.reason = reason
        self.position = position
        #: Set by `tokenise`: the tags before the broken one, and where the broken one starts.
        self.tags: list[Tag] = []
        self.tag_start = position


@dataclass(slots=True)
class Token:
    kind: str               # "name", "string", "number", "op"
    value: object           # str for names, strings (decoded) and ops; int/float for numbers
    position: int           # character index in the template
    escaped: bool = False   # a string literal that used backslash escapes
    folded: bool = False    # a string built from pieces by the folder


@dataclass(slots=True)
class Tag:
    kind: str               # "{{" or "{%"
    tokens: list[Token]
    position: int


# --- lexing ----------------------------------------------------------------------------------------


def _decode_string(raw: str, position: int) -> str:
    # Jinja decodes a string literal exactly so (lexer.py: backslashreplace + unicode-escape).
    try:
        return raw.encode("ascii", "backslashreplace").decode("unicode-escape")
    except UnicodeDecodeError as exc:
        raise TemplateSyntaxError(f"invalid escape in string literal: {exc.reason}", position) from exc


def _lex_tag(text: str, pos: int, kind: str) -> tuple[Tag, int]:
    """Tokens of the tag opened at `pos` (just after `{{` or `{%`), and where the tag ends."""
    end_marker = "}}" if kind == "{{" else "%}"
    start = pos
    if pos < len(text) and text[pos] in "-+":
        pos += 1
    tokens: list[Token] = []
    balance: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    n = len(text)
    while pos < n:
        m = _SPACE.match(text, pos)
        if m:
            pos = m.end()
            continue
        if not balance:
            if text.startswith(end_marker, pos):
                return Tag(kind, tokens, start - 2), pos + 2
            if text[pos] in "-+" and text.startswith(end_marker, pos + 1):
                return Tag(kind, tokens, start - 2), pos + 3
        m = _STRING.match(text, pos)
        if m:
            raw = m.group(1) if m.group(1) is not None else m.group(2)
            tokens.append(Token("string", _decode_string(raw, pos), pos, escaped="\\" in raw))
            pos = m.end()
            continue
        if text[pos] in "'\"":
            raise TemplateSyntaxError("unterminated string literal", pos)
        m = _NAME.match(text, pos)
        if m:
            tokens.append(Token("name", m.group(), pos))
            pos = m.end()
            continue
        m = _NUMBER.match(text, pos)
        if m:
            literal = m.group().replace("_", "")
            value: object
            try:
                value = int(literal, 0)
            except ValueError:
                try:
                    value = float(literal)
                except ValueError:
                    value = 0
            tokens.append(Token("number", value, pos))
            pos = m.end()
            continue
        m = _OPERATOR.match(text, pos)
        if m:
            op = m.group()
            if op in "([{":
                balance.append(op)
            elif op in ")]}" and (not balance or balance.pop() != pairs[op]):
                raise TemplateSyntaxError(f"unbalanced {op!r}", pos)
            tokens.append(Token("op", op, pos))
            pos = m.end()
            continue
        raise TemplateSyntaxError(f"unexpected character {text[pos]!r}", pos)
    raise TemplateSyntaxError(f"{kind} tag is never closed", start - 2)


def tokenise(text: str, start: int = 0) -> list[Tag]:
    """The `{{ }}` and `{% %}` tags of a template from `start`, comments and raw blocks skipped."""
    tags: list[Tag] = []
    pos = start
    n = len(text)
    while pos < n:
        m = _TAG_START.search(text, pos)
        if not m:
            break
        opener = m.group()
        try:
            if opener == "{#":
                close = text.find("#}", m.end())
                if close < 0:
                    raise TemplateSyntaxError("comment is never closed", m.start())
                pos = close + 2
                continue
            if opener == "{%":
                raw = _RAW.match(text, m.start())
                if raw:
                    pos = raw.end()
                    continue
            tag, pos = _lex_tag(text, m.end(), opener)
        except TemplateSyntaxError as exc:
            exc.tags, exc.tag_start = tags, m.start()
            raise
        tags.append(tag)
    return tags


# --- constant folding ------------------------------------------------------------------------------


#: Operators that bind tighter than `+` and `~`: an operand next to one is not yet a constant
#: (the first six are binary, the rest bind only to what precedes them).
_TIGHTER = (".", "*", "/", "%", "//", "**", "|", "[", "(")


def _is_op(tok: Token | None, *ops: str) -> bool:
    return tok is not None and tok.kind == "op" and tok.value in ops


def _is_str(tok: Token | None) -> bool:
    return tok is not None and tok.kind == "string"


def _is_const(tok: Token | None) -> bool:
    return tok is not None and tok.kind in ("string", "number")


def _percent_format(fmt_text: str, args: list[object]) -> str | None:
    """`'%s%c'|format(...)` and `'%s' % (...)` with plain %s/%c/%d/%r only (no widths)."""
    if _FORMAT_SPEC.sub("", fmt_text).count("%"):
        return None
    out: list[str] = []
    it = iter(args)
    last = 0
    for m in _FORMAT_SPEC.finditer(fmt_text):
        out.append(fmt_text[last:m.start()])
        last = m.end()
        spec = m.group(1)
        if spec == "%":
            out.append("%")
            continue
        arg = next(it, None)
        if arg is None:
            return None
        if spec == "c":
            if isinstance(arg, int) and 0 <= arg < 0x110000:
                out.append(chr(arg))
            elif isinstance(arg, str) and len(arg) == 1:
                out.append(arg)
            else:
                return None
        else:
            out.append(str(arg))
    out.append(fmt_text[last:])
    return "".join(out)


def _brace_format(fmt_text: str, args: list[object]) -> str | None:
    """`'{}{}'.format(...)`: positional fields only."""
    counter = iter(range(len(args) + 1))

    def field_value(m: re.Match[str]) -> str:
        index = m.group(1)
        i = int(index) if index else next(counter)
        if i >= len(args):
            raise IndexError
        return str(args[i])

    try:
        return re.sub(r"\{(\d*)\}", field_value, fmt_text)
    except (IndexError, ValueError):
        return None


def _call_args(tokens: list[Token], open_index: int) -> tuple[list[object], int] | None:
    """Constant positional arguments of the call whose `(` is at `open_index`, and the index
    after `)`; None unless every argument is a single constant token."""
    args: list[object] = []
    i = open_index + 1
    if _is_op(tokens[i] if i < len(tokens) else None, ")"):
        return args, i + 1
    while i < len(tokens):
        tok = tokens[i]
        if tok.kind == "op" and tok.value == "-" and i + 1 < len(tokens) and tokens[i + 1].kind == "number":
            value = tokens[i + 1].value
            args.append(-value if isinstance(value, (int, float)) else value)
            i += 2
        elif _is_const(tok):
            args.append(tok.value)
            i += 1
        else:
            return None
        nxt = tokens[i] if i < len(tokens) else None
        if _is_op(nxt, ")"):
            return args, i + 1
        if not _is_op(nxt, ","):
            return None
        i += 1
    return None


def _folded(value: str, position: int) -> Token | None:
    return Token("string", value, position, folded=True) if len(value) <= MAX_FOLDED else None


def _fold_at(tokens: list[Token], i: int) -> bool:
    """Apply the first folding rule that matches at `i`; True if the token list changed."""
    n = len(tokens)
    tok = tokens[i]
    nxt = tokens[i + 1] if i + 1 < n else None
    prev = tokens[i - 1] if i > 0 else None
    # 'a' 'b' (implicit concatenation), 'a' + 'b', 'a' ~ 'b'
    if _is_str(tok) and _is_str(nxt):
        new = _folded(str(tok.value) + str(nxt.value), tok.position)
        if new:
            tokens[i:i + 2] = [new]
            return True
    if _is_const(tok) and _is_op(nxt, "+", "~") and i + 2 < n and _is_const(tokens[i + 2]) \
            and not _is_op(prev, *_TIGHTER[:6]) and not _is_op(tokens[i + 3] if i + 3 < n else None, *_TIGHTER) \
            and (_is_str(tok) or _is_str(tokens[i + 2]) or nxt.value == "~"):
        new = _folded(str(tok.value) + str(tokens[i + 2].value), tok.position)
        if new:
            tokens[i:i + 3] = [new]
            return True
    # 'ab' * 2
    if _is_str(tok) and _is_op(nxt, "*") and i + 2 < n and tokens[i + 2].kind == "number" \
            and isinstance(tokens[i + 2].value, int) and tokens[i + 2].value >= 0 \
            and len(str(tok.value)) * tokens[i + 2].value <= MAX_FOLDED:
        tokens[i:i + 3] = [Token("string", str(tok.value) * tokens[i + 2].value, tok.position, folded=True)]
        return True
    # ( 'x' ) as a grouping, not a call
    if _is_op(tok, "(") and _is_const(nxt) and i + 2 < n and _is_op(tokens[i + 2], ")") \
            and not (prev is not None and (prev.kind in ("name", "string") or _is_op(prev, ")", "]"))):
        tokens[i:i + 3] = [nxt]
        return True
    # 'x'[::-1]
    if _is_str(tok) and _is_op(nxt, "[") and [t.value for t in tokens[i + 1:i + 6]] == ["[", ":", ":", "-", 1] \
            and i + 6 < n and _is_op(tokens[i + 6], "]"):
        tokens[i:i + 7] = [Token("string", str(tok.value)[::-1], tok.position, folded=True)]
        return True
    # ['a', 'b', ...] | join   /   ('a', 'b') | join('')
    if _is_op(tok, "[", "(") and not (prev is not None and (prev.kind == "name" or _is_op(prev, ")", "]"))):
        close = "]" if tok.value == "[" else ")"
        items: list[str] = []
        j = i + 1
        while j < n and _is_const(tokens[j]):
            items.append(str(tokens[j].value))
            j += 1
            if not _is_op(tokens[j] if j < n else None, ","):
                break
            j += 1
        if items and _is_op(tokens[j] if j < n else None, close) and j + 2 < n \
                and _is_op(tokens[j + 1], "|") and tokens[j + 2].value == "join":
            sep, after = "", j + 3
            if _is_op(tokens[after] if after < n else None, "("):
                call = _call_args(tokens, after)
                if call is None or len(call[0]) > 1:
                    return False
                sep = str(call[0][0]) if call[0] else ""
                after = call[1]
            new = _folded(sep.join(items), tok.position)
            if new:
                tokens[i:after] = [new]
                return True
    # 'x' | filter  and  'x' | filter(args)
    if _is_str(tok) and _is_op(nxt, "|") and i + 2 < n and tokens[i + 2].kind == "name":
        name = tokens[i + 2].value
        text = str(tok.value)
        after = i + 3
        args: list[object] = []
        if _is_op(tokens[after] if after < n else None, "("):
            call = _call_args(tokens, after)
            if call is None:
                return False
            args, after = call
        result: str | None = None
        if name == "reverse" and not args:
            result = text[::-1]
        elif name in ("lower", "upper", "title", "capitalize", "trim", "string") and not args:
            result = {"lower": text.lower(), "upper": text.upper(), "title": text.title(),
                      "capitalize": text.capitalize(), "trim": text.strip(), "string": text}[name]
        elif name == "format":
            result = _percent_format(text, args)
        elif name == "replace" and len(args) in (2, 3) and all(isinstance(a, str) for a in args[:2]):
            old, new_text = str(args[0]), str(args[1])
            if old and text.count(old) * max(1, len(new_text)) <= MAX_FOLDED:
                result = text.replace(old, new_text)
        elif name == "join" and not args:
            result = text
        if result is not None:
            new = _folded(result, tok.position)
            if new:
                tokens[i:after] = [new]
                return True
    # 'x'.format(...)  and  '%s' % ('a', 'b')  and  '%s' % 'a'
    if _is_str(tok) and _is_op(nxt, ".") and i + 3 < n and tokens[i + 2].value == "format" \
            and _is_op(tokens[i + 3], "("):
        call = _call_args(tokens, i + 3)
        if call is not None:
            result = _brace_format(str(tok.value), call[0])
            new = _folded(result, tok.position) if result is not None else None
            if new:
                tokens[i:call[1]] = [new]
                return True
    if _is_str(tok) and _is_op(nxt, "%") and i + 2 < n:
        if _is_const(tokens[i + 2]) and not _is_op(tokens[i + 3] if i + 3 < n else None, *_TIGHTER):
            args, after = [tokens[i + 2].value], i + 3
        elif _is_op(tokens[i + 2], "("):
            call = _call_args(tokens, i + 2)
            if call is None:
                return False
            args, after = call
        else:
            return False
        result = _percent_format(str(tok.value), args)
        new = _folded(result, tok.position) if result is not None else None
        if new:
            tokens[i:after] = [new]
            return True
    # chr(95) (not a Jinja global, but payloads use it where one is passed in)
    if tok.kind == "name" and tok.value == "chr" and _is_op(nxt, "(") and not _is_op(prev, "."):
        call = _call_args(tokens, i + 1)
        if call and len(call[0]) == 1 and isinstance(call[0][0], int) and 0 <= call[0][0] < 0x110000:
            tokens[i:call[1]] = [Token("string", chr(call[0][0]), tok.position, folded=True)]
            return True
    return False


def fold_constants(tokens: list[Token]) -> list[Token]:
    """The tokens with constant string expressions replaced by their value.

    Every fold removes at least one token and steps back a few, so the walk is linear in the
    tag's length; MAX_FOLDS bounds the list copies a hostile tag can cause.
    """
    out = list(tokens)
    i = folds = 0
    while i < len(out) and folds < MAX_FOLDS:
        if _fold_at(out, i):
            folds += 1
            i = max(0, i - 8)
        else:
            i += 1
    return out


# --- judging ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Judge:
    scanner_id: str
    location: str
    offset: int | None
    source: str
    findings: list[Finding] = field(default_factory=list)
    seen: set[tuple[str, str]] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)

    def note(self, rule_id: str, what: str, detail: str, position: int, **evidence: object) -> None:
        key = (rule_id, what)
        if key in self.seen:
            return
        self.seen.add(key)
        self.counts[rule_id] = self.counts.get(rule_id, 0) + 1
        if self.counts[rule_id] > MAX_FINDINGS_PER_RULE:
            return
        self.findings.append(finding(rule_id, self.scanner_id, f"{self.source}: {detail}",
                                     offset=self.offset, location=self.location,
                                     position=position, **evidence))

    def name_used(self, name: str, tok: Token, how: str, called: bool, hidden: bool) -> None:
        """Judge `name` used as an attribute, key or callee (`how` says which)."""
        position = tok.position
        if hidden and (_DUNDER.search(name) or name in DANGEROUS_MODULES or name in DANGEROUS_CALLS):
            self.note("TPL105", name, f"name {name!r} is assembled or escaped to hide it from reading",
                      position, name=name)
        if name in CRITICAL_DUNDERS:
            self.note("TPL101", name, f"{how} {name!r} walks into Python internals (SSTI)", position, name=name)
        elif _WHOLE_DUNDER.fullmatch(name):
            self.note("TPL103", name, f"{how} {name!r}: a dunder no chat template needs", position, name=name)
        elif name.startswith("_") and how == "attribute":
            self.note("TPL103", name, f"private attribute {name!r}", position, name=name)
        if name in DANGEROUS_MODULES and how != "variable":
            self.note("TPL102", name, f"{how} {name!r} reaches a module that runs commands or code",
                      position, name=name)
        if called and name in DANGEROUS_CALLS and (how == "variable" or name not in BENIGN_METHODS):
            self.note("TPL102", f"{name}()", f"calls {name}(): runs commands or code", position, name=name)


def _judge_tag(tag: Tag, judge: _Judge) -> None:
    tokens = fold_constants(tag.tokens)
    n = len(tokens)
    if tag.kind == "{%" and tokens and tokens[0].kind == "name" and tokens[0].value in LOADER_STATEMENTS:
        judge.note("TPL103", f"{{% {tokens[0].value} %}}",
                   f"{{% {tokens[0].value} %}} loads other templates from the host", tokens[0].position)
    for i, tok in enumerate(tokens):
        prev = tokens[i - 1] if i > 0 else None
        nxt = tokens[i + 1] if i + 1 < n else None
        called = _is_op(nxt, "(")
        if i == 0 and tag.kind == "{%":
            continue  # the statement keyword (`call`, `set`, `for`...), not a name in use
        if tok.kind == "name":
            name = str(tok.value)
            if _is_op(prev, "."):
                judge.name_used(name, tok, "attribute", called, hidden=False)
                continue
            if _is_op(prev, "|") and name == "attr":
                arg = tokens[i + 2] if i + 2 < n and called else None
                if arg is None or not _is_str(arg) or not _is_op(tokens[i + 3] if i + 3 < n else None, ")"):
                    judge.note("TPL105", "attr(?)", "|attr() with a computed name", tok.position)
                continue
            accessed = _is_op(nxt, ".", "[") or (_is_op(nxt, "|") and i + 2 < n and tokens[i + 2].value == "attr")
            if name in CONTEXT_OBJECTS and accessed:
                judge.note("TPL103", name, f"uses the {name!r} object, a classic SSTI starting point",
                           tok.position, name=name)
            if name in DANGEROUS_MODULES and accessed:
                judge.note("TPL102", name, f"module {name!r} used directly", tok.position, name=name)
            if name == "getattr" and called:
                judge.note("TPL105", "getattr()", "getattr() with a computed name", tok.position)
            judge.name_used(name, tok, "variable", called, hidden=False)
        elif tok.kind == "string":
            value = str(tok.value)
            hidden = tok.folded or (tok.escaped and _names_something(value))
            if _is_op(prev, "[") and _is_op(nxt, "]"):
                how = "key"
            elif _is_op(prev, "(") and i >= 3 and tokens[i - 2].value == "attr" and _is_op(tokens[i - 3], "|"):
                how = "attribute"
            elif _WHOLE_DUNDER.fullmatch(value) or (hidden and _names_something(value)):
                how = "name"
            else:
                if hidden and _DUNDER.search(value):
                    judge.note("TPL105", value[:64], f"string {value[:64]!r} is assembled to spell a dunder",
                               tok.position)
                continue
            # the token after `]` or after attr('x')`)`: a `(` there calls what was reached
            judge.name_used(value, tok, how, _is_op(tokens[i + 2] if i + 2 < n else None, "("), hidden=hidden)


def _names_something(value: str) -> bool:
    """Whether a string spells a dunder, a dangerous module or a dangerous callable."""
    return bool(_DUNDER.search(value)) or value in DANGEROUS_MODULES or value in DANGEROUS_CALLS


def analyse(text: str, *, scanner_id: str, location: str = "", offset: int | None = None,
            limits: Limits = DEFAULT_LIMITS, source: str = "chat template") -> list[Finding]:
    """`analyse_template` with explicit limits and a label for messages (the GGUF key)."""
    judge = _Judge(scanner_id, location, offset, source)
    if len(text) > limits.max_template_chars:
        judge.note("TPL104", "size", f"{len(text)} characters exceed the {limits.max_template_chars}-character "
                   "bound; only the start was analysed", limits.max_template_chars, chars=len(text))
        text = text[: limits.max_template_chars]
    tags: list[Tag] = []
    start = 0
    for _ in range(MAX_RECOVERIES):
        try:
            tags += tokenise(text, start)
            break
        except TemplateSyntaxError as exc:
            judge.note("TPL104", "syntax", f"does not tokenise ({exc}); the rest was analysed loosely",
                       exc.position)
            # The broken tag up to the next opener is lexed loosely; tokenising resumes there.
            tags += exc.tags
            # A tag never closed was lexed to the end already: going on costs a pass per opener.
            resume = None if exc.reason.endswith("never closed") else _TAG_START.search(text, exc.tag_start + 2)
            tags.append(_lex_loosely(text[: resume.start() if resume else len(text)], exc.tag_start))
            if resume is None:
                break
            start = resume.start()
    for tag in tags:
        _judge_tag(tag, judge)
    return judge.findings


def _lex_loosely(text: str, position: int) -> Tag:
    """The broken tag at `position` and all after it, lexed as one tag as far as it goes, so a
    payload in a template that does not parse is still seen."""
    tail = text[position:]
    tokens: list[Token] = []
    pos = 0
    while pos < len(tail):
        m = _SPACE.match(tail, pos)
        if m:
            pos = m.end()
            continue
        m = _STRING.match(tail, pos)
        if m:
            raw = m.group(1) if m.group(1) is not None else m.group(2)
            with contextlib.suppress(TemplateSyntaxError):
                tokens.append(Token("string", _decode_string(raw, position + pos), position + pos, escaped="\\" in raw))
            pos = m.end()
            continue
        m = _NAME.match(tail, pos) or _OPERATOR.match(tail, pos)
        if m:
            tokens.append(Token("name" if m.re is _NAME else "op", m.group(), position + pos))
            pos = m.end()
            continue
        pos += 1
    kind = "{%" if tail.startswith("{%") else "{{"
    while tokens and tokens[0].kind == "op" and tokens[0].value in ("{", "%", "-", "+"):
        tokens.pop(0)  # the opener: what follows is a statement keyword or an expression
    return Tag(kind, tokens, position)


def analyse_template(text: str, *, scanner_id: str, location: str = "",
                     offset: int | None = None) -> list[Finding]:
    """Findings about one Jinja chat template, without rendering it.

    `offset` is where the template's bytes start in the scanned object (the finding's byte
    offset); the character position of each hit is in the evidence as `position`.
    """
    return analyse(text, scanner_id=scanner_id, location=location, offset=offset)
