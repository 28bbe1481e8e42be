"""Python source shipped next to models: remote code (modeling_*.py, configuration_*.py),
custom handlers and pipelines.

The file is parsed with `ast.parse` and walked; it is never compiled to run, imported or
executed. What matters is what importing it does: module-level statements, class bodies,
decorators and default arguments run at import (transformers imports these files under
trust_remote_code), while function bodies run only when called. Calls are resolved through
import aliases (`import subprocess as sp`, `from os import system as s`, `__import__("os")`,
`getattr(os, "system")`, `sys.modules["os"]`) and judged against a table of capabilities made
for source code: the pickle policy's module-wide entries (`os:**`, `sys:**`) fit a pickle, where
any call is suspicious, but not source, where `os.path.join` is everywhere. The policy is still
consulted for the capabilities it lists narrowly (network, native code, package installs...).
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass, field

from shardscan.model import Finding, Severity
from shardscan.scanners.base import ScanContext, finding

PROCESS, CODE, NATIVE, INSTALL, NETWORK, HUB, WRITE, DESERIALISE, IMPORT = (
    "process", "code", "native", "install", "network", "hub-download", "file-write", "deserialise",
    "computed-import")

#: (rule at import time, rule inside functions) per capability; None: not reported there.
RULES: dict[str, tuple[str, str | None]] = {
    PROCESS: ("CFG101", "CFG106"), CODE: ("CFG101", "CFG106"), NATIVE: ("CFG101", "CFG106"),
    INSTALL: ("CFG101", "CFG106"), NETWORK: ("CFG102", "CFG106"), HUB: ("CFG102", None),
    WRITE: ("CFG103", "CFG107"), DESERIALISE: ("CFG103", "CFG107"), IMPORT: ("CFG104", "CFG107"),
}
#: Downloads through ML hubs at import time are odd, not an attack: WARNING, not CRITICAL.
SEVERITY_OVERRIDE = {HUB: Severity.WARNING}

#: Exact callables (canonical dotted names).
CALLS: dict[str, str] = {
    **dict.fromkeys((
        "os.system", "os.popen", "os.fork", "os.forkpty", "os.startfile", "os.posix_spawn",
        "os.posix_spawnp", "platform.popen", "pty.spawn", "pty.fork", "subprocess.run",
        "subprocess.Popen", "subprocess.call", "subprocess.check_call", "subprocess.check_output",
        "subprocess.getoutput", "subprocess.getstatusoutput", "commands.getoutput",
        "commands.getstatusoutput", "asyncio.create_subprocess_exec",
        "asyncio.create_subprocess_shell", "pexpect.spawn", "pexpect.run", "os.popen2", "os.popen3",
        "os.popen4", "popen2.popen2", "popen2.popen3", "popen2.popen4"), PROCESS),
    **dict.fromkeys((
        "builtins.exec", "builtins.eval", "builtins.compile", "builtins.execfile", "runpy.run_path",
        "runpy.run_module", "runpy._run_code", "runpy._run_module_code", "code.interact",
        "code.InteractiveInterpreter", "code.InteractiveConsole", "code.compile_command",
        "codeop.compile_command", "types.FunctionType", "types.CodeType", "types.LambdaType",
        "marshal.loads", "marshal.load", "imp.load_source", "imp.load_compiled", "imp.load_dynamic",
        "cProfile.run", "cProfile.runctx", "profile.run", "profile.runctx", "pdb.run",
        "pdb.runeval", "torch.hub.load", "torch.hub._load_local"), CODE),
    **dict.fromkeys((
        "ctypes.CDLL", "ctypes.PyDLL", "ctypes.WinDLL", "ctypes.OleDLL", "ctypes.cdll.LoadLibrary",
        "ctypes.pydll.LoadLibrary", "ctypes.windll.LoadLibrary", "ctypes.CFUNCTYPE",
        "ctypes.util.find_library", "torch.ops.load_library", "torch.classes.load_library",
        "torch.utils.cpp_extension.load", "torch.utils.cpp_extension.load_inline"), NATIVE),
    **dict.fromkeys((
        "pip.main", "pip._internal.main", "pip._internal.cli.main.main", "ensurepip.bootstrap",
        "setuptools.sandbox.run_setup"), INSTALL),
    **dict.fromkeys((
        "urllib.request.urlopen", "urllib.request.urlretrieve", "urllib.urlopen",
        "urllib.urlretrieve", "urllib2.urlopen", "http.client.HTTPConnection",
        "http.client.HTTPSConnection", "httplib.HTTPConnection", "httplib.HTTPSConnection",
        "ftplib.FTP", "ftplib.FTP_TLS", "smtplib.SMTP", "smtplib.SMTP_SSL", "telnetlib.Telnet",
        "paramiko.SSHClient", "webbrowser.open", "webbrowser.open_new", "webbrowser.open_new_tab",
        "urllib3.PoolManager", "urllib3.request", "aiohttp.ClientSession", "aiohttp.request",
        "xmlrpc.client.ServerProxy", "wget.download", "torch.hub.load_state_dict_from_url",
        "torch.hub.download_url_to_file"), NETWORK),
    **{f"{m}.{f}": NETWORK for m in ("requests", "httpx")
       for f in ("get", "post", "put", "patch", "delete", "head", "options", "request", "stream")},
    **dict.fromkeys((
        "os.remove", "os.unlink", "os.rmdir", "os.removedirs", "os.rename", "os.renames",
        "os.replace", "os.truncate", "os.chmod", "os.chown", "os.lchown", "os.symlink", "os.link",
        "os.mkfifo", "os.mknod", "os.write", "shutil.rmtree", "shutil.move", "shutil.copy",
        "shutil.copy2", "shutil.copyfile", "shutil.copytree", "shutil.chown",
        "pathlib.Path.write_text", "pathlib.Path.write_bytes", "pathlib.Path.unlink",
        "pathlib.Path.rmdir", "pathlib.Path.rename", "pathlib.Path.replace", "pathlib.Path.touch",
        "pathlib.Path.symlink_to", "pathlib.Path.hardlink_to", "pathlib.Path.chmod"), WRITE),
    **dict.fromkeys((
        "pickle.load", "pickle.loads", "pickle.Unpickler", "_pickle.load", "_pickle.loads",
        "cPickle.load", "cPickle.loads", "dill.load", "dill.loads", "cloudpickle.load",
        "cloudpickle.loads", "jsonpickle.decode", "shelve.open", "torch.load", "joblib.load",
        "pandas.read_pickle", "numpy.load", "yaml.unsafe_load", "yaml.unsafe_load_all",
        "yaml.full_load", "yaml.full_load_all", "keras.models.load_model"), DESERIALISE),
    **dict.fromkeys((
        "importlib.util.spec_from_file_location", "importlib.machinery.SourceFileLoader"), IMPORT),
}
#: Capabilities reported when the callable is passed to another call rather than called.
HANDED_OVER = frozenset({PROCESS, CODE, NATIVE, INSTALL, NETWORK})
#: Name prefixes of process spawners in os (os.execv, os.spawnlp...).
OS_PREFIXES = ("os.exec", "os.spawn")
#: Opening a file is a write only with one of these mode letters.
WRITE_MODES = frozenset("wax+")
OPENERS = frozenset({"builtins.open", "io.open", "codecs.open", "gzip.open", "bz2.open", "lzma.open"})
#: Loaders taking a name as their first argument: literal names are followed, computed ones reported.
IMPORTERS = frozenset({"builtins.__import__", "importlib.import_module", "importlib.__import__"})
YAML_LOADS = frozenset({"yaml.load", "yaml.load_all"})
SAFE_YAML_LOADERS = frozenset({"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"})
#: Modules whose attributes fetched by computed name (getattr(os, x)) are reported.
SENSITIVE_MODULES = frozenset({"os", "subprocess", "builtins", "importlib", "socket", "pty", "ctypes",
                               "sys", "shutil", "runpy", "marshal", "pickle", "posix", "nt"})
#: Decoders whose output fed to exec/eval/a deserialiser is an obfuscated payload (CFG105).
DECODERS = frozenset({
    "base64.b64decode", "base64.b32decode", "base64.b16decode", "base64.b85decode",
    "base64.a85decode", "base64.decodebytes", "base64.decodestring", "base64.standard_b64decode",
    "base64.urlsafe_b64decode", "binascii.a2b_base64", "binascii.a2b_hex", "binascii.unhexlify",
    "binascii.a2b_uu", "zlib.decompress", "gzip.decompress", "bz2.decompress", "lzma.decompress",
    "codecs.decode", "marshal.loads", "builtins.bytes.fromhex", "builtins.bytearray.fromhex",
})
#: Policy capabilities trusted for source code (their entries are narrow); the others (process
#: `os:**`, side effects `sys:**`, file reads, getattr, `timeit:**`, `ctypes:**`,
#: `pkg_resources:**`...) name everyday source idioms and are covered by CALLS instead.
POLICY_CAPABILITIES = {"network": NETWORK, "code-object": CODE}
#: Network modules' pure helpers (URL parsing, status codes, TLS contexts).
NOT_NETWORK = ("urllib.parse", "http.HTTPStatus", "http.cookies", "ssl")
#: Dataset helpers that read bundled files or generate data (`fetch_*` are the downloads).
LOCAL_DATASETS = {"sklearn.datasets": ("load_", "make_")}
#: Any call into these modules is the capability.
MODULE_CALLS = {"pip": INSTALL, "ensurepip": INSTALL, "picklescan": CODE, "modelscan": CODE,
                "fickling": CODE, "modelaudit": CODE, "shardscan": CODE}
#: Hub and storage clients: downloads there are how models fetch weights; reported at import only.
HUB_MODULES = ("huggingface_hub", "transformers", "fsspec", "boto3", "botocore", "datasets",
               "sklearn.datasets", "torch.distributed", "torch.hub", "gcsfs", "s3fs", "diffusers")
BUILTIN_NAMES = frozenset(dir(builtins))


def _under(dotted: str, modules: tuple[str, ...]) -> bool:
    return any(dotted == m or dotted.startswith(m + ".") for m in modules)


class AstLimit(Exception):
    pass


@dataclass
class _Names:
    """What names in the module stand for: import aliases and simple assignments."""

    aliases: dict[str, str] = field(default_factory=dict)
    star_modules: list[str] = field(default_factory=list)
    tainted: set[str] = field(default_factory=set)


def _canonical(policy, dotted: str) -> str:
    if dotted.startswith(("__builtin__.", "__builtins__.")):
        dotted = "builtins." + dotted.split(".", 1)[1]
    module, _, name = dotted.rpartition(".")
    if not module:
        return dotted
    return f"{policy.canonical_module(module)}.{name}"


class _Analyser:
    def __init__(self, tree: ast.Module, source: bytes, ctx: ScanContext, scanner_id: str,
                 location: str, base_offset: int) -> None:
        self.tree, self.ctx, self.scanner_id, self.location = tree, ctx, scanner_id, location
        self.policy = ctx.policy
        self.names = _Names()
        self.findings: list[Finding] = []
        self.base_offset = base_offset
        starts = [0]
        pos = source.find(b"\n")
        while pos >= 0:
            starts.append(pos + 1)
            pos = source.find(b"\n", pos + 1)
        self.line_starts = starts
        self.seen: set[tuple[str, int, int, str]] = set()

    # -- names ------------------------------------------------------------------------------------
    def collect_names(self, nodes: list[ast.AST]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.names.aliases[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".", 1)[0]
                        self.names.aliases[top] = top
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    if alias.name == "*":
                        self.names.star_modules.append(node.module)
                    else:
                        self.names.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        # Simple assignments, in source order: `s = os.system`, `payload = b64decode(...)`.
        for node in nodes:
            if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None:
                continue
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            if not names:
                continue
            value = node.value
            if self._has_decoder(value):
                self.names.tainted.update(names)
            resolved = None
            if isinstance(value, (ast.Name, ast.Attribute, ast.Subscript)) or (
                    isinstance(value, ast.Call) and self.resolve(value.func) in (*IMPORTERS, "builtins.getattr")):
                resolved = self.resolve(value)
            if resolved:
                for name in names:
                    self.names.aliases.setdefault(name, resolved)

    def resolve(self, node: ast.AST, depth: int = 0) -> str | None:
        """The dotted name an expression stands for, or None."""
        if depth > 50:
            return None
        if isinstance(node, ast.Name):
            if node.id in self.names.aliases:
                return _canonical(self.policy, self.names.aliases[node.id])
            if node.id in ("__builtins__", "__builtin__"):
                return "builtins"
            if node.id in BUILTIN_NAMES:
                return f"builtins.{node.id}"
            for module in self.names.star_modules:
                candidate = _canonical(self.policy, f"{module}.{node.id}")
                if self._classify_name(candidate):
                    return candidate
            return None
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value, depth + 1)
            if base is None:
                return None
            if node.attr == "__dict__":
                return base
            return _canonical(self.policy, f"{base}.{node.attr}")
        if isinstance(node, ast.Subscript):
            key = node.slice
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                return None
            base = self.resolve(node.value, depth + 1)
            if base == "sys.modules":
                return key.value
            if base in ("builtins.globals", "builtins.vars", "builtins.locals"):
                return None
            if base is not None:
                return _canonical(self.policy, f"{base}.{key.value}")
            # globals()["__builtins__"], vars(builtins)["exec"]
            if isinstance(node.value, ast.Call):
                func = self.resolve(node.value.func, depth + 1)
                if func in ("builtins.globals", "builtins.locals") and key.value in (
                        "__builtins__", "__builtin__"):
                    return "builtins"
                if func == "builtins.vars" and node.value.args:
                    inner = self.resolve(node.value.args[0], depth + 1)
                    if inner:
                        return _canonical(self.policy, f"{inner}.{key.value}")
            return None
        if isinstance(node, ast.Call):
            func = self.resolve(node.func, depth + 1)
            if func in IMPORTERS and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and not arg.value.startswith("."):
                    return arg.value
                return None
            if func == "builtins.getattr" and len(node.args) >= 2:
                name = node.args[1]
                if isinstance(name, ast.Constant) and isinstance(name.value, str):
                    base = self.resolve(node.args[0], depth + 1)
                    return _canonical(self.policy, f"{base}.{name.value}") if base else None
                return None
            if func in ("pathlib.Path", "pathlib.PosixPath", "pathlib.WindowsPath"):
                return "pathlib.Path"  # an instance: its methods are judged as Path's
            return None
        return None

    # -- judgement --------------------------------------------------------------------------------
    def _classify_name(self, dotted: str) -> str | None:
        hit = CALLS.get(dotted)
        if hit:
            return hit
        if dotted.startswith(OS_PREFIXES):
            return PROCESS
        module, _, name = dotted.rpartition(".")
        if not module:
            return None
        if module == "socket" and name not in ("gethostname", "getfqdn"):
            return NETWORK
        top = module.split(".", 1)[0]
        if top in MODULE_CALLS:
            return MODULE_CALLS[top]
        if _under(dotted, NOT_NETWORK) or name.startswith(LOCAL_DATASETS.get(module, ("\0",))):
            return None
        verdict = self.policy.judge(module, name)
        if verdict.kind == "deny" and verdict.capability in POLICY_CAPABILITIES:
            capability = POLICY_CAPABILITIES[verdict.capability]
            if capability == NETWORK and _under(dotted, HUB_MODULES):
                return HUB
            return capability
        return None

    def classify(self, call: ast.Call, dotted: str) -> str | None:
        if dotted in OPENERS:
            return WRITE if self._write_mode(call) else None
        if dotted in ("os.open",):
            flags = ast.unparse(call.args[1]) if len(call.args) > 1 else ""
            return WRITE if any(f in flags for f in ("O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND", "O_TRUNC")) else None
        if dotted in YAML_LOADS:
            return None if self._safe_yaml_loader(call) else DESERIALISE
        if dotted in IMPORTERS:
            arg = call.args[0] if call.args else None
            literal = isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            return None if literal else IMPORT
        if dotted == "builtins.getattr" and len(call.args) >= 2:
            name = call.args[1]
            if isinstance(name, ast.Constant):
                return None
            base = self.resolve(call.args[0])
            return IMPORT if base in SENSITIVE_MODULES else None
        return self._classify_name(dotted)

    @staticmethod
    def _write_mode(call: ast.Call) -> bool:
        mode = call.args[1] if len(call.args) > 1 else next(
            (k.value for k in call.keywords if k.arg == "mode"), None)
        return isinstance(mode, ast.Constant) and isinstance(mode.value, str) and bool(WRITE_MODES & set(mode.value))

    def _safe_yaml_loader(self, call: ast.Call) -> bool:
        loader = call.args[1] if len(call.args) > 1 else next(
            (k.value for k in call.keywords if k.arg == "Loader"), None)
        if loader is None:
            return False
        name = self.resolve(loader) or ""
        return name.rsplit(".", 1)[-1] in SAFE_YAML_LOADERS

    def _has_decoder(self, node: ast.AST) -> bool:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call):
                func = self.resolve(sub.func)
                if func in DECODERS:
                    return True
                # "...".decode("rot13") / bytes.fromhex via an instance
                if isinstance(sub.func, ast.Attribute) and sub.func.attr == "fromhex":
                    return True
            elif isinstance(sub, ast.Name) and sub.id in self.names.tainted:
                return True
        return False

    # -- walk -------------------------------------------------------------------------------------
    def run(self) -> None:
        limit = self.ctx.limits.max_ast_nodes
        all_nodes: list[ast.AST] = []
        for count, node in enumerate(ast.walk(self.tree), 1):
            if count > limit:
                raise AstLimit(f"more than {limit} syntax nodes")
            if count % 50_000 == 0:
                self.ctx.check_deadline()
            if isinstance(node, (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign)):
                all_nodes.append(node)
        self.collect_names(all_nodes)
        # (node, scope): scope is "" at import time, else the function (or __main__ block).
        stack: list[tuple[ast.AST, str]] = [(self.tree, "")]
        count = 0
        while stack:
            node, scope = stack.pop()
            count += 1
            if count % 50_000 == 0:
                self.ctx.check_deadline()
            if isinstance(node, ast.Call):
                self.check_call(node, scope)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self._check_decorators(node, scope)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = f"{scope}.{node.name}" if scope else node.name
                stack += [(n, scope) for n in node.decorator_list]
                stack += [(n, scope) for n in (*node.args.defaults, *node.args.kw_defaults) if n is not None]
                stack += [(n, inner) for n in node.body]
                continue
            if isinstance(node, ast.Lambda):
                stack += [(n, scope) for n in (*node.args.defaults, *node.args.kw_defaults) if n is not None]
                stack.append((node.body, scope or "<lambda>"))
                continue
            if isinstance(node, ast.ClassDef):
                # The class body runs when the class is defined: same scope as the class.
                stack += [(n, scope) for n in (*node.decorator_list, *node.bases, *node.keywords, *node.body)]
                continue
            if isinstance(node, ast.If) and not scope and self._is_main_guard(node.test):
                stack += [(n, "__main__") for n in node.body]
                stack += [(n, scope) for n in node.orelse]
                continue
            stack += [(child, scope) for child in ast.iter_child_nodes(node)]

    def _check_decorators(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, scope: str) -> None:
        """`@os.system` calls os.system with the function when the definition runs."""
        for decorator in node.decorator_list:
            if not isinstance(decorator, ast.Call):
                call = ast.Call(func=decorator, args=[ast.Name(id=node.name, ctx=ast.Load())], keywords=[])
                self.check_call(ast.copy_location(call, decorator), scope)

    @staticmethod
    def _is_main_guard(test: ast.AST) -> bool:
        if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
            return False
        sides = [test.left, test.comparators[0]]
        return (any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
                and any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides))

    def check_call(self, call: ast.Call, scope: str) -> None:
        self._check_handed_over(call, scope)
        dotted = self.resolve(call.func)
        if dotted is None:
            # getattr(os, "sys" + "tem")(...) and friends: the inner call is checked on its own.
            return
        capability = self.classify(call, dotted)
        payload = capability in (CODE, DESERIALISE) and any(
            self._has_decoder(arg) for arg in (*call.args, *(k.value for k in call.keywords)))
        if payload:
            self.report("CFG105", call, scope, dotted, CODE,
                        f"{dotted}() runs a decoded payload {self._where(scope)}")
            return
        if capability is None:
            return
        import_rule, function_rule = RULES[capability]
        rule_id = function_rule if scope else import_rule
        if rule_id is None:
            return
        severity = SEVERITY_OVERRIDE.get(capability) if not scope else None
        self.report(rule_id, call, scope, dotted, capability,
                    f"{dotted}() ({capability}) {self._where(scope)}", severity)

    def _check_handed_over(self, call: ast.Call, scope: str) -> None:
        """`atexit.register(os.system, cmd)`, `Thread(target=os.system)`, `map(exec, srcs)`: a
        dangerous callable handed to another call is called by it."""
        for arg in (*call.args, *(k.value for k in call.keywords)):
            if not isinstance(arg, (ast.Name, ast.Attribute)):
                continue
            dotted = self.resolve(arg)
            capability = self._classify_name(dotted) if dotted else None
            if capability not in HANDED_OVER:
                continue
            import_rule, function_rule = RULES[capability]
            receiver = self.resolve(call.func) or ast.unparse(call.func)[:60]
            self.report(function_rule if scope else import_rule, arg, scope, dotted, capability,
                        f"{dotted} ({capability}) handed to {receiver}() {self._where(scope)}")

    @staticmethod
    def _where(scope: str) -> str:
        if not scope:
            return "at import time"
        if scope == "__main__":
            return "when run as a script"
        return f"in {scope}(), when called"

    def report(self, rule_id: str, node: ast.AST, scope: str, dotted: str, capability: str, message: str,
               severity: Severity | None = None) -> None:
        line = getattr(node, "lineno", 0)
        col = getattr(node, "col_offset", 0)
        key = (rule_id, line, col, dotted)
        if key in self.seen:
            return
        self.seen.add(key)
        offset = None
        if 0 < line <= len(self.line_starts):
            offset = self.base_offset + self.line_starts[line - 1] + col
        self.findings.append(finding(rule_id, self.scanner_id, f"line {line}: {message}", offset=offset,
                                     location=self.location, severity=severity, callable=dotted,
                                     capability=capability, line=line, scope=scope or "<module>"))


def analyse_python(source: bytes, ctx: ScanContext, scanner_id: str, *, location: str = "",
                   base_offset: int = 0) -> list[Finding]:
    """Findings for one Python source file (bytes, so a coding cookie is honoured)."""
    try:
        tree = ast.parse(source, type_comments=False)
    except SyntaxError as exc:
        offset = None
        return [finding("CFG302", scanner_id, f"Python source does not parse: {exc.msg} (line {exc.lineno})",
                        offset=offset, location=location, line=exc.lineno)]
    except (ValueError, RecursionError, MemoryError, OverflowError) as exc:
        return [finding("CFG301", scanner_id,
                        f"Python source is too deeply nested or too large to parse: {type(exc).__name__}",
                        location=location, offset=0)]
    analyser = _Analyser(tree, source, ctx, scanner_id, location, base_offset)
    try:
        analyser.run()
    except AstLimit as exc:
        analyser.findings.append(finding("CFG301", scanner_id, f"Python source has {exc}; the rest was not "
                                         "analysed", location=location, offset=0))
    except RecursionError:
        analyser.findings.append(finding("CFG301", scanner_id, "Python source nests expressions too deeply "
                                         "to analyse", location=location, offset=0))
    return analyser.findings
