"""What every format scanner looks for in the byte blobs and strings it finds: embedded
executables, secrets (always masked) and network indicators. Pure functions over `str` and
`bytes`; nothing here loads, decodes as code or runs what it inspects.

API
---

* `find_secrets(text) -> list[Secret]`: credential shapes in `text`, non-overlapping, in order.
  A `Secret` holds the kind, the span `[start, end)` of what must be hidden (the public prefix,
  such as `hf_` or `password=`, included), the public `prefix`, the `length` of the masked part
  and `masked`, its display (`hf_<Hugging Face token, 34 chars masked>`). It never holds the
  value: its `repr` is safe to log. Kinds: AWS access key ids (`AKIA`/`ASIA`) and AWS secret
  access keys (40 characters within 256 of a key id, or assigned to `aws_secret_access_key`),
  GitHub tokens (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`), Hugging Face `hf_`,
  OpenAI/Anthropic `sk-`, `sk-proj-`, `sk-ant-`, Slack `xox?-`, Google `AIza`, Stripe
  `sk_live_`/`rk_live_`, PEM private key blocks (the whole block, header included), JSON web
  tokens, `password=`/`api_key=`/`token:`... assignments with a value of 8+ characters, URL
  credentials (`user:pass@`) and credential query parameters of URLs (`X-Amz-Signature=`,
  `token=`, `key=`...).
* `mask(text, display=None) -> str`: `text` with every secret replaced by its display (by
  default `Secret.masked`; a scanner may pass its own `display(secret) -> str`): for quoting
  excerpts safely.
* `find_urls(text) -> list[Indicator]`: URLs (`http(s)`, `ftp`, `file`, `s3`, `gs`, `hdfs`,
  `ssh`, `git`, `ws(s)`, `data:...;base64,`), their text masked.
* `find_network_code(text) -> list[Indicator]`: socket and HTTP use in code-bearing text
  (`socket.socket`, `socket.create_connection`, `requests.get/post...`, `urllib.request`,
  `urlopen`, `http.client`, `httpx`, `curl`, `wget`, `nc -e`, `/dev/tcp/`, PowerShell web
  cmdlets). Only meaningful for text that is code (sources, templates, pickled strings that
  reach exec): plain prose mentions curl too.
* `find_executables(data, base_offset=0) -> list[Embedded]`: ELF, PE, Mach-O (thin and fat),
  shebang scripts and ZIP local headers inside a blob, at `base_offset + position`. Every magic
  is confirmed by its header (ELF class/data/version bytes, `e_version`, `e_ehsize`; PE
  `e_lfanew` pointing at `PE\\0\\0` inside the blob and a sane optional header size; Mach-O known
  CPU type, file type and load command sizes; fat binaries 1-16 architectures of known CPU types
  - Java class files share the magic; a shebang at the start of a line naming an interpreter
  path; ZIP version, flags, method, date, name length and a printable name), so that random
  bytes and float tensors do not match (tested on 64 MiB of each).

Rules
-----

* BIN001 (CRITICAL) embedded executable: `Embedded.native` (ELF, PE, Mach-O) found in a model
  blob (SafeTensors regions no tensor covers, pickled bytes constants, opaque engines). Scripts
  and ZIP headers are returned too (`native` False): the caller decides whether they matter where
  it found them.
* BIN002 (WARNING) secret: one rule for every format that holds strings (SafeTensors and GGUF
  metadata, ONNX and TFLite text fields, TensorFlow attrs, Keras configs and Lambda constants,
  PMML Extensions, msgpack strings, pickle string constants, configs, sources and model cards),
  so that one query finds every leaked credential in a fleet. `secrets_in` adds credential-named
  keys with a credential-shaped value and drops documented placeholders (`hf_xxxx...`, AWS's
  `...EXAMPLE` key); free text and sources are judged by conclusive shapes only.
* URLs and network code stay under each format's rules: whether a URL matters depends on where
  it is (a Keras `get_file` origin, a PMML extension, a training tool's record).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

from shardscan.limits import DEFAULT_LIMITS

#: Matches returned per call at most: a hostile blob full of magics cannot make a list explode.
MAX_MATCHES = DEFAULT_LIMITS.max_indicator_matches


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret found in text. Holds its place and masked display, never its value."""

    kind: str
    start: int
    end: int
    prefix: str
    length: int

    @property
    def masked(self) -> str:
        return f"{self.prefix}<{self.kind}, {self.length} chars masked>"


@dataclass(frozen=True, slots=True)
class Indicator:
    """A URL or network use in text; `text` is the match with secrets masked."""

    kind: str
    start: int
    end: int
    text: str


@dataclass(frozen=True, slots=True)
class Embedded:
    """An executable or archive header at `offset` (absolute: base_offset + position)."""

    kind: str  # "ELF", "PE", "Mach-O", "Mach-O fat", "script", "ZIP"
    offset: int
    detail: str

    @property
    def native(self) -> bool:
        """Machine code (ELF, PE, Mach-O): BIN001 CRITICAL in a model blob."""
        return self.kind in ("ELF", "PE", "Mach-O", "Mach-O fat")


# --- secrets ----------------------------------------------------------------------------------

_I = re.IGNORECASE


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, _I)


#: (kind, pattern). Group `v` is masked; group `p`, when present, directly precedes `v` and is
#: shown (a fixed public prefix or the name of the assigned key). The span is `p` + `v`.
SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("private key", re.compile(r"(?P<v>-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?:[A-Za-z0-9+/=\s:,.-]{0,16384}?"
                               r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|[A-Za-z0-9+/=\s]{0,16384}))")),
    ("AWS access key id", re.compile(r"\b(?P<p>AKIA|ASIA)(?P<v>[0-9A-Z]{16})\b")),
    ("AWS secret access key", re.compile(r"(?P<p>\baws_?secret_?access_?key\s*[=:]\s*['\"]?)"
                                         r"(?P<v>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])", _I)),
    ("GitHub token", re.compile(r"\b(?P<p>gh[pousr]_|github_pat_)(?P<v>[A-Za-z0-9_]{22,})")),
    ("Hugging Face token", re.compile(r"\b(?P<p>hf_)(?P<v>[A-Za-z0-9]{30,})")),
    ("Stripe key", re.compile(r"\b(?P<p>[sr]k_live_)(?P<v>[A-Za-z0-9]{20,})")),
    ("API key", re.compile(r"\b(?P<p>sk-(?:proj-|ant-)?)(?P<v>[A-Za-z0-9_-]{20,})")),
    ("Slack token", re.compile(r"\b(?P<p>xox[abposr]-)(?P<v>[A-Za-z0-9-]{10,})")),
    ("Google API key", re.compile(r"\b(?P<p>AIza)(?P<v>[0-9A-Za-z_-]{35})")),
    ("JSON web token", re.compile(r"(?<![A-Za-z0-9_-])(?P<p>eyJ)"
                                  r"(?P<v>[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})")),
    ("password in URL", re.compile(r"://[^/\s:@<>]+:(?P<v>[^/\s@<>]+)@")),
    ("credential in URL parameter", re.compile(
        r"[?&](?P<p>[\w.-]{0,40}?(?:sig|signature|token|key|secret|password|credential)[\w.-]{0,40}=)"
        r"(?P<v>[^&\s#\"'<>]{4,})", _I)),
    ("assigned secret", re.compile(
        r"\b(?P<p>(?:password|passwd|pwd|secret|token|access[_-]?token|auth[_-]?token|api[_-]?key|apikey"
        r"|access[_-]?key|secret[_-]?key|auth)\s*[=:]\s*['\"]?)(?P<v>[^\s'\"<>]{8,})", _I)),
)
#: Cheap screen: text matching none of these holds none of the secrets above.
#: kind -> (literals every match contains, whether they are matched case-insensitively). A kind
#: whose literals are all absent is not searched: a substring test runs at memory speed, each
#: pattern at about 30 MB/s (a 19 MB tokenizer.json took 5.8 s through all of them).
_GATES: dict[str, tuple[tuple[str, ...], bool]] = {
    "private key": (("PRIVATE KEY",), False),
    "AWS access key id": (("AKIA", "ASIA"), False),
    "AWS secret access key": (("secret",), True),
    "GitHub token": (("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"), False),
    "Hugging Face token": (("hf_",), False),
    "Stripe key": (("k_live_",), False),
    "API key": (("sk-",), False),
    "Slack token": (tuple(f"xox{c}-" for c in "abposr"), False),
    "Google API key": (("AIza",), False),
    "JSON web token": (("eyJ",), False),
    "password in URL": (("://",), False),
    "credential in URL parameter": (("=",), False),
    "assigned secret": (("pass", "pwd", "secret", "token", "key", "auth"), True),
}
_AWS_SECRET_NEAR = re.compile(r"(?<![A-Za-z0-9/+])(?P<v>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])")
_HEX = re.compile(r"[0-9a-fA-F]+")
AWS_NEAR = 256


def _aws_secret_shape(v: str) -> bool:
    return (any(c.isupper() for c in v) and any(c.islower() for c in v) and any(c.isdigit() for c in v)
            and not _HEX.fullmatch(v))


def _gated(text: str, kinds: frozenset[str] | None) -> list[tuple[str, re.Pattern[str]]]:
    """The patterns worth running on `text`: wanted, and with one of their literals present."""
    lowered: str | None = None
    out = []
    for kind, pattern in SECRET_PATTERNS:
        if kinds is not None and kind not in kinds:
            continue
        literals, fold = _GATES[kind]
        if fold and lowered is None:
            lowered = text.lower()
        haystack = lowered if fold else text
        if any(lit in haystack for lit in literals):  # type: ignore[operator]
            out.append((kind, pattern))
    return out


def find_secrets(text: str, kinds: frozenset[str] | None = None) -> list[Secret]:
    """Secrets in `text` (of `kinds`, default all), in order and not overlapping (a conclusive
    shape wins over an assignment, then the earliest and longest)."""
    found: list[tuple[int, int, str, str, int]] = []  # start, end, kind, prefix, length
    for kind, pattern in _gated(text, kinds):
        for m in pattern.finditer(text):
            start = m.start("p") if "p" in pattern.groupindex and m.group("p") is not None else m.start("v")
            found.append((start, m.end("v"), kind, text[start:m.start("v")], m.end("v") - m.start("v")))
            if kind == "AWS access key id":
                lo = max(0, m.start() - AWS_NEAR)
                for n in _AWS_SECRET_NEAR.finditer(text, lo, min(len(text), m.end() + AWS_NEAR)):
                    if _aws_secret_shape(n.group("v")):
                        found.append((n.start(), n.end(), "AWS secret access key", "", 40))
            if len(found) >= 4 * MAX_MATCHES:
                break
    # Conclusive shapes first (`TOKEN = "hf_..."` is a Hugging Face token more than an
    # assignment), then the earliest and longest.
    found.sort(key=lambda f: (f[2] not in STRONG_KINDS, f[0], -f[1]))
    out: list[Secret] = []
    for start, stop, kind, prefix, length in found:
        if all(stop <= s.start or start >= s.end for s in out):
            out.append(Secret(kind, start, stop, prefix, length))
            if len(out) >= MAX_MATCHES:
                break
    return sorted(out, key=lambda s: s.start)


def mask(text: str, display: Callable[[Secret], str] | None = None) -> str:
    """`text` with every secret replaced by `display(secret)` (default: `secret.masked`)."""
    secrets = find_secrets(text)
    if not secrets:
        return text
    show = display or (lambda s: s.masked)
    parts: list[str] = []
    pos = 0
    for s in secrets:
        parts += [text[pos:s.start], show(s)]
        pos = s.end
    parts.append(text[pos:])
    return "".join(parts)


#: Longest excerpt of a scanned string quoted in a finding.
EXCERPT = 100
#: The rule every scanner reports secrets under, so one query finds them across formats.
SECRET_RULE = "BIN002"
#: Keys named like a credential: their values are secrets when they look like one.
CREDENTIAL_KEY = _rx(r"(?:^|[^a-z])(?:pass(?:word|wd)?|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key"
                 r"|credentials?|auth)(?:$|[^a-z])")
CREDENTIAL_SHAPE = re.compile(r"(?=.*[A-Za-z])(?=.*\d)\S{12,}")


#: Kinds whose shape alone is conclusive. "assigned secret" (`token = ...`) also matches code
#: that reads a secret from elsewhere (`token = os.environ[...]`), so free text and source
#: files are judged on these only.
STRONG_KINDS = frozenset(kind for kind, _ in SECRET_PATTERNS) - {"assigned secret"}


def shown(text: str, limit: int = EXCERPT) -> str:
    """A string from a scanned file made fit for a finding: secrets masked, bounded, printable."""
    text = mask(text[: limit * 4])
    if len(text) > limit:
        text = text[:limit] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


#: Runs such as `xxxx`, `0000` or `****`: documentation writes tokens this way.
_PLACEHOLDER_RUN = re.compile(r"(.)\1{3}")
_PLACEHOLDER_WORD = re.compile(r"your|example|placeholder|redacted|dummy|changeme|here", _I)


def _placeholder(value: str) -> bool:
    """A documented shape rather than a credential: `hf_xxxxxxxx...`, `sk-YOUR_KEY_HERE`.
    A random token has a run of four equal characters about once in 7,000; a PEM block's
    base64 often does, so private keys are judged by their armour alone."""
    if value.startswith("-----BEGIN"):
        return False
    return len(set(value)) < 6 or bool(_PLACEHOLDER_RUN.search(value) or _PLACEHOLDER_WORD.search(value))


def secrets_in(value: str, key: str = "", *, strong_only: bool = False) -> list[Secret]:
    """Secrets in `key` and `value`, and the whole value when `key` names a credential and the
    value has a credential's shape (no known prefix needed: `"password": "hunter2hunter2"`)."""
    kinds = STRONG_KINDS if strong_only else None
    found = [s for text in (key, value) if text for s in find_secrets(text, kinds)
             if not _placeholder(text[s.end - s.length:s.end])]
    if key and not found and CREDENTIAL_KEY.search(key) and CREDENTIAL_SHAPE.fullmatch(value.strip()):
        found.append(Secret("credential-named value", 0, len(value), "", len(value)))
    return found[:MAX_MATCHES]


def secret_message(where: str, secret: Secret) -> str:
    """The message of a SECRET_RULE finding: where, the kind and the masked display."""
    return f"{where} holds what looks like a {secret.kind}: {secret.masked}"


# --- network indicators ------------------------------------------------------------------------

URL = re.compile(r"\b(?:https?|ftps?|sftp|file|s3|gs|hdfs|ssh|git|wss?)://[^\s\"'<>]{1,2048}"
                 r"|\bdata:[\w/+.-]{1,100};base64,", _I)

#: (label, pattern): code, markup or shell in strings that tools may render or run.
CODE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("python import", _rx(r"__import__\s*\(|\bimport\s+(?:os|sys|subprocess|socket|pty|shutil|ctypes|base64"
                          r"|pickle|marshal|builtins|importlib|runpy)\b|\bfrom\s+(?:os|subprocess|socket|pty"
                          r"|ctypes|builtins|importlib)\s+import\b")),
    ("python eval/exec", re.compile(r"\b(?:exec|eval|compile|execfile)\s*\(")),
    ("python process call", _rx(r"\bos\.(?:system|popen|exec\w*|spawn\w*)\s*\(|\bsubprocess\.\w+\s*\(")),
    ("python deserialisation", _rx(r"\b(?:pickle|marshal|dill|cloudpickle|_pickle)\.loads?\s*\(")),
    ("python introspection", re.compile(r"__(?:builtins|globals|subclasses|class|bases?|mro|code|reduce"
                                        r"|reduce_ex|getattribute|init)__")),
    ("script markup", _rx(r"<\s*script\b|\bjavascript\s*:|<\s*(?:iframe|object|embed)\b"
                          r"|\bon(?:error|load|click|mouseover|focus)\s*=|<\?php")),
    ("shell download", _rx(r"\b(?:curl|wget)\b[^|\n]{0,200}\|\s*(?:ba|z|da|k)?sh\b"
                           r"|\b(?:curl|wget)\s+(?:-\S+\s+)*['\"]?(?:https?|ftp)://")),
    ("shell command", _rx(r"\b(?:ba|z|da)?sh\s+-c\b|\brm\s+-[a-z]*[rf]|/dev/tcp/|\bnc(?:at)?\s+(?:-\S+\s+)*-e\b"
                          r"|\bpowershell(?:\.exe)?\b|\bcmd(?:\.exe)?\s+/[ck]\b|\bchmod\s+(?:\+x|[0-7]{3,4})\b"
                          r"|\bpython[0-9.]*\s+-c\b|\bbase64\s+(?:-d|--decode)\b|\bmkfifo\b")),
)
#: (label, pattern): places outside the file: URLs and file paths.
PLACE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("URL", URL),
    ("file path", re.compile(r"(?<![\w.~/])/(?:etc|root|home|tmp|var|usr|bin|sbin|dev|proc|opt|Users|mnt|srv)/"
                             r"[^\s\"']*|\b[A-Za-z]:\\[^\s\"']*|(?<!\w)~/[^\s\"']+|\.\.[/\\]")),
)
#: Code using the network, found in code-bearing text.
_NETWORK_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("raw socket", re.compile(r"\bsocket\.(?:socket|create_connection|create_server|socketpair)\s*\(")),
    ("python HTTP client", re.compile(
        r"\brequests\.(?:get|post|put|patch|delete|head|request|Session)\s*\(|\burllib\d?\.request\b"
        r"|\burlopen\s*\(|\burllib2\b|\bhttp\.client\b|\bhttplib\b|\bhttpx\.\w+\s*\(|\baiohttp\.ClientSession\b")),
    ("curl/wget", re.compile(r"\b(?:curl|wget)\s+(?:-{1,2}[\w-]+(?:\s+\S+)?\s+)*['\"]?(?:https?|ftp)://"
                             r"|\b(?:curl|wget)\b[^|\n]{0,200}\|\s*(?:ba|z|da|k)?sh\b")),
    ("netcat", re.compile(r"\bn(?:c|cat|etcat)(?:\.exe)?\s[^\n|;&]{0,80}?(?<=\s)-[a-z]*[ec]\b")),
    ("/dev/tcp", re.compile(r"/dev/(?:tcp|udp)/[\w.-]+/\d+")),
    ("PowerShell web", re.compile(r"\b(?:Invoke-WebRequest|Invoke-RestMethod|Net\.WebClient|DownloadString)\b",
                                  _I)),
)


def find_urls(text: str) -> list[Indicator]:
    """URLs in `text`; their text has secrets masked."""
    if "://" not in text and "data:" not in text:
        return []
    return [Indicator("URL", m.start(), m.end(), mask(m.group(0)))
            for _, m in zip(range(MAX_MATCHES), URL.finditer(text), strict=False)]


def find_network_code(text: str) -> list[Indicator]:
    """Socket and HTTP use in code-bearing text, each kind's matches in order of kinds."""
    out: list[Indicator] = []
    for kind, pattern in _NETWORK_PATTERNS:
        for m in pattern.finditer(text):
            out.append(Indicator(kind, m.start(), m.end(), mask(m.group(0))[:200]))
            if len(out) >= MAX_MATCHES:
                return out
    return out


# --- embedded executables -----------------------------------------------------------------------

_ELF_MACHINES = {3: "x86", 8: "MIPS", 20: "PowerPC", 21: "PowerPC64", 40: "ARM", 62: "x86-64", 183: "AArch64",
                 243: "RISC-V", 258: "LoongArch"}
_ELF_TYPES = {1: "relocatable", 2: "executable", 3: "shared object", 4: "core"}
_MACHO_CPUS = {7: "x86", 0x01000007: "x86-64", 12: "ARM", 0x0100000C: "ARM64", 0x0200000C: "ARM64_32",
               18: "PowerPC", 0x01000012: "PowerPC64"}
_MACHO_MAGICS = {b"\xfe\xed\xfa\xce": (">", False), b"\xfe\xed\xfa\xcf": (">", True),
                 b"\xce\xfa\xed\xfe": ("<", False), b"\xcf\xfa\xed\xfe": ("<", True)}
_FAT_MAGICS = (b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf")
_ZIP_METHODS = {0, 8, 9, 12, 14, 93, 95, 98, 99}
_SHEBANG = re.compile(rb"#! ?/(?:usr/(?:local/)?)?s?bin/(?:env[ \t]+(?:-\S+[ \t]+)*)?"
                      rb"(?P<i>[A-Za-z][\w.+-]{0,31})(?=[ \t\r\n]|$)")


def _elf(data: bytes, i: int) -> str | None:
    h = data[i:i + 64]
    if len(h) < 52 or h[4] not in (1, 2) or h[5] not in (1, 2) or h[6] != 1:
        return None
    end = "<" if h[5] == 1 else ">"
    etype, machine, version = struct.unpack_from(end + "HHI", h, 16)
    if version != 1 or etype not in _ELF_TYPES:
        return None
    if h[4] == 2:
        if len(h) < 64:
            return None
        ehsize = struct.unpack_from(end + "H", h, 52)[0]
        want = 64
    else:
        ehsize = struct.unpack_from(end + "H", h, 40)[0]
        want = 52
    if ehsize != want:
        return None
    bits = 32 * h[4]
    return (f"ELF {bits}-bit {'LSB' if h[5] == 1 else 'MSB'} {_ELF_TYPES[etype]}, "
            f"{_ELF_MACHINES.get(machine, f'machine {machine}')}")


def _pe(data: bytes, i: int) -> str | None:
    if len(data) < i + 64:
        return None
    lfanew = struct.unpack_from("<I", data, i + 0x3C)[0]
    p = i + lfanew
    if lfanew < 0x40 or lfanew > 0x10000 or data[p:p + 4] != b"PE\0\0" or len(data) < p + 24:
        return None
    machine, sections, _, _, _, opt_size, _ = struct.unpack_from("<HHIIIHH", data, p + 4)
    if not 1 <= sections <= 96 or not (opt_size == 0 or 0x60 <= opt_size <= 0x400):
        return None
    names = {0x14C: "x86", 0x8664: "x86-64", 0xAA64: "ARM64", 0x1C0: "ARM", 0x1C4: "ARMv7"}
    return f"PE executable, {names.get(machine, f'machine {machine:#x}')}, {sections} sections"


def _macho(data: bytes, i: int) -> str | None:
    end, is64 = _MACHO_MAGICS[data[i:i + 4]]
    h = data[i:i + 32]
    if len(h) < 28:
        return None
    cpu, _, filetype, ncmds, sizeofcmds = struct.unpack_from(end + "iIIII", h, 4)
    cpu &= 0xFFFFFFFF
    if cpu not in _MACHO_CPUS or not 1 <= filetype <= 12 or not 1 <= ncmds <= 4096:
        return None
    if not ncmds * 8 <= sizeofcmds <= 16 * 1024 * 1024:
        return None
    return f"Mach-O {64 if is64 else 32}-bit, {_MACHO_CPUS[cpu]}, file type {filetype}, {ncmds} load commands"


def _fat(data: bytes, i: int) -> str | None:
    h = data[i:i + 8 + 16 * 20]
    if len(h) < 8 + 20:
        return None
    n = struct.unpack_from(">I", h, 4)[0]
    if not 1 <= n <= 16 or len(h) < 8 + 20 * n:  # Java class files: major version 45+ here
        return None
    cpus = [struct.unpack_from(">I", h, 8 + 20 * k)[0] for k in range(n)]
    if not all(c in _MACHO_CPUS for c in cpus):
        return None
    return f"Mach-O universal binary, {n} architectures ({', '.join(_MACHO_CPUS[c] for c in cpus)})"


def _zip(data: bytes, i: int) -> str | None:
    h = data[i:i + 30]
    if len(h) < 30:
        return None
    version, flags, method, mtime, mdate, _, csize, _, nlen, xlen = struct.unpack_from("<HHHHHIIIHH", h, 4)
    if (version & 0xFF) > 63 or flags & 0xD780 or method not in _ZIP_METHODS:
        return None
    if mtime >> 11 > 23 or (mtime >> 5) & 0x3F > 59 or (mtime & 0x1F) > 29:
        return None
    if not 1 <= (mdate >> 5) & 0xF <= 12 or not 1 <= mdate & 0x1F <= 31:
        return None
    name = data[i + 30:i + 30 + nlen]
    if not 1 <= nlen <= 1024 or len(name) < nlen or xlen > 4096:
        return None
    if any(b < 0x20 or b == 0x7F for b in name):
        return None
    if not flags & 0x08 and csize != 0xFFFFFFFF and i + 30 + nlen + xlen + csize > len(data):
        return None
    return f"ZIP local header, member {name[:80].decode('utf-8', 'replace')!r}, method {method}"


def find_executables(data: bytes, base_offset: int = 0) -> list[Embedded]:
    """Executables and archive headers inside `data`, in order of offset."""
    out: list[tuple[int, str, str]] = []

    def scan(magic: bytes, kind: str, check: Callable[[bytes, int], str | None]) -> None:
        i = data.find(magic)
        while i >= 0 and len(out) < MAX_MATCHES:
            detail = check(data, i)
            if detail is not None:
                out.append((i, kind, detail))
            i = data.find(magic, i + 1)

    scan(b"\x7fELF", "ELF", _elf)
    scan(b"MZ", "PE", _pe)
    for magic in _MACHO_MAGICS:
        scan(magic, "Mach-O", _macho)
    for magic in _FAT_MAGICS:
        scan(magic, "Mach-O fat", _fat)
    scan(b"PK\x03\x04", "ZIP", _zip)
    i = data.find(b"#!")
    while i >= 0 and len(out) < MAX_MATCHES:
        if i == 0 or data[i - 1] in b"\r\n":
            m = _SHEBANG.match(data, i)
            if m is not None:
                out.append((i, "script", f"script for {m.group('i').decode('ascii')}: "
                                         f"{m.group(0)[:80].decode('ascii', 'replace')}"))
        i = data.find(b"#!", i + 1)
    out.sort()
    return [Embedded(kind, base_offset + i, detail) for i, kind, detail in out[:MAX_MATCHES]]
