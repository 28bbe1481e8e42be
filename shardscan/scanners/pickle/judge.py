"""From machine facts to findings: one place applies the severity ladder.

- CRITICAL: a denylisted capability is referenced at all; a function built from bytecode or the
  result of a nested deserialisation is called; BUILD patches a module or function.
- WARNING: a callable outside both lists is called; bytecode is built but never called; a
  global's name is computed at load time.
- INFO: a class outside the allowlist is only allocated (NEWOBJ, copyreg reconstructors) and
  given state, or a global is only imported.
Findings for the same global are aggregated: one finding per (rule, global) with a count.
"""

from __future__ import annotations

from typing import Any

from shardscan.model import Finding, Severity
from shardscan.scanners.base import ScanContext, finding, matches_blacklist
from shardscan.scanners.pickle.machine import Facts
from shardscan.scanners.pickle.values import Global

#: Uses of an unknown global, strongest first, and the rule each one gets.
UNKNOWN_USE_RULES: tuple[tuple[frozenset[str], str, str], ...] = (
    (frozenset({"call", "new-ex"}), "PKL201", "is called"),
    (frozenset({"new", "build"}), "PKL204", "is instantiated without its constructor"),
)


def _aggregate(globals_: list[Global], key: Any) -> dict[Any, list[Global]]:
    groups: dict[Any, list[Global]] = {}
    for g in globals_:
        groups.setdefault(key(g), []).append(g)
    return groups


def judge(facts: Facts, ctx: ScanContext, scanner_id: str) -> list[Finding]:
    out: list[Finding] = []
    policy = ctx.policy
    for (module, name), group in _aggregate(facts.globals, lambda g: (g.module, g.name)).items():
        first = group[0]
        verdict = first.verdict
        uses = sorted(set().union(*(g.uses for g in group)))
        evidence = dict(module=module, name=name, opcode=first.opcode, count=len(group),
                        uses=",".join(uses) or "imported")
        if matches_blacklist(f"{module}.{name}", ctx.blacklist):
            out.append(finding("BLK001", scanner_id, f"global {module}.{name} matches --blacklist",
                               offset=first.offset, **evidence))
        if verdict is None or verdict.kind == "allow":
            continue
        if verdict.kind == "deny":
            if policy.role("builders", module, name) is not None:
                continue  # judged by what happens to the code object it builds
            if uses == ["attribute"]:
                continue  # only getattr(<global>, "<name>"): the resulting global is judged
            resolved = f"{verdict.module}.{verdict.name}"
            via = "" if resolved == f"{module}.{name}" else f" (resolves to {resolved})"
            dormant = all(g.carriage_return for g in group)
            note = " once '\\r\\n' line endings become '\\n' (CPython fails on the '\\r' as written)" if dormant else ""
            out.append(finding(
                verdict.rule_id or "PKL101", scanner_id,
                f"{first.opcode} references {module}.{name}{via}: {verdict.capability}{note}",
                offset=first.offset, capability=verdict.capability,
                severity=Severity.WARNING if dormant else None, **evidence))
            continue
        all_uses = set(uses)
        for use_set, rule_id, text in UNKNOWN_USE_RULES:
            if all_uses & use_set:
                out.append(finding(rule_id, scanner_id, f"{module}.{name} {text}",
                                   offset=first.offset, **evidence))
                break
        else:
            out.append(finding("PKL205", scanner_id, f"{module}.{name} is imported",
                               offset=first.offset, **evidence))

    latent = [c for c in facts.code_objects if not c.called]
    for qualname, group in _aggregate([c.builder for c in latent], lambda g: g.qualname).items():
        out.append(finding("PKL202", scanner_id,
                           f"{qualname} builds code that is not called while loading",
                           offset=group[0].offset, builder=qualname, count=len(group)))
    for event in facts.events:
        out.append(finding(event.rule_id, scanner_id, event.message, offset=event.offset,
                           **event.evidence))
    return out
