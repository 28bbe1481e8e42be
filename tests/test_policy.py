"""The shipped pickle policy: every catalogued gadget is denied with the right rule, in every
spelling a pickle can use; what real checkpoints import is allowed; deny beats allow; and the
policy file itself is well-formed."""

from __future__ import annotations

import re
import sys
from collections import Counter
from importlib import resources
from pathlib import Path

import pytest

from shardscan.policy import load_policy
from shardscan.rules import BY_ID

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only
    import tomli as tomllib

POLICY = load_policy()
DATA = tomllib.loads(resources.files("shardscan.policy").joinpath("pickle.toml").read_text("utf-8"))
GLOBALS_TXT = Path(__file__).parent / "fixtures" / "benign" / "GLOBALS.txt"

# (module, name, rule): THREATS.md 4.1 G1-G21, 4.2 P-rows that name a global, 4.9 builders.
GADGETS = [
    # G1 os.system in its on-disk spellings
    ("os", "system", "PKL102"), ("posix", "system", "PKL102"), ("nt", "system", "PKL102"),
    ("posix", "popen", "PKL102"), ("nt", "spawnv", "PKL102"), ("os", "execvp", "PKL102"),
    # G2 exec/eval/compile, both builtins spellings
    ("builtins", "exec", "PKL101"), ("builtins", "eval", "PKL101"), ("builtins", "compile", "PKL101"),
    ("__builtin__", "eval", "PKL101"), ("__builtin__", "exec", "PKL101"), ("__builtin__", "execfile", "PKL101"),
    # G3 dotted names reaching a denied callable
    ("builtins", "eval.__call__", "PKL101"), ("__builtin__", "exec.__call__", "PKL101"),
    # G4 getattr(__import__('os'), 'system')
    ("builtins", "getattr", "PKL103"), ("__builtin__", "getattr", "PKL103"),
    ("builtins", "__import__", "PKL103"), ("__builtin__", "__import__", "PKL103"),
    # G5 operator gadgets + importlib
    ("_operator", "methodcaller", "PKL103"), ("operator", "methodcaller", "PKL103"),
    ("_operator", "attrgetter", "PKL103"), ("operator", "attrgetter", "PKL103"),
    ("_operator", "itemgetter", "PKL103"), ("operator", "itemgetter", "PKL103"),
    ("importlib", "import_module", "PKL103"), ("importlib._bootstrap", "_gcd_import", "PKL103"),
    # G6, G7
    ("pkgutil", "resolve_name", "PKL103"), ("pydoc", "locate", "PKL103"), ("pydoc", "pipepager", "PKL102"),
    # G8
    ("runpy", "_run_code", "PKL101"), ("runpy", "run_path", "PKL101"), ("runpy", "run_module", "PKL101"),
    # G9, G10
    ("pip", "main", "PKL109"), ("pip._internal.cli.main", "main", "PKL109"),
    ("pip._vendor.distlib.scripts", "ScriptMaker", "PKL109"),
    ("ensurepip", "_run_pip", "PKL109"), ("ensurepip", "bootstrap", "PKL109"), ("venv", "create", "PKL109"),
    # G11
    ("code", "InteractiveInterpreter.runcode", "PKL101"), ("code", "InteractiveInterpreter", "PKL101"),
    ("codeop", "compile_command", "PKL101"),
    ("idlelib.pyshell", "ModifiedInterpreter.runcode", "PKL101"),
    ("idlelib.pyshell", "ModifiedInterpreter.runcommand", "PKL101"),
    ("idlelib.run", "Executive.runcode", "PKL101"), ("idlelib.calltip", "get_entity", "PKL101"),
    ("idlelib.calltip", "Calltip.fetch_tip", "PKL101"),
    ("idlelib.autocomplete", "AutoComplete.get_entity", "PKL101"),
    ("idlelib.autocomplete", "AutoComplete.fetch_completions", "PKL101"),
    ("idlelib.debugobj", "ObjectTreeItem.SetText", "PKL101"),
    ("lib2to3.pgen2.grammar", "Grammar.loads", "PKL101"),
    ("lib2to3.pgen2.pgen", "ParserGenerator.make_label", "PKL101"),
    # G12 profilers and debuggers
    ("cProfile", "run", "PKL110"), ("cProfile", "runctx", "PKL110"), ("profile", "run", "PKL110"),
    ("profile", "Profile.run", "PKL110"), ("profile", "Profile.runctx", "PKL110"),
    ("trace", "Trace.run", "PKL110"), ("trace", "Trace.runctx", "PKL110"), ("timeit", "timeit", "PKL110"),
    ("timeit", "repeat", "PKL110"), ("timeit", "Timer", "PKL110"), ("bdb", "Bdb.run", "PKL110"),
    ("pdb", "run", "PKL110"), ("pdb", "Pdb.runeval", "PKL110"), ("doctest", "debug_script", "PKL110"),
    ("doctest", "debug_src", "PKL110"), ("builtins", "breakpoint", "PKL110"),
    # G13 numpy
    ("numpy.testing._private.utils", "runstring", "PKL111"), ("numpy.testing", "runstring", "PKL111"),
    ("numpy.f2py.crackfortran", "getlincoef", "PKL111"), ("numpy.f2py.crackfortran", "_eval_length", "PKL111"),
    ("numpy.f2py", "compile", "PKL111"), ("numpy", "f2py.compile", "PKL111"),
    # G14 torch internals
    ("torch.utils.collect_env", "run", "PKL111"), ("torch.utils.collect_env", "run_and_read_all", "PKL111"),
    ("torch._dynamo.guards", "GuardBuilder.get", "PKL111"),
    ("torch.fx.experimental.symbolic_shapes", "ShapeEnv.evaluate_guards_expression", "PKL111"),
    ("torch.jit.unsupported_tensor_ops", "execWrapper", "PKL111"),
    ("torch.utils.bottleneck.__main__", "run_cprofile", "PKL111"),
    ("torch.utils.bottleneck.__main__", "run_autograd_prof", "PKL111"),
    ("torch._inductor.codecache", "compile_file", "PKL111"),
    ("torch.serialization", "load", "PKL105"), ("torch", "load", "PKL105"),
    ("torch.hub", "load", "PKL111"), ("torch.hub", "load_state_dict_from_url", "PKL105"),
    ("torch.hub", "download_url_to_file", "PKL108"), ("torch", "hub.load", "PKL108"),
    ("torch.package", "PackageImporter", "PKL111"), ("torch.package.package_importer", "PackageImporter", "PKL111"),
    ("torch.utils.cpp_extension", "load_inline", "PKL106"), ("torch._ops", "ops.load_library", "PKL106"),
    ("torch.fx.graph_module", "reduce_graph_module", "PKL101"),
    ("torch.fx.graph_module", "_forward_from_src", "PKL101"),
    ("torch.utils.benchmark", "Timer", "PKL111"), ("torch", "compile", "PKL111"),
    ("torch._utils", "_import_dotted_name", "PKL103"),
    ("torch.serialization", "add_safe_globals", "PKL112"),
    ("torch.nn.modules.module", "register_module_forward_hook", "PKL113"),
    # G15 pickle-in-pickle
    ("pickle", "loads", "PKL105"), ("_pickle", "loads", "PKL105"), ("cPickle", "loads", "PKL105"),
    ("pickle", "load", "PKL105"), ("_pickle", "Unpickler", "PKL105"), ("pickle", "_loads", "PKL105"),
    ("torch.utils._config_module", "ConfigModule.load_config", "PKL105"),
    ("torch._functorch.config", "load_config", "PKL105"),
    ("torch.utils.data.datapipes.utils.decoder", "basichandlers", "PKL105"),
    ("torch.storage", "_load_from_bytes", "PKL105"), ("pandas", "read_pickle", "PKL105"),
    ("pandas.io.pickle", "read_pickle", "PKL105"), ("numpy", "load", "PKL105"),
    ("numpy.lib.npyio", "load", "PKL105"), ("numpy.lib._npyio_impl", "load", "PKL105"),
    ("joblib", "load", "PKL105"), ("joblib.numpy_pickle", "load", "PKL105"), ("dill", "loads", "PKL105"),
    ("dill._dill", "loads", "PKL105"), ("cloudpickle", "loads", "PKL105"), ("shelve", "open", "PKL105"),
    ("yaml", "unsafe_load", "PKL105"), ("torch.jit", "load", "PKL105"),
    # G16 subprocess in disguise
    ("asyncio.unix_events", "_UnixSubprocessTransport._start", "PKL102"),
    ("asyncio", "create_subprocess_shell", "PKL102"), ("asyncio.subprocess", "create_subprocess_exec", "PKL102"),
    ("multiprocessing.util", "spawnv_passfds", "PKL102"), ("multiprocessing", "Process", "PKL102"),
    ("_posixsubprocess", "fork_exec", "PKL102"), ("uuid", "_get_command_stdout", "PKL102"),
    ("uuid", "_popen", "PKL102"), ("_osx_support", "_read_output", "PKL102"),
    ("_aix_support", "_read_cmd_output", "PKL102"), ("imaplib", "IMAP4_stream", "PKL102"),
    ("_pyrepl.pager", "pipe_pager", "PKL102"), ("pydoc", "tempfilepager", "PKL102"), ("pty", "spawn", "PKL102"),
    ("test.support.script_helper", "assert_python_ok", "PKL102"),
    ("test.support.script_helper", "run_python_until_end", "PKL102"),
    ("mlflow.projects.backend.local", "_run_entry_point", "PKL111"),
    ("mlflow.utils.process", "_exec_cmd", "PKL111"),
    ("subprocess", "Popen", "PKL102"), ("subprocess", "check_output", "PKL102"), ("subprocess", "run", "PKL102"),
    ("subprocess", "getoutput", "PKL102"), ("commands", "getoutput", "PKL102"),
    ("numpy.distutils.exec_command", "exec_command", "PKL102"), ("pandas", "read_clipboard", "PKL102"),
    # G17 code objects, G4.9 dill / cloudpickle builders (also vendored copies)
    ("types", "FunctionType", "PKL104"), ("types", "CodeType", "PKL104"), ("types", "LambdaType", "PKL104"),
    ("marshal", "loads", "PKL104"), ("_marshal", "loads", "PKL104"),
    ("cloudpickle.cloudpickle", "_make_function", "PKL104"),
    ("cloudpickle.cloudpickle", "_builtin_type", "PKL104"),
    ("cloudpickle.cloudpickle", "_make_skeleton_class", "PKL104"),
    ("cloudpickle.cloudpickle_fast", "_function_setstate", "PKL104"),
    ("joblib.externals.cloudpickle.cloudpickle", "_make_function", "PKL104"),
    ("srsly.cloudpickle.cloudpickle", "_builtin_type", "PKL104"),
    ("dill._dill", "_create_function", "PKL104"), ("dill._dill", "_create_code", "PKL104"),
    ("dill.dill", "_create_code", "PKL104"), ("dill._dill", "_load_type", "PKL104"),
    ("dill._dill", "_import_module", "PKL103"), ("dill._dill", "_get_attr", "PKL103"),
    ("dill._dill", "_eval_repr", "PKL101"), ("cloudpickle.cloudpickle", "subimport", "PKL103"),
    # G18 attribute walks from innocent modules
    ("pathlib", "os.system", "PKL102"), ("__main__", "os.system", "PKL102"),
    ("numpy", "__builtins__", "PKL103"), ("numpy", "size.__globals__", "PKL103"),
    ("collections", "OrderedDict.__class__", "PKL103"), ("torch", "Tensor.__reduce_ex__", "PKL103"),
    ("builtins", "object.__subclasses__", "PKL103"), ("sklearn.base", "subprocess.check_output", "PKL102"),
    # G19 native code
    ("ctypes", "CDLL", "PKL106"), ("ctypes", "cdll.LoadLibrary", "PKL106"), ("_ctypes", "dlopen", "PKL106"),
    ("ctypes.util", "find_library", "PKL106"), ("cffi", "FFI", "PKL106"), ("numpy.ctypeslib", "load_library", "PKL106"),
    # G20 files and exfiltration
    ("_io", "FileIO", "PKL107"), ("io", "FileIO", "PKL107"), ("io", "open", "PKL107"), ("_io", "open", "PKL107"),
    ("builtins", "open", "PKL107"), ("__builtin__", "file", "PKL107"), ("logging", "FileHandler", "PKL107"),
    ("logging.handlers", "RotatingFileHandler", "PKL107"), ("distutils.file_util", "write_file", "PKL107"),
    ("shutil", "rmtree", "PKL107"), ("shutil", "copyfile", "PKL107"), ("tempfile", "mkstemp", "PKL107"),
    ("pathlib", "Path.write_text", "PKL107"), ("pathlib", "PosixPath.write_bytes", "PKL107"),
    ("pathlib._local", "Path.write_text", "PKL107"), ("zipfile", "ZipFile.extractall", "PKL107"),
    ("tarfile", "open", "PKL107"), ("os", "remove", "PKL107"), ("posix", "unlink", "PKL107"),
    ("codecs", "open", "PKL107"), ("numpy", "memmap", "PKL107"), ("numpy", "ndarray.tofile", "PKL107"),
    ("torch", "save", "PKL107"), ("joblib", "dump", "PKL107"), ("sqlite3", "connect", "PKL107"),
    ("ssl", "get_server_certificate", "PKL108"), ("_ssl", "RAND_status", "PKL108"),
    ("socket", "create_connection", "PKL108"), ("_socket", "socket", "PKL108"),
    ("urllib.request", "urlopen", "PKL108"), ("urllib2", "urlopen", "PKL108"), ("urllib3", "PoolManager", "PKL108"),
    ("webbrowser", "open", "PKL108"), ("http.client", "HTTPSConnection", "PKL108"),
    ("httplib", "HTTPSConnection", "PKL108"), ("requests", "get", "PKL108"), ("requests.api", "get", "PKL108"),
    ("httpx", "get", "PKL108"), ("aiohttp", "ClientSession", "PKL108"), ("smtplib", "SMTP", "PKL108"),
    ("ftplib", "FTP", "PKL108"), ("telnetlib", "Telnet", "PKL108"), ("poplib", "POP3", "PKL108"),
    ("imaplib", "IMAP4", "PKL108"), ("nntplib", "NNTP", "PKL108"), ("xmlrpc.client", "ServerProxy", "PKL108"),
    ("xmlrpclib", "ServerProxy", "PKL108"), ("logging.handlers", "HTTPHandler", "PKL108"),
    ("huggingface_hub", "hf_hub_download", "PKL108"),
    # G21 side effects and other file or network primitives
    ("atexit", "register", "PKL113"), ("weakref", "finalize", "PKL113"), ("_weakref", "ref", "PKL113"),
    ("resource", "setrlimit", "PKL113"), ("signal", "signal", "PKL113"), ("signal", "alarm", "PKL113"),
    ("threading", "Thread", "PKL113"), ("threading", "Timer", "PKL113"), ("_thread", "start_new_thread", "PKL113"),
    ("sys", "exit", "PKL113"), ("sys", "modules", "PKL113"), ("builtins", "exit", "PKL113"),
    ("builtins", "quit", "PKL113"), ("builtins", "input", "PKL113"), ("getpass", "getuser", "PKL113"),
    ("xml.etree.ElementTree", "parse", "PKL113"), ("xml.etree.cElementTree", "parse", "PKL113"),
    ("xml.sax", "parse", "PKL113"), ("copyreg", "pickle", "PKL113"),
    ("mmap", "mmap", "PKL107"), ("dbm", "open", "PKL107"), ("dbm.dumb", "open", "PKL107"),
    ("gzip", "open", "PKL107"), ("bz2", "open", "PKL107"), ("lzma", "open", "PKL107"), ("glob", "glob", "PKL107"),
    ("py_compile", "compile", "PKL107"), ("compileall", "compile_dir", "PKL107"), ("fileinput", "input", "PKL107"),
    ("filecmp", "cmp", "PKL107"), ("http.server", "HTTPServer", "PKL108"), ("socketserver", "TCPServer", "PKL108"),
    ("SocketServer", "TCPServer", "PKL108"),
    # import machinery and dynamic lookup beyond G4-G7
    ("builtins", "setattr", "PKL103"), ("builtins", "delattr", "PKL103"), ("builtins", "globals", "PKL103"),
    ("builtins", "locals", "PKL103"), ("builtins", "vars", "PKL103"), ("imp", "load_source", "PKL103"),
    ("importlib.machinery", "SourceFileLoader", "PKL103"), ("zipimport", "zipimporter", "PKL103"),
    ("gc", "get_objects", "PKL103"), ("inspect", "getmembers", "PKL103"),
    ("copyreg", "add_extension", "PKL103"), ("copy_reg", "add_extension", "PKL103"),
    ("numpy.core", "_ufunc_reconstruct", "PKL103"), ("numpy._core", "_ufunc_reconstruct", "PKL103"),
    ("unittest.mock", "patch", "PKL103"), ("logging.config", "dictConfig", "PKL103"),
    ("logging.config", "fileConfig", "PKL101"), ("pandas", "eval", "PKL101"),
    ("pandas.core.frame", "DataFrame.query", "PKL101"), ("rlcompleter", "Completer.attr_matches", "PKL101"),
    ("site", "addsitedir", "PKL101"), ("_tkinter", "create", "PKL101"), ("builtins", "__build_class__", "PKL101"),
    # package installation
    ("setuptools", "setup", "PKL109"), ("distutils.core", "run_setup", "PKL109"),
    ("pkg_resources", "require", "PKL109"),
    # scanner tampering (P16)
    ("picklescan.scanner", "scan_pickle_bytes", "PKL112"), ("modelscan.modelscan", "ModelScan", "PKL112"),
    ("fickling", "load", "PKL112"), ("fickling.analysis", "check_safety", "PKL112"),
    ("modelaudit.core", "scan_file", "PKL112"), ("shardscan.policy", "load_policy", "PKL112"),
    ("torch._weights_only_unpickler", "_get_allowed_globals", "PKL112"),
]

# What real checkpoints import (torch.save, scikit-learn via pickle and joblib, numpy, pandas).
BENIGN = [
    ("collections", "OrderedDict"), ("_collections", "OrderedDict"), ("collections", "defaultdict"),
    ("collections", "Counter"), ("collections", "deque"), ("builtins", "set"), ("__builtin__", "set"),
    ("builtins", "frozenset"), ("builtins", "bytearray"), ("__builtin__", "bytearray"), ("builtins", "complex"),
    ("builtins", "slice"), ("builtins", "range"), ("__builtin__", "xrange"), ("__builtin__", "long"),
    ("builtins", "object"), ("copyreg", "_reconstructor"), ("copy_reg", "_reconstructor"),
    ("copyreg", "__newobj__"), ("_codecs", "encode"), ("codecs", "encode"),
    ("datetime", "datetime"), ("datetime", "timezone"), ("decimal", "Decimal"), ("fractions", "Fraction"),
    ("uuid", "UUID"), ("argparse", "Namespace"), ("pathlib", "PosixPath"), ("pathlib", "PurePosixPath"),
    ("pathlib._local", "PosixPath"), ("re", "_compile"), ("zoneinfo", "ZoneInfo"),
    ("zoneinfo", "ZoneInfo._unpickle"), ("pytz", "_p"), ("functools", "partial"), ("_functools", "partial"),
    # torch
    ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor"), ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"), ("torch._utils", "_rebuild_qtensor"),
    ("torch._utils", "_rebuild_sparse_tensor"), ("torch._utils", "_rebuild_meta_tensor_no_storage"),
    ("torch._utils", "_rebuild_wrapper_subclass"), ("torch._utils", "_rebuild_device_tensor_from_numpy"),
    ("torch._tensor", "_rebuild_from_type"), ("torch._tensor", "_rebuild_from_type_v2"),
    ("torch", "FloatStorage"), ("torch", "BFloat16Storage"), ("torch", "QInt8Storage"),
    ("torch.storage", "UntypedStorage"), ("torch.storage", "TypedStorage"), ("torch", "Size"),
    ("torch", "device"), ("torch", "Tensor"), ("torch", "float32"), ("torch", "bfloat16"), ("torch", "float16"),
    ("torch", "int64"), ("torch", "bool"), ("torch", "float8_e4m3fn"), ("torch", "per_tensor_affine"),
    ("torch", "strided"), ("torch.serialization", "_get_layout"), ("torch.nn.parameter", "Parameter"),
    ("torch.nn.modules.linear", "Linear"), ("torch.nn.modules.conv", "Conv2d"),
    ("torch.nn.modules.batchnorm", "BatchNorm2d"), ("torch.nn.modules.container", "Sequential"),
    ("torch.nn.modules.transformer", "TransformerEncoderLayer"), ("torch.nn.modules.activation", "ReLU"),
    ("torch.nn.modules.linear", "NonDynamicallyQuantizableLinear"), ("torch.nn.functional", "relu"),
    ("torch._C._nn", "gelu"), ("torch.optim.adam", "Adam"), ("torch.optim.sgd", "SGD"),
    ("torch.optim.lr_scheduler", "StepLR"), ("torch.optim.lr_scheduler", "CyclicLR._triangular_scale_fn"),
    ("torch.utils.hooks", "RemovableHandle"), ("torch.jit._pickle", "build_intlist"),
    ("__torch__", "TinyScripted"), ("__torch__.torch.nn.modules.linear", "Linear"),
    # numpy, spelled both ways
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"), ("numpy", "ndarray"),
    ("numpy", "dtype"), ("numpy", "float64"), ("numpy", "int64"), ("numpy", "bool_"), ("numpy", "mean"),
    ("numpy.dtypes", "Float32DType"), ("numpy.dtypes", "StringDType"),
    ("numpy.random._pickle", "__randomstate_ctor"), ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pickle", "__generator_ctor"), ("numpy.random._mt19937", "MT19937"),
    ("numpy.random._pcg64", "PCG64"), ("numpy.random._philox", "Philox"), ("numpy.random._sfc64", "SFC64"),
    ("numpy.ma.core", "_mareconstruct"),
    # joblib, scipy, scikit-learn
    ("joblib.numpy_pickle", "NumpyArrayWrapper"), ("joblib.numpy_pickle_compat", "NDArrayWrapper"),
    ("sklearn.externals.joblib.numpy_pickle", "NumpyArrayWrapper"),
    ("scipy.sparse._csr", "csr_matrix"), ("scipy.sparse._csr", "csr_array"), ("scipy.sparse.csr", "csr_matrix"),
    ("sklearn.linear_model._logistic", "LogisticRegression"), ("sklearn.pipeline", "Pipeline"),
    ("sklearn.ensemble._forest", "RandomForestClassifier"), ("sklearn.tree._tree", "Tree"),
    ("sklearn.preprocessing._data", "StandardScaler"), ("sklearn.neighbors._kd_tree", "newObj"),
    ("sklearn._loss.loss", "HalfBinomialLoss"), ("sklearn.feature_selection._univariate_selection", "f_classif"),
    # pandas
    ("pandas.core.frame", "DataFrame"), ("pandas", "DataFrame"), ("pandas.core.series", "Series"),
    ("pandas.core.internals.managers", "BlockManager"), ("pandas._libs.internals", "_unpickle_block"),
    ("pandas.core.indexes.base", "_new_Index"), ("pandas.core.indexes.range", "RangeIndex"),
    ("pandas._libs.tslibs.timestamps", "_unpickle_timestamp"), ("pandas.core.arrays.categorical", "Categorical"),
    # Hugging Face
    ("transformers.training_args", "TrainingArguments"), ("transformers.trainer_utils", "IntervalStrategy"),
    ("tokenizers", "Tokenizer"),
]

# A name from a denied family beside allowed names of the same library: deny must win.
DENY_BEATS_ALLOW = [
    ("numpy", "load"), ("numpy.testing._private.utils", "runstring"), ("numpy", "memmap"),
    ("numpy", "ndarray.tofile"), ("torch", "load"), ("torch.storage", "_load_from_bytes"),
    ("torch", "UntypedStorage.from_file"), ("pandas", "read_pickle"), ("pandas", "DataFrame.eval"),
    ("pandas.core.frame", "DataFrame.query"), ("pathlib", "Path.write_text"), ("joblib", "load"),
    ("torch.nn.modules.module", "register_module_forward_pre_hook"),
]

ENTRY = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:(\*|\*\*|[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*)$")


def _pairs(entries):
    return [tuple(e.split(":", 1)) for e in entries]


def _globals_txt() -> list[tuple[str, str]]:
    if not GLOBALS_TXT.exists():
        return []
    pairs = []
    for raw in GLOBALS_TXT.read_text("utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        module, sep, name = line.partition(":")
        if not sep:
            module, _, name = line.partition(" ")
        pairs.append((module.strip(), name.strip()))
    return pairs


@pytest.mark.parametrize(("module", "name", "rule_id"), GADGETS, ids=[f"{m}:{n}" for m, n, _ in GADGETS])
def test_gadget_is_denied(module, name, rule_id):
    verdict = POLICY.judge(module, name)
    assert verdict.kind == "deny", verdict
    assert verdict.rule_id == rule_id, verdict


@pytest.mark.parametrize(("module", "name"), BENIGN, ids=[f"{m}:{n}" for m, n in BENIGN])
def test_benign_global_is_allowed(module, name):
    verdict = POLICY.judge(module, name)
    assert verdict.kind == "allow", verdict
    assert verdict.reason


GLOBALS = [g for g in _globals_txt() if g[0] != "__main__"]


@pytest.mark.skipif(not GLOBALS, reason="tests/fixtures/benign/GLOBALS.txt not generated")
@pytest.mark.parametrize(("module", "name"), GLOBALS, ids=[f"{m}:{n}" for m, n in GLOBALS] or None)
def test_fixture_global_is_allowed(module, name):
    verdict = POLICY.judge(module, name)
    assert verdict.kind == "allow", verdict


def test_main_classes_stay_unknown():
    assert POLICY.judge("__main__", "Net").kind == "unknown"
    assert POLICY.judge("__main__", "TrainingArguments").kind == "unknown"
    assert POLICY.judge("my_project.models", "ResNet").kind == "unknown"


@pytest.mark.parametrize(("module", "name"), DENY_BEATS_ALLOW, ids=[f"{m}:{n}" for m, n in DENY_BEATS_ALLOW])
def test_deny_beats_allow(module, name):
    assert POLICY.judge(module, name).kind == "deny"


def test_allow_is_exact_so_methods_of_allowed_classes_stay_unknown():
    assert POLICY.judge("pandas.core.frame", "DataFrame").kind == "allow"
    assert POLICY.judge("pandas.core.frame", "DataFrame.to_pickle").kind == "unknown"
    assert POLICY.judge("sklearn.base", "np.load").kind == "unknown"
    assert POLICY.judge("torch.nn.modules.linear", "Linear.register_forward_hook").kind == "unknown"


def test_forwarders_are_followed_not_denied_by_themselves():
    for module, name in [("builtins", "map"), ("builtins", "filter"), ("__builtin__", "apply"),
                         ("functools", "reduce"), ("operator", "call"), ("itertools", "starmap")]:
        assert POLICY.role("forwarders", module, name) is not None, (module, name)
        assert POLICY.judge(module, name).kind != "deny", (module, name)
    for module, name in [("functools", "partial"), ("atexit", "register"), ("weakref", "finalize"),
                         ("threading", "Thread"), ("threading", "Timer"), ("_thread", "start_new_thread"),
                         ("torch._tensor", "_rebuild_from_type_v2")]:
        assert POLICY.role("forwarders", module, name) is not None, (module, name)


def test_roles():
    assert POLICY.role("loaders", "_pickle", "loads") is not None
    assert POLICY.role("loaders", "torch.storage", "_load_from_bytes") is not None
    assert POLICY.role("loaders", "marshal", "loads") is None
    assert POLICY.role("builders", "marshal", "loads") == "code"
    assert POLICY.role("builders", "dill.dill", "_create_code") == "code"
    assert POLICY.role("builders", "joblib.externals.cloudpickle.cloudpickle", "_make_function") == "function"
    assert POLICY.role("decoders", "base64", "b64decode") == "base64"
    assert POLICY.role("reconstructors", "copy_reg", "_reconstructor") == "reconstructor"
    assert set(DATA["roles"]) >= {"loaders", "decoders", "builders", "reconstructors", "forwarders"}


def test_policy_file_shape():
    assert DATA["version"] == POLICY.version == "2026.11.1"
    assert set(DATA) == {"version", "traversal_dunders", "aliases", "roles", "capabilities", "allow"}
    for group in DATA["allow"]:
        assert set(group) == {"reason", "entries"} and group["reason"].strip() and group["entries"]
    for spec in DATA["capabilities"].values():
        assert set(spec) == {"rule", "entries"} and spec["entries"]


def test_every_capability_maps_to_a_known_rule():
    for capability, spec in DATA["capabilities"].items():
        assert spec["rule"] in BY_ID, capability
        assert spec["rule"].startswith("PKL1"), capability


def _all_entries():
    deny = [e for spec in DATA["capabilities"].values() for e in spec["entries"]]
    allow = [e for group in DATA["allow"] for e in group["entries"]]
    roles = []
    for value in DATA["roles"].values():
        roles.extend(value if isinstance(value, list) else value.keys())
    return deny, allow, roles


def test_entries_are_well_formed():
    deny, allow, roles = _all_entries()
    bad = [e for e in deny + allow + roles if not ENTRY.match(e)]
    assert not bad


def test_no_duplicate_entries():
    deny, allow, _ = _all_entries()
    assert not [e for e, n in Counter(deny).items() if n > 1]
    assert not [e for e, n in Counter(allow).items() if n > 1]


def test_allow_entries_are_exact_and_live():
    """No wildcard allows (they would allow dotted walks out of the module), except the
    __torch__ namespace that Python cannot import; and every allow entry really judges allow,
    so no allow entry is silently shadowed by a deny."""
    _, allow, _ = _all_entries()
    wild = [e for e in allow if e.endswith((":*", ":**"))]
    assert wild == ["__torch__:**"]
    shadowed = [e for e in allow if e not in wild and POLICY.judge(*e.split(":", 1)).kind != "allow"]
    assert not shadowed


def test_aliases_are_single_step():
    aliases = DATA["aliases"]
    for source, target in aliases.items():
        assert target not in aliases, (source, target)
        assert source != target
        assert POLICY.canonical_module(source) == target


def test_allow_and_deny_use_canonical_spellings():
    """An entry spelled with an alias would never match: modules are canonicalised first."""
    deny, allow, roles = _all_entries()
    aliased = [e for e in deny + allow + roles
               if POLICY.canonical_module(e.split(":", 1)[0]) != e.split(":", 1)[0]]
    assert not aliased


def test_traversal_dunders_deny_everywhere():
    for dunder in DATA["traversal_dunders"]:
        verdict = POLICY.judge("torch", f"Tensor.{dunder}")
        assert verdict.kind == "deny" and verdict.rule_id == "PKL103", dunder
