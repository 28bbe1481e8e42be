"""The rule catalogue: every finding carries one of these ids.

Ids are stable and never reused. Families go by prefix and hundreds, as bandit groups its tests:
PKL1xx a pickle reaches a dangerous capability, PKL2xx a pickle does something the policy does not
know, PKL3xx a pickle stream is malformed; CNT containers; TRC PyTorch; NPY NumPy; FMT detection;
BLK user patterns. `shardscan rules` prints this table; tests walk it.
"""

from __future__ import annotations

from dataclasses import dataclass

from shardscan.model import Severity

C, W, I = Severity.CRITICAL, Severity.WARNING, Severity.INFO


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    severity: Severity
    title: str
    why: str
    references: tuple[str, ...] = ()


RULES: tuple[Rule, ...] = (
    # --- PKL1xx: a pickle references a denylisted capability (judged by the shipped policy) ---
    Rule("PKL101", C, "Pickle references a code-execution callable",
         "Loading this file runs Python source it carries (eval, exec, compile, runpy, code, "
         "idlelib runners...). Do not load it; treat the file and its source as compromised.",
         ("CWE-502", "https://docs.python.org/3/library/pickle.html#restricting-globals")),
    Rule("PKL102", C, "Pickle references a process-spawning callable",
         "Loading this file starts a shell or another program (os.system, subprocess, pty, "
         "spawn helpers hidden in the standard library). Do not load it.",
         ("CWE-78", "CVE-2025-10157", "GHSA-g38g-8gr9-h9xp")),
    Rule("PKL103", C, "Pickle resolves names dynamically (import machinery)",
         "The stream imports or looks up attributes by computed name (importlib, __import__, "
         "getattr, pkgutil.resolve_name, pydoc.locate, operator.attrgetter/methodcaller), the "
         "standard way to reach any function while hiding its name from scanners.",
         ("GHSA-vvpj-8cmc-gx39", "GHSA-84r2-jw7c-4r5q", "GHSA-955r-x9j8-7rhh")),
    Rule("PKL104", C, "Pickle builds and runs a code object",
         "A function is rebuilt from bytecode (marshal, types.CodeType/FunctionType, dill or "
         "cloudpickle builders) and called while loading: arbitrary code execution.",
         ("GHSA-565g-hwwr-4pp3",)),
    Rule("PKL105", C, "Pickle deserialises another payload while loading",
         "The stream hands bytes or a path to another loader (pickle.loads, dill, joblib.load, "
         "numpy.load, torch.load, torch.storage._load_from_bytes...). The inner payload is "
         "scanned too, but the construction itself only serves to hide code from scanners.",
         ("GHSA-vv6j-3g6g-2pvj", "GHSA-h3qp-7fh3-f8h4")),
    Rule("PKL106", C, "Pickle loads native code (ctypes)",
         "ctypes and similar modules call into shared libraries directly; from a pickle this "
         "is code execution (for example libc system).",
         ("GHSA-4675-36f9-wf6r",)),
    Rule("PKL107", C, "Pickle reads, writes or removes files",
         "Loading this file touches the file system (open, io.FileIO, shutil, logging file "
         "handlers...): overwrite, exfiltration or persistence. A model has no reason to do it.",
         ("CWE-73", "CVE-2025-10155")),
    Rule("PKL108", C, "Pickle opens a network connection",
         "Loading this file contacts a host (socket, ssl, urllib, http, requests, smtplib, "
         "webbrowser...): exfiltration or a second-stage download.",
         ("GHSA-m273-6v24-x4m4",)),
    Rule("PKL109", C, "Pickle installs packages",
         "pip, ensurepip or venv from a pickle installs and runs code from an index.",
         ("CVE-2025-1716", "GHSA-xp4f-hrf8-rxw7")),
    Rule("PKL110", C, "Pickle runs code through a profiler or debugger",
         "cProfile, profile, trace, timeit, bdb, pdb and doctest all execute source strings.",
         ("GHSA-49gj-7fqh-m8x2",)),
    Rule("PKL111", C, "Pickle references a known gadget inside an ML library",
         "Published gadgets in torch, numpy, mlflow and similar libraries run commands or "
         "evaluate strings (torch.utils.collect_env.run, numpy.testing runstring, numpy.f2py).",
         ("GHSA-r8g5-cgf2-4m4m",)),
    Rule("PKL112", C, "Pickle tampers with a security scanner",
         "The stream imports a model scanner's own modules, the shape of an attack that "
         "disables the scanner in-process before a second payload runs.",
         ("https://github.com/trailofbits/fickling",)),
    Rule("PKL113", C, "Pickle registers side effects beyond loading",
         "atexit, weakref.finalize, signal, threads, resource limits, servers and similar "
         "callables persist or act after loading; no checkpoint needs them.",
         ()),
    # --- PKL2xx: behaviour the policy does not know ---
    Rule("PKL201", W, "Pickle calls a callable outside the allowlist",
         "The callable is neither known-safe nor known-dangerous and runs with arguments from "
         "the file. Review where it comes from; --strict makes this critical.",
         ("CWE-502",)),
    Rule("PKL202", W, "Pickle holds a code object that is built but not called",
         "Functions serialised by value (cloudpickle, dill) carry bytecode that runs when the "
         "loaded object is used: latent code. Load only if you trust the producer.",
         ()),
    Rule("PKL203", W, "Pickle computes the name of a global at load time",
         "STACK_GLOBAL operands that are not literals (results of calls, decoded strings) "
         "exist only to hide the imported name from scanners.",
         ("https://github.com/protectai/modelscan/issues/331",)),
    Rule("PKL204", I, "Pickle restores a class outside the allowlist without running code",
         "The class is created without its constructor and given plain state, the shape of a "
         "custom nn.Module or dataclass in a full-model save. Loading still imports its "
         "module, which must come from a trusted source.",
         ()),
    Rule("PKL205", I, "Pickle imports a global outside the allowlist",
         "The global is imported but never called; loading imports its module.",
         ()),
    Rule("PKL206", W, "Pickle resolves a global through the copyreg extension registry",
         "EXT1/EXT2/EXT4 name a global by an integer registered in the loading process, "
         "invisible to name-based checks.",
         ("https://docs.python.org/3/library/copyreg.html",)),
    Rule("PKL207", C, "Pickle patches a module or function with BUILD",
         "BUILD with a state on a module, class or function is setattr on code that runs "
         "later, a known route to rewire allowed callables.",
         ("https://github.com/protectai/modelscan/issues/330", "GHSA-5j3x-jp52-966f")),
    # --- PKL3xx: malformed streams ---
    Rule("PKL301", W, "Pickle stream breaks after executing opcodes",
         "The stream ends or fails before STOP. A loader runs everything before the break "
         "and then raises, the nullifAI trick to hide payloads from scanners that give up.",
         ("https://www.reversinglabs.com/blog/rl-identifies-malware-ml-model-hosted-on-hugging-face",)),
    Rule("PKL302", W, "Pickle FRAME length disagrees with its content",
         "CPython's loader does not enforce frame boundaries while decoders that trust them "
         "see different opcodes; only a crafted file does this.",
         ("https://github.com/python/cpython/issues/154848",)),
    Rule("PKL303", I, "Data follows the last pickle in the stream",
         "Bytes after STOP are ignored by one load() but read by loaders that call load() "
         "again; they were scanned as far as they parse.",
         ()),
    Rule("PKL304", I, "Several pickles in one stream",
         "Loaders that loop over load() run every pickle in the file, not only the first.",
         ()),
    Rule("PKL305", W, "Pickle exceeds a resource limit",
         "The stream needs more opcodes, memo entries, stack or nesting than any model "
         "uses: a denial-of-service attempt (memo expansion, billion laughs) or corruption.",
         ("https://github.com/trailofbits/fickling",)),
    Rule("PKL306", W, "Pickle stream is inconsistent",
         "A memo key is missing, the stack underflows or an opcode meets the wrong type: "
         "tricks that crash other scanners' bookkeeping (picklescan #52).",
         ("https://github.com/mmaitre314/picklescan/issues/52",)),
    Rule("PKL307", W, "Nested payloads exceed the inspection depth",
         "Pickles nested inside pickles beyond the depth limit were not inspected.",
         ()),
    # --- CNT: containers ---
    Rule("CNT101", W, "Zip member names disagree between local header and central directory",
         "PyTorch's reader follows one name and Python's zipfile the other: scanners and "
         "loaders can see different members.",
         ("CVE-2025-1944",)),
    Rule("CNT102", W, "Zip member has unusual general-purpose flags",
         "Encryption or reserved flag bits make some readers skip a member that PyTorch still "
         "loads.",
         ("CVE-2025-1945",)),
    Rule("CNT103", W, "Zip member CRC does not match its content",
         "Loaders that ignore CRCs still load the member; scanners that verify them may skip it.",
         ("CVE-2025-10156",)),
    Rule("CNT104", C, "Archive member path escapes the extraction directory",
         "A member named with '..', an absolute path or a drive letter writes outside the "
         "target when extracted (zip slip).",
         ("CWE-22", "CVE-2024-5187", "CVE-2025-12060")),
    Rule("CNT105", C, "Archive link member points outside the archive",
         "A symbolic or hard link to an outside path makes extraction read or overwrite "
         "arbitrary files.",
         ("CWE-59",)),
    Rule("CNT106", W, "Archive holds the same member name twice",
         "Readers disagree on which copy wins, so a scanner can see the benign one.",
         ()),
    Rule("CNT107", W, "Archive member expands beyond the decompression limits",
         "Decompressed size or ratio exceeds the limits: a decompression bomb, or a member "
         "too large to inspect completely.",
         ("CWE-409",)),
    Rule("CNT108", W, "Archives are nested deeper than the inspection depth",
         "Members beyond the nesting limit were not inspected.",
         ()),
    Rule("CNT109", W, "Archive has more members than the inspection limit",
         "Members beyond the count limit were not inspected.",
         ()),
    Rule("CNT110", W, "Pickle stored under a name that is not a pickle",
         "A loader reached through pickle_file= or a nested-load gadget still unpickles it; "
         "scanners that go by name miss it.",
         ("CVE-2025-1889",)),
    Rule("CNT111", W, "File is both a pickle and an archive (polyglot)",
         "Different loaders read different content from the same bytes.",
         ("https://github.com/trailofbits/fickling#pytorch-polyglots",)),
    Rule("CNT112", W, "Archive or compressed stream is corrupt",
         "Part of the container could not be read, so its content was not fully inspected.",
         ()),
    # --- TRC: PyTorch ---
    Rule("TRC101", I, "TorchScript archive carries code compiled at load",
         "torch.jit.load compiles the code/ members; torch < 2.6 did so even with "
         "weights_only=True. Load TorchScript only from trusted producers.",
         ("CVE-2025-32434",)),
    Rule("TRC102", W, "Tensor storage declares more elements than its data holds",
         "A storage whose size exceeds its data member corrupts memory in the weights-only "
         "unpickler of torch <= 2.9.1.",
         ("CVE-2026-24747",)),
    Rule("TRC103", W, "Legacy PyTorch magic number is not a literal",
         "The legacy header is computed by a call, a way to disguise a pickle as a checkpoint.",
         ("https://github.com/mmaitre314/picklescan",)),
    # --- NPY: NumPy ---
    Rule("NPY101", I, "NumPy array of Python objects",
         "An object array is a pickle and needs np.load(allow_pickle=True); its pickle was "
         "scanned.",
         ("https://numpy.org/doc/stable/reference/generated/numpy.load.html",)),
    # --- FMT: detection ---
    Rule("FMT001", I, "Content of unknown format",
         "No scanner recognises the bytes, so nothing was checked. --strict counts it as a "
         "failure.",
         ()),
    Rule("FMT002", I, "Recognised format not analysed by this version",
         "The format is known but has no scanner yet, so the file is not covered.",
         ()),
    Rule("FMT003", W, "Executable binary among model files",
         "An ELF, PE or Mach-O program stored with models runs only if something executes "
         "it; it has no place in a model repository.",
         ()),
    Rule("FMT004", W, "File content contradicts its extension",
         "A pickle named as a code-free format (.safetensors, .gguf, .json...) is loaded by "
         "tools that trust the content; scanners that trust the name skip it.",
         ("CVE-2025-1889",)),
    Rule("FMT005", W, "Coverage incomplete",
         "Part of the file was not inspected (size or time limit, unreadable part).",
         ()),
    # --- STF: SafeTensors ---
    # --- GGF: GGUF and GGML; TPL: chat templates ---
    # --- ONX: ONNX ---
    # --- KER: Keras ---
    # --- CFG: configuration and code shipped with models ---
    # --- SRC: sources (pointers to models held elsewhere) ---
    Rule("SRC001", W, "Pointer could not be resolved: the model it names was not scanned",
         "A pointer (a .dvc file, an MLflow registry entry) names model files whose bytes were not "
         "found in the local cache or any reachable remote. Those files were not scanned: coverage "
         "is incomplete until they are fetched (dvc pull) or the remote is reachable.",
         ("https://dvc.org/doc/user-guide/project-structure/dvc-files",)),
    # --- BLK: user patterns ---
    Rule("BLK001", C, "Name matches a user blacklist pattern",
         "A model, member or imported global matches a pattern given with --blacklist.",
         ()),
)

BY_ID: dict[str, Rule] = {rule.id: rule for rule in RULES}


def rule(rule_id: str) -> Rule:
    return BY_ID[rule_id]


#: Under --strict, what is merely unknown counts as a failure: every callable outside the
#: allowlist is critical, and incomplete coverage fails the scan.
STRICT_SEVERITY: dict[str, Severity] = {
    "PKL201": C, "PKL202": C, "PKL204": C, "PKL205": C,
    "FMT001": W, "FMT002": W, "FMT005": W,
}
