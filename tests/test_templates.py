"""Static chat-template analysis (CVE-2024-34359 SSTI), without rendering and without jinja2.

Real published templates live in tests/fixtures/gguf/templates/; payloads follow the published
CVE-2024-34359 proof of concept and the usual Jinja SSTI obfuscations.
"""

from __future__ import annotations

import inspect
import sys
import time
from pathlib import Path

import pytest

from shardscan.limits import Limits
from shardscan.model import Severity
from shardscan.scanners import templates
from shardscan.scanners.templates import analyse, analyse_template, fold_constants, tokenise

TEMPLATES = sorted((Path(__file__).parent / "fixtures" / "gguf" / "templates").glob("*.jinja"))


def found(text: str, **kw) -> set[tuple[str, Severity]]:
    return {(f.rule_id, f.severity) for f in analyse_template(text, scanner_id="t", **kw)}


def rule_ids(text: str) -> set[str]:
    return {r for r, _ in found(text)}


def worst(text: str) -> Severity | None:
    return max((s for _, s in found(text)), default=None)


C, W = Severity.CRITICAL, Severity.WARNING


# --- the interface other scanners call ------------------------------------------------------------


def test_signature_is_exactly_the_published_one():
    sig = inspect.signature(analyse_template)
    assert list(sig.parameters) == ["text", "scanner_id", "location", "offset"]
    assert sig.parameters["scanner_id"].kind is inspect.Parameter.KEYWORD_ONLY
    assert sig.parameters["location"].default == "" and sig.parameters["offset"].default is None


def test_location_offset_and_scanner_are_carried():
    [f, *_] = analyse_template("{{ x.__globals__ }}", scanner_id="text", location="tokenizer_config.json",
                               offset=1234)
    assert (f.scanner_id, f.location, f.offset, f.evidence["position"]) == ("text", "tokenizer_config.json", 1234, 5)


def test_jinja2_is_never_imported():
    analyse_template("{{ x }}", scanner_id="t")
    assert "jinja2" not in sys.modules
    source = Path(templates.__file__).read_text("utf-8")
    assert "import jinja2" not in source and "from jinja2" not in source


# --- real templates are clean ---------------------------------------------------------------------


def test_fixture_templates_cover_the_families():
    names = {p.stem for p in TEMPLATES}
    for family in ("llama2", "llama3", "chatml", "mistral", "gemma", "phi3", "deepseek", "tools"):
        assert any(family in n for n in names), family


@pytest.mark.parametrize("path", TEMPLATES, ids=[p.stem for p in TEMPLATES])
def test_real_templates_give_no_finding(path):
    assert analyse_template(path.read_text("utf-8"), scanner_id="t") == []


@pytest.mark.parametrize("text", [
    "{%- set ns = namespace(found=false) -%}{%- set ns.found = true -%}{{ ns.found }}",
    "{{ raise_exception('Only user and assistant roles are supported!') }}",
    "{{ tools | tojson(indent=4) }}{{ message.content.split('</think>')[-1].strip() }}",
    "{% if 'tool_calls' in message %}{{ '{\"name\": \"' + tool_call.name + '\"}' }}{% endif %}",
    "{% set d = {'a': {'b': [1, 2]}} %}{{ d['a']['b'][0] }}{{ \"}}\" }}{{ '%}' }}",
    "{% raw %}{{ ''.__class__.__mro__ }}{% endraw %}",
    "{# {{ cycler.__init__.__globals__.os }} #}{{ x }}",
    "This text mentions __class__ and os.system('x') outside any tag.",
    "{% for message in messages %}{% if message.class == 'important' %}{{ message.content }}{% endif %}{% endfor %}",
    "{%- call(user) render(users) -%}{{ user }}{%- endcall %}",
    "{{ tool_call.function.arguments | items | list }}{{ x.run }}{{ loop.index0 % 2 }}",
    "{{ strftime_now('%Y-%m-%d') }}{{ '%s' % name }}{{ 'a' ~ 'b' }}",
    "{{ messages | selectattr('role', 'equalto', 'user') | list | length }}",
    "{% set _args = tc.arguments or {} %}{% for k, v in _args.items() %}{{ k }}{% endfor %}",
    "{{ '\\n\\n' + message['content'] | trim }}{{ \"Tool: \\\"x\\\"\" }}",
    "",
], ids=lambda t: t[:40])
def test_benign_constructs(text):
    assert analyse_template(text, scanner_id="t") == []


# --- SSTI payloads ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    # CVE-2024-34359 proof of concept
    ("{% for c in [].__class__.__base__.__subclasses__() %}{% if c.__name__ == 'catch_warnings' %}"
     "{{ c()._module.__builtins__['__import__']('os').system('echo pwned') }}{% endif %}{% endfor %}",
     {("TPL101", C), ("TPL102", C), ("TPL103", W)}),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", {("TPL101", C), ("TPL103", W)}),
    ("{{ cycler.__init__.__globals__.os.popen('echo pwned').read() }}", {("TPL101", C), ("TPL102", C), ("TPL103", W)}),
    ("{{ lipsum.__globals__['os'].popen('id').read() }}", {("TPL101", C), ("TPL102", C)}),
    ("{{ joiner.__init__.__globals__.__builtins__.__import__('subprocess').check_output('id') }}",
     {("TPL101", C), ("TPL102", C), ("TPL103", W)}),
    ("{{ namespace.__init__.__globals__.os.system('id') }}", {("TPL101", C), ("TPL102", C), ("TPL103", W)}),
    ("{{ self.__init__.__globals__['__builtins__'] }}", {("TPL101", C), ("TPL103", W)}),
    ("{{ request.application.__globals__.__builtins__ }}", {("TPL101", C), ("TPL103", W)}),
    ("{{ config.__class__.__init__.__globals__['os'].system('id') }}", {("TPL101", C), ("TPL102", C), ("TPL103", W)}),
    ("{{ __builtins__['eval']('1') }}", {("TPL101", C), ("TPL102", C)}),
    ("{{ eval('1') }}", {("TPL102", C)}),
    ("{{ os.popen('id') }}", {("TPL102", C)}),
    ("{{ x|map(attribute='__globals__')|list }}", {("TPL101", C)}),
    # lesser constructs
    ("{{ x.__class__ }}", {("TPL103", W)}),
    ("{{ c()._module }}", {("TPL103", W)}),
    ("{{ config.items() }}", {("TPL103", W)}),
    ("{{ request.args }}", {("TPL103", W)}),
    ("{% include 'other.jinja' %}", {("TPL103", W)}),
    ("{% import 'macros.jinja' as m %}", {("TPL103", W)}),
    ("{{ x|attr(name) }}", {("TPL105", W)}),
    ("{{ ''|attr('__class__') }}", {("TPL103", W)}),
], ids=lambda v: v[:50] if isinstance(v, str) else None)
def test_payloads(text, expected):
    assert found(text) == expected


@pytest.mark.parametrize("text", [
    r"{{ request['application']['\x5f\x5fglobals\x5f\x5f']['\x5f\x5fbuiltins\x5f\x5f'] }}",
    r"{{ x|attr('\u005f\u005fglobals\u005f\u005f') }}",
    r"{{ x|attr('\U0000005f\U0000005fglobals__') }}",
    r"{{ x|attr('\137\137globals\137\137') }}",
    r"{{ x|attr('\N{LOW LINE}\N{LOW LINE}globals__') }}",
    "{{ x|attr('__glob'+'als__') }}",
    "{{ x|attr('__glob' ~ 'als__') }}",
    "{{ x|attr('__glob' 'als__') }}",
    "{{ x|attr(('__glo' ~ 'ba') ~ 'ls__') }}",
    "{{ x|attr(['__glo', 'bals__']|join) }}",
    "{{ x|attr(('__glo', 'bals__')|join('')) }}",
    "{{ x|attr('__slabolg__'|reverse) }}",
    "{{ x|attr('__slabolg__'[::-1]) }}",
    "{{ x|attr('%c%cglobals%c%c'|format(95, 95, 95, 95)) }}",
    "{{ x|attr('%s%sglobals%s%s' % ('_', '_', '_', '_')) }}",
    "{{ x|attr('{}{}globals{}{}'.format('_', '_', '_', '_')) }}",
    "{{ x|attr('XXglobalsXX'|replace('X', '_')) }}",
    "{{ x|attr('__GLOBALS__'|lower) }}",
    "{{ x|attr('_' * 2 + 'globals' + '_' * 2) }}",
    "{{ x[chr(95) ~ chr(95) ~ 'globals' ~ chr(95) ~ chr(95)] }}",
    "{% set n = '__glo' + 'bals__' %}{{ x|attr(n) }}",
])
def test_obfuscated_globals_is_critical(text):
    result = found(text)
    assert ("TPL101", C) in result and ("TPL105", W) in result, result


def test_obfuscated_full_chain_in_one_template():
    text = ("{{ ''|attr('\\x5f\\x5fcla' ~ 'ss\\x5f\\x5f')|attr(['__ba', 'se__']|join)"
            "|attr('__sessalcbus__'|reverse)()|attr('%c%cgetitem%c%c'|format(95,95,95,95))(1) }}")
    assert found(text) >= {("TPL101", C), ("TPL105", W)}


# --- tokeniser ------------------------------------------------------------------------------------


def test_tokeniser_handles_whitespace_control_comments_and_strings():
    tags = tokenise("a{{- x -}}b{%- if y %}{# c #}{%+ endif -%}{{ '}}' }}{{ {'k': 1} }}")
    assert [t.kind for t in tags] == ["{{", "{%", "{%", "{{", "{{"]
    assert [tok.value for tok in tags[3].tokens] == ["}}"]
    assert [tok.value for tok in tags[4].tokens] == ["{", "k", ":", 1, "}"]


def test_folding():
    [tag] = tokenise("{{ 'a' + 'b' ~ ('c' ~ 'd') }}")
    assert [t.value for t in fold_constants(tag.tokens)] == ["abcd"]
    [tag] = tokenise("{{ x + 'a' * 2 }}")
    assert [t.value for t in fold_constants(tag.tokens)] == ["x", "+", "aa"]


@pytest.mark.parametrize("text", [
    "{{ unclosed", "{{ 'unterminated }}", "{% if x %", "{# comment", "{{ (x ]] }}", "{{ a $ b }}",
    "{{ ')' }}{{ x) }}", "{{ '\\N{NOT A NAME}' }}",
])
def test_untokenisable_is_a_warning(text):
    assert found(text) == {("TPL104", W)}


def test_payload_around_a_syntax_error_is_still_seen():
    assert ("TPL101", C) in found("{{ ok }}{{ x.__globals__.os.popen('id') ")
    assert ("TPL101", C) in found("{{ x.__globals__ }}{{ 'unterminated }}")
    assert ("TPL101", C) in found("{{ 'unterminated }}{{ x.__globals__ }}")


def test_size_bound():
    text = "{{ x }}" * 100 + "{{ y.__globals__ }}"
    bounded = analyse(text, scanner_id="t", limits=Limits(max_template_chars=50))
    assert [(f.rule_id, f.severity) for f in bounded] == [("TPL104", W)]
    assert "TPL101" in rule_ids(text)


@pytest.mark.parametrize("text", [
    "{{ " + "(" * 50_000 + "x" + ")" * 50_000 + " }}",
    "{{ " + " + ".join(["'a'"] * 30_000) + " }}",
    "{{ " + " ~ ".join(["x"] * 30_000) + " }}",
    "{{ x }}" * 50_000,
    "{{ " + "[" * 20_000,
    "{{ '" + "\\x5f" * 100_000 + "' }}",
    "{{ (" * 50_000,
], ids=["parens", "concat", "names", "many-tags", "unclosed-brackets", "escapes", "many-broken-tags"])
def test_hostile_templates_are_bounded(text):
    started = time.monotonic()
    analyse_template(text, scanner_id="t")
    assert time.monotonic() - started < 5


def test_findings_per_rule_are_capped():
    text = "".join(f"{{{{ x.__d{i}__ }}}}" for i in range(50))
    assert len(analyse_template(text, scanner_id="t")) == templates.MAX_FINDINGS_PER_RULE
