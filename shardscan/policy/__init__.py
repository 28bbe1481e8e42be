"""The pickle policy: one shipped, versioned file that judges every imported callable.

The pickle machine only extracts facts (this global was imported, called, handed to that
callable). Judgement happens here, against `pickle.toml`: an allowlist of what real
checkpoints use, a capability denylist that maps to rule ids, module aliases, and the roles
that the machine needs to follow payloads (loaders, decoders, code builders, forwarders).
Nothing is imported: the verdict never depends on what is installed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Literal

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

POLICY_FILE = "pickle.toml"

Kind = Literal["deny", "allow", "unknown"]


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: Kind
    module: str
    name: str
    rule_id: str | None = None
    capability: str | None = None
    reason: str = ""


class _Patterns:
    """`module:name` entries: exact, `module:*` (any name), `module:**` (module and submodules).

    A denied name also covers its attributes (`builtins:eval` covers `eval.__call__`).
    """

    def __init__(self) -> None:
        self.exact: dict[tuple[str, str], str] = {}
        self.modules: dict[str, str] = {}
        self.trees: dict[str, str] = {}

    def add(self, entry: str, value: str) -> None:
        module, sep, name = entry.partition(":")
        if not sep or not module or not name:
            raise ValueError(f"policy entry {entry!r} is not module:name")
        if name == "*":
            self.modules[module] = value
        elif name == "**":
            self.trees[module] = value
        else:
            self.exact[(module, name)] = value

    def match(self, module: str, name: str, *, attributes: bool) -> str | None:
        hit = self.exact.get((module, name))
        if hit is not None:
            return hit
        if attributes and "." in name:
            parts = name.split(".")
            for i in range(len(parts) - 1, 0, -1):
                hit = self.exact.get((module, ".".join(parts[:i])))
                if hit is not None:
                    return hit
        hit = self.modules.get(module)
        if hit is not None:
            return hit
        mod = module
        while True:
            hit = self.trees.get(mod)
            if hit is not None:
                return hit
            if "." not in mod:
                return None
            mod = mod.rsplit(".", 1)[0]


class PicklePolicy:
    def __init__(self, data: dict) -> None:
        self.version: str = data["version"]
        self._verdicts: dict[tuple[str, str], Verdict] = {}
        self.aliases: dict[str, str] = dict(data.get("aliases", {}))
        self.traversal_dunders: frozenset[str] = frozenset(data.get("traversal_dunders", ()))
        self.capability_rules: dict[str, str] = {}
        self._deny = _Patterns()
        for capability, spec in data.get("capabilities", {}).items():
            self.capability_rules[capability] = spec["rule"]
            for entry in spec["entries"]:
                self._deny.add(entry, capability)
        self._allow = _Patterns()
        for group in data.get("allow", ()):
            for entry in group["entries"]:
                self._allow.add(entry, group["reason"])
        roles = data.get("roles", {})
        self.roles: dict[str, _Patterns] = {}
        for role, entries in roles.items():
            patterns = _Patterns()
            if isinstance(entries, dict):
                for entry, value in entries.items():
                    patterns.add(entry, value)
            else:
                for entry in entries:
                    patterns.add(entry, role)
            self.roles[role] = patterns

    def canonical_module(self, module: str) -> str:
        """`posix` and `nt` are `os`, `__builtin__` is `builtins`, `numpy._core` is
        `numpy.core`: one spelling per module, by the longest aliased prefix."""
        prefix = module
        while True:
            alias = self.aliases.get(prefix)
            if alias is not None:
                return alias + module[len(prefix):]
            if "." not in prefix:
                return module
            prefix = prefix.rsplit(".", 1)[0]

    def candidates(self, module: str, name: str) -> Iterable[tuple[str, str]]:
        """Every (module, name) a GLOBAL may resolve to.

        A dotted name walks attributes from the module, and modules re-export the modules
        they import, so `pathlib` + `os.system` may be `os.system`: each prefix of the dotted
        name is also tried as a module of its own.
        """
        module = self.canonical_module(module)
        yield module, name
        parts = name.split(".")
        for i in range(1, len(parts)):
            prefix, rest = ".".join(parts[:i]), ".".join(parts[i:])
            yield self.canonical_module(f"{module}.{prefix}"), rest  # a submodule: torch + hub.load
            yield self.canonical_module(prefix), rest  # a re-exported module: pathlib + os.system

    def _judge_one(self, module: str, name: str) -> Verdict:
        capability = self._deny.match(module, name, attributes=True)
        if capability is not None:
            return Verdict("deny", module, name, self.capability_rules[capability], capability)
        reason = self._allow.match(module, name, attributes=False)
        if reason is not None:
            return Verdict("allow", module, name, reason=reason)
        return Verdict("unknown", module, name)

    def judge(self, module: str, name: str) -> Verdict:
        """Deny beats allow; a dotted name is judged at every module it may resolve to."""
        key = (module, name)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._verdicts[key] = self._judge(module, name)
        return verdict

    def _judge(self, module: str, name: str) -> Verdict:
        parts = name.split(".")
        if any(part in self.traversal_dunders for part in parts):
            return Verdict("deny", self.canonical_module(module), name,
                           self.capability_rules["import-machinery"], "import-machinery",
                           "walks dunder attributes to reach other objects")
        first: Verdict | None = None
        for mod, nm in self.candidates(module, name):
            verdict = self._judge_one(mod, nm)
            if verdict.kind == "deny":
                return verdict
            if first is None:
                first = verdict
        assert first is not None
        return first

    def role(self, role: str, module: str, name: str) -> str | None:
        """The role value of a callable (`loaders`, `decoders`, ...) at any module it may be."""
        patterns = self.roles.get(role)
        if patterns is None:
            return None
        for mod, nm in self.candidates(module, name):
            hit = patterns.match(mod, nm, attributes=False)
            if hit is not None:
                return hit
        return None


@lru_cache(maxsize=1)
def load_policy() -> PicklePolicy:
    text = resources.files(__package__).joinpath(POLICY_FILE).read_text("utf-8")
    return PicklePolicy(tomllib.loads(text))
