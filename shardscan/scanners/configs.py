"""Configuration shipped with models: Hugging Face JSON configs, YAML (Hydra, Lightning, NeMo)
and MLflow `MLmodel` files.

Nothing here loads a config the way its consumer would. JSON is parsed with `json.loads` (size
bounded by the caller; nesting is bounded by CPython's own recursion check and by the walk).
YAML is only *parsed* into events (see the YAML section): tags are read off the events and never
constructed, and aliases are counted as expanded without expanding them, so billion-laughs
documents cost what their text costs.

What is checked:

* `auto_map` / `custom_pipelines` (transformers runs the named modules with trust_remote_code):
  CFG001, or CFG002 when an entry names another repository (`org/repo--module.Class`). That
  form is used legitimately by fine-tunes of remote-code models (MPT, Falcon), so it is a
  WARNING of its own rule, not CRITICAL: the code it runs was not part of this scan.
* `trust_remote_code: true` anywhere (CFG003).
* `chat_template` (a string, or a list of {name, template}) and `.jinja` files go to the chat
  template analyser (`shardscan.scanners.templates`); Keras model configs (config.json of
  `.keras` archives) to the Keras analyser (`shardscan.scanners.keras`).
* YAML python tags (CFG201/CFG202), Hydra `_target_` (CFG203/CFG204, judged by the pickle
  policy), MLmodel flavors (CFG205/CFG206).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from functools import cache
from typing import Any
from urllib.parse import unquote

from shardscan.model import Finding, Severity
from shardscan.scanners.base import ScanContext, finding

PY_TAG = "tag:yaml.org,2002:python/"
#: Python tags that call a callable when constructed by an unsafe loader.
CALLING_TAGS = frozenset({"object/apply", "object/new"})
#: Python tags that import a module (and fetch an attribute, or build an instance without its
#: constructor).
IMPORTING_TAGS = frozenset({"object", "name", "module"})
#: Hydra forwarders: their `path` / first `_args_` string is itself a callable that gets resolved.
HYDRA_FORWARDERS = frozenset({
    "hydra.utils.get_method", "hydra.utils.get_class", "hydra.utils.get_object", "hydra.utils.call",
    "hydra.utils.instantiate", "hydra._internal.utils._locate",
})
#: Well-known ML packages: an instantiated class from these is not reported unless the policy
#: denies it (torch.load, torch.hub, ...).
ML_NAMESPACES = (
    "torch", "torchvision", "torchaudio", "torchtext", "torchmetrics", "lightning", "pytorch_lightning",
    "lightning_fabric", "nemo", "megatron", "apex", "transformers", "tokenizers", "datasets", "diffusers",
    "peft", "accelerate", "timm", "hydra", "omegaconf", "sklearn", "numpy", "scipy", "pandas", "einops",
    "fairseq", "espnet", "speechbrain", "monai", "mmcv", "mmdet", "mmengine", "detectron2", "open_clip",
    "sentence_transformers", "lhotse", "wandb", "tensorboard", "deepspeed", "xformers", "bitsandbytes",
    "composer", "albumentations", "torch_geometric", "dgl", "jax", "flax", "optax", "keras",
)
#: Python tags a regex finds in text that did not compose: `!!python/...`, verbatim or %TAG.
_TAG_RE = re.compile(r"(?:!!python/|tag:yaml\.org,2002:python/)([A-Za-z/]+)(?::([\w.%\-]+))?")
_TAG_DIRECTIVE_RE = re.compile(r"^%TAG\s+(!\S*!)\s+tag:yaml\.org,2002:python/", re.MULTILINE)
MAX_TAG_FINDINGS = 100


def byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8", "surrogatepass")) if index > 0 else 0


def key_offset(text: str, key: str) -> int | None:
    index = text.find(f'"{key}"')
    return None if index < 0 else byte_offset(text, index)


# -- judging dotted names --------------------------------------------------------------------------

def judge_dotted(ctx: ScanContext, dotted: str):
    """The policy's verdict on a dotted callable, trying every module/attribute split."""
    parts = [p for p in dotted.split(".") if p]
    if not parts:
        return None
    if len(parts) == 1:
        return ctx.policy.judge("builtins", parts[0])
    allowed = first = None
    for i in range(len(parts) - 1, 0, -1):
        verdict = ctx.policy.judge(".".join(parts[:i]), ".".join(parts[i:]))
        if verdict.kind == "deny":
            return verdict
        if verdict.kind == "allow" and allowed is None:
            allowed = verdict
        first = first or verdict
    return allowed or first


def _in_ml_namespace(dotted: str) -> bool:
    top = dotted.split(".", 1)[0]
    return top in ML_NAMESPACES


def judge_target(ctx: ScanContext, scanner_id: str, target: str, args: list[str], *, location: str,
                 offset: int | None, key: str = "_target_") -> list[Finding]:
    """Findings for one Hydra `_target_` (and, for forwarders, the callable it forwards to)."""
    target = target.strip()
    if not target or "${" in target or not re.fullmatch(r"[\w.]+", target):
        return []  # an interpolation: the value it resolves to is judged where it is written
    out: list[Finding] = []
    verdict = judge_dotted(ctx, target)
    shown = ", ".join(repr(a) for a in args[:3])
    if verdict is not None and verdict.kind == "deny":
        out.append(finding("CFG203", scanner_id,
                           f"{key} {target} is denylisted ({verdict.capability})"
                           + (f", called with {shown}" if shown else ""),
                           location=location, offset=offset, target=target, capability=verdict.capability,
                           args=shown or None))
        return out
    if target in HYDRA_FORWARDERS:
        for arg in args[:1]:
            if re.fullmatch(r"[\w.]+", arg.strip()) and "." in arg:
                inner = judge_dotted(ctx, arg.strip())
                if inner is not None and inner.kind == "deny":
                    out.append(finding("CFG203", scanner_id,
                                       f"{key} {target} resolves {arg.strip()}, which is denylisted "
                                       f"({inner.capability})", location=location, offset=offset,
                                       target=arg.strip(), capability=inner.capability))
        return out
    if (verdict is not None and verdict.kind == "allow") or _in_ml_namespace(target):
        return out
    out.append(finding("CFG204", scanner_id, f"{key} {target} is outside the allowlist and known ML packages",
                       location=location, offset=offset, target=target))
    return out


def python_tag_finding(ctx: ScanContext, scanner_id: str, suffix: str, *, location: str,
                       offset: int | None) -> Finding | None:
    """The finding for a python tag suffix (`object/apply:os.system`), or None for plain types."""
    kind, _, target = suffix.partition(":")
    target = unquote(target)
    if kind in CALLING_TAGS:
        return finding("CFG201", scanner_id, f"!!python/{kind}:{target} calls {target or 'a callable'} "
                       "when loaded with an unsafe YAML loader", location=location, offset=offset,
                       tag=f"!!python/{suffix}", target=target or None)
    if kind not in IMPORTING_TAGS:
        return None  # tuple, str, bytes, complex...: plain values FullLoader builds
    if kind == "module":
        verdict = ctx.policy.judge(target, "*") if target else None
    else:
        verdict = judge_dotted(ctx, target) if target else None
    if verdict is not None and verdict.kind == "deny":
        return finding("CFG201", scanner_id, f"!!python/{kind}:{target} reaches a denylisted callable "
                       f"({verdict.capability})", location=location, offset=offset, tag=f"!!python/{suffix}",
                       target=target, capability=verdict.capability)
    severity = Severity.INFO if verdict is not None and verdict.kind == "allow" else None
    return finding("CFG202", scanner_id, f"!!python/{kind}:{target} imports {target or 'a module'} when "
                   "loaded with an unsafe YAML loader", location=location, offset=offset, severity=severity,
                   tag=f"!!python/{suffix}", target=target or None)


def scan_tags_by_pattern(text: str, ctx: ScanContext, scanner_id: str, *, location: str) -> list[Finding]:
    """Python tags found by pattern, for YAML that could not be composed."""
    out: list[Finding] = []
    matches: list[tuple[int, str]] = [(m.start(), m.group(1) + (f":{m.group(2)}" if m.group(2) else ""))
                                      for m in _TAG_RE.finditer(text)]
    for handle_match in _TAG_DIRECTIVE_RE.finditer(text):
        handle = re.escape(handle_match.group(1))
        for m in re.finditer(handle + r"([A-Za-z/]+)(?::([\w.%\-]+))?", text[handle_match.end():]):
            matches.append((handle_match.end() + m.start(), m.group(1) + (f":{m.group(2)}" if m.group(2) else "")))
    for index, suffix in sorted(matches)[:MAX_TAG_FINDINGS]:
        hit = python_tag_finding(ctx, scanner_id, suffix, location=location, offset=byte_offset(text, index))
        if hit is not None:
            out.append(hit)
    return out


# -- chat templates and Keras configs (analysers of other families) ------------------------------

def analyse_template(text: str, *, scanner_id: str, location: str, offset: int | None,
                     label: str = "") -> list[Finding]:
    try:
        from shardscan.scanners.templates import analyse_template as analyse
    except ImportError:
        return [finding("FMT002", scanner_id, "chat template not analysed: no template analyser in this build",
                        location=location, offset=offset)]
    found = analyse(text, scanner_id=scanner_id, location=location, offset=offset)
    if label:
        found = [replace(f, message=f"{f.message} (template {label!r})") for f in found]
    return found


def analyse_keras(config: dict, *, scanner_id: str, location: str) -> list[Finding]:
    try:
        from shardscan.scanners.keras import analyse_keras_config
    except ImportError:
        return [finding("FMT002", scanner_id, "Keras model config not analysed: no Keras analyser in this build",
                        location=location, offset=0)]
    return list(analyse_keras_config(config, scanner_id=scanner_id, location=location))


def is_keras_config(obj: Any) -> bool:
    if not (isinstance(obj, dict) and "class_name" in obj and "config" in obj):
        return False
    module = obj.get("module")
    return "keras_version" in obj or (isinstance(module, str) and module.split(".", 1)[0] == "keras")


# -- JSON ------------------------------------------------------------------------------------------

def _auto_map_targets(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, str):
                yield item


def _remote_code(obj: dict, text: str, scanner_id: str, location: str) -> list[Finding]:
    out: list[Finding] = []
    local: dict[str, list[str]] = {}
    remote: list[str] = []
    auto_map = obj.get("auto_map")
    if isinstance(auto_map, dict):
        for auto_class, value in auto_map.items():
            for target in _auto_map_targets(value):
                if "--" in target:
                    remote.append(target)
                else:
                    local.setdefault(target.rsplit(".", 1)[0], []).append(f"{auto_class}={target}")
    pipelines = obj.get("custom_pipelines")
    if isinstance(pipelines, dict):
        for task, spec in pipelines.items():
            impl = spec.get("impl") if isinstance(spec, dict) else None
            if isinstance(impl, str):
                local.setdefault(impl.rsplit(".", 1)[0], []).append(f"pipeline {task}={impl}")
    if local:
        files = ", ".join(f"{m}.py" for m in sorted(local))
        out.append(finding("CFG001", scanner_id, f"auto_map runs repository code with trust_remote_code: {files}",
                           location=location, offset=key_offset(text, "auto_map"),
                           modules=",".join(sorted(local)),
                           entries="; ".join(e for m in sorted(local) for e in local[m])))
    for target in remote:
        repo, _, ref = target.partition("--")
        out.append(finding("CFG002", scanner_id, f"auto_map runs code from repository {repo} ({ref})",
                           location=location, offset=key_offset(text, "auto_map"), repository=repo, target=ref))
    return out


def _chat_templates(obj: dict, text: str, scanner_id: str, location: str) -> list[Finding]:
    value = obj.get("chat_template")
    offset = key_offset(text, "chat_template")
    if isinstance(value, str):
        return analyse_template(value, scanner_id=scanner_id, location=location, offset=offset)
    out: list[Finding] = []
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and isinstance(item.get("template"), str):
                out += analyse_template(item["template"], scanner_id=scanner_id, location=location, offset=offset,
                                        label=str(item.get("name", "")))
    return out


def _walk_json(obj: Any, text: str, ctx: ScanContext, scanner_id: str, location: str) -> list[Finding]:
    """`_target_` and `trust_remote_code` anywhere, iteratively and within the limits."""
    out: list[Finding] = []
    limits = ctx.limits
    stack: list[tuple[Any, int]] = [(obj, 0)]
    count = 0
    trust_reported = False
    targets: set[tuple[str, str]] = set()
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > limits.max_config_nodes:
            out.append(finding("CFG301", scanner_id, f"JSON has more than {limits.max_config_nodes} values; "
                               "the rest was not analysed", location=location, offset=0))
            break
        if count % 100_000 == 0:
            ctx.check_deadline()
        if depth > limits.max_config_depth:
            out.append(finding("CFG301", scanner_id, f"JSON nests deeper than {limits.max_config_depth} levels; "
                               "deeper values were not analysed", location=location, offset=0))
            break
        if isinstance(value, dict):
            target = value.get("_target_")
            if isinstance(target, str):
                args = [a for a in value.get("_args_", []) if isinstance(a, str)] if isinstance(
                    value.get("_args_"), list) else []
                if isinstance(value.get("path"), str):
                    args.insert(0, value["path"])
                key = (target, "|".join(args[:1]))
                if key not in targets and len(targets) < MAX_TAG_FINDINGS:
                    targets.add(key)
                    found = judge_target(ctx, scanner_id, target, args, location=location, offset=None)
                    if found:
                        at = text.find(json.dumps(target))
                        found = [replace(f, offset=byte_offset(text, at) if at >= 0 else None) for f in found]
                    out += found
            if value.get("trust_remote_code") is True and not trust_reported:
                trust_reported = True
                out.append(finding("CFG003", scanner_id, "trust_remote_code is true", location=location,
                                   offset=key_offset(text, "trust_remote_code")))
            stack += [(v, depth + 1) for v in value.values() if isinstance(v, (dict, list))]
        elif isinstance(value, list):
            stack += [(v, depth + 1) for v in value if isinstance(v, (dict, list))]
    return out


def analyse_json(text: str, ctx: ScanContext, scanner_id: str, *, location: str = "",
                 named: bool = True) -> list[Finding] | None:
    """Findings for a JSON document; None when `named` is false and the text is not JSON."""
    try:
        obj = json.loads(text)
    except RecursionError:
        return [finding("CFG301", scanner_id, "JSON nests too deeply to parse", location=location, offset=0)]
    except ValueError as exc:
        if not named:
            return None
        pos = getattr(exc, "pos", None)
        return [finding("CFG302", scanner_id, f"JSON does not parse: {getattr(exc, 'msg', exc)}",
                        location=location, offset=None if pos is None else byte_offset(text, pos))]
    out: list[Finding] = []
    if isinstance(obj, dict):
        out += _remote_code(obj, text, scanner_id, location)
        if "chat_template" in obj:
            out += _chat_templates(obj, text, scanner_id, location)
        if is_keras_config(obj):
            out += analyse_keras(obj, scanner_id=scanner_id, location=location)
    out += _walk_json(obj, text, ctx, scanner_id, location)
    return out


# -- YAML ------------------------------------------------------------------------------------------
#
# YAML is read as a stream of parser events (libyaml's C parser when PyYAML has it, else PyYAML's
# own; both are iterative, and libyaml refuses absurd nesting itself). Nothing is composed into
# a tree and nothing constructed: an event-driven walk keeps one frame per open collection, counts
# each node's size with aliases expanded (sizes per anchor, so a billion-laughs document costs
# its text), and collects the few mapping keys it judges (_target_, _args_, path,
# trust_remote_code). For MLmodel files the first document is also kept as plain data.

_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_TRUES = frozenset({"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"})
_BOOL_TAG = "tag:yaml.org,2002:bool"
_NULL_TAG = "tag:yaml.org,2002:null"


@cache
def _yaml():
    import yaml

    loader = yaml.CSafeLoader if getattr(yaml, "__with_libyaml__", False) else yaml.SafeLoader
    return yaml, loader


class OffsetMap:
    """Character index -> UTF-8 byte offset, linear work once however many lookups."""

    BLOCK = 1 << 16

    def __init__(self, text: str) -> None:
        self.text = text
        self.ascii = text.isascii()
        self.blocks: list[int] | None = None

    def __call__(self, index: int | None) -> int | None:
        if index is None or index <= 0:
            return index
        if self.ascii:
            return index
        if self.blocks is None:
            blocks, total = [], 0
            for start in range(0, len(self.text), self.BLOCK):
                blocks.append(total)
                total += len(self.text[start:start + self.BLOCK].encode("utf-8", "surrogatepass"))
            self.blocks = blocks
        block = index // self.BLOCK
        if block >= len(self.blocks):
            return None
        return self.blocks[block] + len(self.text[block * self.BLOCK:index].encode("utf-8", "surrogatepass"))


class _Scalar:
    __slots__ = ("index", "null", "true", "value")

    def __init__(self, event) -> None:
        self.value = event.value
        self.index = event.start_mark.index if event.start_mark is not None else None
        plain = bool(event.implicit and event.implicit[0]) and event.tag is None
        self.null = event.tag == _NULL_TAG or (plain and event.value in _NULLS)
        self.true = (event.tag == _BOOL_TAG or plain) and event.value in _TRUES

    def text(self) -> str | None:
        return None if self.null else self.value


class _Frame:
    __slots__ = ("anchor", "args", "data", "fields", "index", "is_map", "key", "size")

    def __init__(self, is_map: bool, anchor: str | None, index: int | None, keep: bool) -> None:
        self.is_map, self.anchor, self.index = is_map, anchor, index
        self.key: object = None  # map: the pending key (str, or a marker for a non-scalar key)
        self.size = 1
        self.fields: dict[str, object] | None = None
        self.args: list[str] | None = None  # set on a sequence that is some mapping's _args_
        self.data: Any = ({} if is_map else []) if keep else None


_NO_KEY = object()
_COMPLEX_KEY = object()
_INTERESTING = frozenset({"_target_", "path", "trust_remote_code"})


class _YamlWalk:
    def __init__(self, text: str, ctx: ScanContext, scanner_id: str, location: str, keep_first: bool) -> None:
        self.text, self.ctx, self.scanner_id, self.location = text, ctx, scanner_id, location
        self.offset = OffsetMap(text)
        self.keep_first = keep_first
        self.findings: list[Finding] = []
        self.anchors: dict[str, int] = {}
        self.open_anchors: set[str] = set()
        self.total = 0
        self.limit_hit: str | None = None
        self.recursive = False
        self.tags = 0
        self.targets: set[tuple[str, str]] = set()
        self.trust_reported = False
        self.first_doc: Any = None
        self.doc_index = -1
        self.nodes = 0
        #: Findings of the documents parsed to their end (a loader constructs only those).
        self.complete = 0

    # -- findings ---------------------------------------------------------------------------------
    def tag(self, tag: str | None, index: int | None) -> None:
        if tag and tag.startswith(PY_TAG) and self.tags < MAX_TAG_FINDINGS:
            hit = python_tag_finding(self.ctx, self.scanner_id, tag[len(PY_TAG):], location=self.location,
                                     offset=self.offset(index))
            if hit is not None:
                self.tags += 1
                self.findings.append(hit)

    def close_mapping(self, frame: _Frame) -> None:
        fields = frame.fields
        if not fields:
            return
        target = fields.get("_target_")
        if isinstance(target, _Scalar) and target.text() is not None:
            args = list(fields.get("_args_", ()))  # type: ignore[call-overload]
            path = fields.get("path")
            if isinstance(path, _Scalar) and path.text() is not None:
                args.insert(0, path.text())
            key = (target.value, "|".join(args[:1]))
            if key not in self.targets and len(self.targets) < MAX_TAG_FINDINGS:
                self.targets.add(key)
                self.findings += judge_target(self.ctx, self.scanner_id, target.value, args,
                                              location=self.location, offset=self.offset(target.index))
        trust = fields.get("trust_remote_code")
        if isinstance(trust, _Scalar) and trust.true and not self.trust_reported:
            self.trust_reported = True
            self.findings.append(finding("CFG003", self.scanner_id, "trust_remote_code is true",
                                         location=self.location, offset=self.offset(trust.index)))

    # -- the walk ---------------------------------------------------------------------------------
    def add_child(self, stack: list[_Frame], size: int, value: Any) -> None:
        """A finished node (of expanded `size`) becomes a child of the open collection."""
        cap = self.ctx.limits.max_config_nodes + 1
        if not stack:
            self.total = min(cap, self.total + size)
            if self.doc_index == 0 and self.keep_first:
                self.first_doc = value
            return
        parent = stack[-1]
        parent.size = min(cap, parent.size + size)
        if parent.is_map:
            if parent.key is _NO_KEY:
                parent.key = value.value if isinstance(value, _Scalar) else _COMPLEX_KEY
                return
            key, parent.key = parent.key, _NO_KEY
            if isinstance(key, str):
                if key in _INTERESTING:
                    parent.fields = parent.fields or {}
                    parent.fields[key] = value
                if parent.data is not None:
                    parent.data[key] = value
        elif parent.data is not None:
            parent.data.append(value)
        if parent.args is not None and isinstance(value, _Scalar) and value.text() is not None:
            parent.args.append(value.value)

    def run(self, events) -> None:
        yaml, _ = _yaml()
        limits = self.ctx.limits
        stack: list[_Frame] = []
        count = 0
        nodes = (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent, yaml.AliasEvent)
        for event in events:
            count += 1
            if count % 20_000 == 0:
                self.ctx.check_deadline()
            if isinstance(event, nodes):
                self.nodes += 1
                if self.nodes > limits.max_config_nodes:
                    self.limit_hit = f"more than {limits.max_config_nodes} YAML nodes"
                    return
            if isinstance(event, yaml.DocumentStartEvent):
                self.doc_index += 1
                self.anchors.clear()
                continue
            if isinstance(event, yaml.DocumentEndEvent):
                self.complete = len(self.findings)
                continue
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                if len(stack) >= limits.max_config_depth:
                    self.limit_hit = f"YAML nests deeper than {limits.max_config_depth} levels"
                    return
                index = event.start_mark.index if event.start_mark is not None else None
                self.tag(event.tag, index)
                keep = self.keep_first and self.doc_index == 0 and all(f.data is not None for f in stack)
                frame = _Frame(isinstance(event, yaml.MappingStartEvent), event.anchor, index, keep)
                if frame.is_map:
                    frame.key = _NO_KEY
                elif stack and stack[-1].is_map and stack[-1].key == "_args_":
                    frame.args = []
                if event.anchor:
                    self.open_anchors.add(event.anchor)
                stack.append(frame)
                continue
            if isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                frame = stack.pop()
                if frame.is_map:
                    self.close_mapping(frame)
                elif frame.args is not None and stack and stack[-1].is_map:
                    parent = stack[-1]
                    parent.fields = parent.fields or {}
                    parent.fields["_args_"] = frame.args
                if frame.anchor:
                    self.open_anchors.discard(frame.anchor)
                    self.anchors[frame.anchor] = frame.size
                self.add_child(stack, frame.size, frame.data)
                continue
            if isinstance(event, yaml.ScalarEvent):
                index = event.start_mark.index if event.start_mark is not None else None
                self.tag(event.tag, index)
                if event.anchor:
                    self.anchors[event.anchor] = 1
                self.add_child(stack, 1, _Scalar(event))
                continue
            if isinstance(event, yaml.AliasEvent):
                if event.anchor in self.open_anchors:
                    self.recursive = True
                    size = 1
                else:
                    size = self.anchors.get(event.anchor, 1)
                self.add_child(stack, size, None)


def analyse_yaml(text: str, ctx: ScanContext, scanner_id: str, *, location: str = "",
                 mlmodel: bool = False, named: bool = True) -> list[Finding]:
    """Findings for a YAML stream (every document of it). With `named` false (text that is not
    called YAML) only what the parser itself reads is reported: no parse errors, limits or
    pattern matches, so documentation quoting a payload stays quiet."""
    yaml, loader = _yaml()
    walk = _YamlWalk(text, ctx, scanner_id, location, keep_first=mlmodel)
    try:
        walk.run(yaml.parse(text, Loader=loader))
    except (yaml.YAMLError, RecursionError) as exc:
        if not named:
            return walk.findings[:walk.complete]
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        tags = {(f.rule_id, f.offset) for f in walk.findings}
        return [*walk.findings, finding("CFG302", scanner_id, f"YAML does not parse: {problem}", location=location,
                                        offset=None if mark is None else walk.offset(mark.index)),
                *(f for f in scan_tags_by_pattern(text, ctx, scanner_id, location=location)
                  if (f.rule_id, f.offset) not in tags)]
    out = walk.findings
    limit = ctx.limits.max_config_nodes
    if not named:
        return out
    if walk.limit_hit:
        tags = {(f.rule_id, f.offset) for f in out}
        out.append(finding("CFG301", scanner_id, f"{walk.limit_hit}; the rest was checked for python tags by "
                           "pattern only", location=location, offset=0))
        out += [f for f in scan_tags_by_pattern(text, ctx, scanner_id, location=location)
                if (f.rule_id, f.offset) not in tags]
        return out
    if walk.recursive:
        out.append(finding("CFG301", scanner_id, "YAML alias refers to a node that contains it (recursive "
                           "structure)", location=location, offset=0))
    if walk.total > limit:
        out.append(finding("CFG301", scanner_id, f"YAML aliases expand to more than {limit} nodes "
                           "(billion laughs)", location=location, offset=0))
    if mlmodel:
        out += _mlmodel(walk.first_doc, scanner_id, location, walk.offset)
    return out


def _mlmodel(doc: Any, scanner_id: str, location: str, offset: OffsetMap) -> list[Finding]:
    out: list[Finding] = []
    flavors = doc.get("flavors") if isinstance(doc, dict) else None
    if not isinstance(flavors, dict):
        return out

    def text(value: Any) -> str | None:
        return value.text() if isinstance(value, _Scalar) else None

    for flavor, spec in flavors.items():
        if not isinstance(spec, dict):
            continue
        loader = text(spec.get("loader_module"))
        if loader is not None and loader.split(".", 1)[0] != "mlflow":
            out.append(finding("CFG205", scanner_id, f"flavor {flavor}: loader_module {loader} is imported and its "
                               "_load_pyfunc called at load", location=location,
                               offset=offset(spec["loader_module"].index), flavor=flavor, module=loader))
        reasons = []
        code = text(spec.get("code"))
        if code:
            reasons.append(f"code path {code!r} is put on sys.path")
        fmt = text(spec.get("serialization_format"))
        if fmt in ("cloudpickle", "pickle"):
            reasons.append(f"model restored with {fmt}")
        elif "cloudpickle_version" in spec or "python_model" in spec:
            reasons.append("python model restored with cloudpickle")
        if reasons:
            out.append(finding("CFG206", scanner_id, f"flavor {flavor}: " + "; ".join(reasons), location=location,
                               flavor=flavor))
    return out


def has_python_tags(text: str) -> bool:
    """Cheap test used on text of unknown kind: worth analysing as YAML?"""
    return "!!python/" in text or PY_TAG in text
