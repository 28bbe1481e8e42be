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
    Rule("TRC104", W, "TorchScript code calls a custom operator or class",
         "ops.<ns>.<op> or torch.classes.<ns> outside PyTorch's, torchvision's and torchaudio's "
         "namespaces: the archive loads only after a native library providing them is loaded, "
         "and that library's code runs with the model.",
         ("https://pytorch.org/tutorials/advanced/torch_script_custom_ops.html",)),
    Rule("TRC105", C, "TorchScript code names a command, code or network callable",
         "os.system, subprocess, exec, eval, __import__, load_library... are not TorchScript "
         "builtins and torch.jit.save never writes them: the archive was crafted, for a loader "
         "that runs code/ as Python or for a compiler flaw. Do not load it.",
         ("CWE-94", "CVE-2025-32434")),
    Rule("TRC106", W, "TorchScript code reads or writes files",
         "torch.save (aten::save) writes a pickle to a path and torch.from_file maps a file when "
         "the model runs; open(), torch.load and deserialisers are not TorchScript builtins.",
         ("CWE-73",)),
    Rule("TRC107", W, "TorchScript code holds a shell command or network address",
         "String constants in code/ with shell commands or network code (WARNING) or URLs "
         "(INFO, documentation links are common) have no use in a model's forward pass.",
         ()),
    Rule("TRC108", I, "TorchScript code was not fully analysed",
         "A code/ member too large, not UTF-8 or not valid syntax was scanned for names "
         "instead of parsed.",
         ()),
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
    Rule("STF001", W, "SafeTensors header invalid",
         "The header length, encoding or JSON cannot be read (truncated file, length past the end "
         "or over the format's 100 MB maximum, not UTF-8, not a JSON object). Loaders refuse the "
         "file or read it differently; nothing in it was checked beyond this point.",
         ("https://github.com/huggingface/safetensors#format",)),
    Rule("STF002", W, "SafeTensors header repeats a key",
         "The format forbids duplicate keys, yet some parsers keep the first copy and others the "
         "last: a scanner and a loader can see different tensors or metadata.",
         ("https://github.com/huggingface/safetensors#format",)),
    Rule("STF003", W, "SafeTensors tensor entry is malformed",
         "A tensor entry lacks dtype, shape or data_offsets, names an unknown dtype, or holds sizes "
         "that are not unsigned 64-bit integers or overflow them. The reference loader refuses it; "
         "hand-written readers may misread it.",
         ("https://github.com/huggingface/safetensors#format",)),
    Rule("STF004", W, "SafeTensors tensor size disagrees with its byte range",
         "Shape times item size differs from the data_offsets span: a reader that trusts the shape "
         "reads past the tensor's bytes or leaves some unread.",
         ("CWE-130",)),
    Rule("STF005", W, "SafeTensors tensor lies outside the data section",
         "A tensor's data_offsets end beyond the file: a truncated file, or an out-of-bounds read "
         "in readers that do not check.",
         ("CWE-125",)),
    Rule("STF006", W, "SafeTensors tensors overlap",
         "Two tensors share bytes. The reference loader refuses the layout; others alias the "
         "tensors, so writing one changes the other.",
         ("https://github.com/huggingface/safetensors#format",)),
    Rule("STF007", W, "SafeTensors data section has bytes between tensors",
         "No tensor covers these bytes: a place to hide a payload (a polyglot or a second stage). "
         "The reference loader refuses holes for that reason; recognised content in them was "
         "scanned by the other scanners.",
         ("https://github.com/huggingface/safetensors#format",)),
    Rule("STF008", W, "SafeTensors file has bytes after the last tensor",
         "Bytes after the data no tensor covers: appended archives and pickles make polyglots. The "
         "reference loader refuses them; recognised content in them was scanned.",
         ("https://github.com/trailofbits/fickling#pytorch-polyglots",)),
    Rule("STF009", I, "SafeTensors tensor entries are out of offset order",
         "Loaders sort entries by offset, so the file loads, but the reference writer never "
         "produces this order: the file was written or edited by another tool.",
         ()),
    Rule("STF010", W, "SafeTensors __metadata__ is not a map of strings",
         "The format allows only string values in __metadata__; the reference loader refuses the "
         "file, other readers pass the values through.",
         ("https://github.com/huggingface/safetensors#format",)),
    Rule("STF011", W, "SafeTensors metadata holds code, markup or shell commands",
         "SafeTensors never runs metadata, but tools that render or evaluate it (model cards, web "
         "UIs, scripts that eval a config string) may: script tags, Python, template injection or "
         "shell commands have no place in tensor metadata.",
         ("CWE-94", "CWE-79")),
    Rule("STF012", I, "SafeTensors metadata names URLs or file paths",
         "Training tools record sources and paths; listed so that a download location or a "
         "leaked local path is seen.",
         ()),
    Rule("STF014", I, "SafeTensors tensor entries carry undefined fields",
         "Fields besides dtype, shape and data_offsets are ignored by loaders: a place to carry "
         "data unseen. Their string values were checked like metadata.",
         ()),
    # --- GGF: GGUF and GGML; TPL: chat templates ---
    Rule("GGF001", I, "Legacy GGML-family model file: header checked, tensors not walked",
         "GGML, GGMF, GGJT, GGLA and GGSA files predate GGUF. Their header (and the vocabulary, "
         "where the layout is known) was checked, but the tensor records were not walked, and "
         "current llama.cpp no longer loads them. Convert to GGUF to have the file fully covered.",
         ("https://github.com/ggml-org/ggml/blob/master/docs/gguf.md",)),
    Rule("GGF101", W, "GGUF file is corrupt or truncated",
         "The header, a metadata value or a tensor record does not follow the format (unknown "
         "version or value type, invalid UTF-8, bytes missing). Loaders disagree on such files and "
         "ggml readers have crashed on them; what follows the break was not inspected.",
         ("https://github.com/ggml-org/ggml/blob/master/docs/gguf.md",)),
    Rule("GGF102", W, "GGUF declares a count or size beyond the parser limits",
         "A tensor count, metadata count, array length or string length larger than any model "
         "needs or than the bytes left: the shape of attacks on the memory of ggml readers "
         "(huge allocations, integer overflow). The parser stopped instead of allocating.",
         ("CWE-789", "CWE-190")),
    Rule("GGF103", W, "GGUF tensor description is invalid",
         "A tensor has too many dimensions, an unknown type, an element count that overflows, a "
         "row not made of whole quantisation blocks, a misaligned offset or a name llama.cpp "
         "refuses: loaders reject or misread it.",
         ("https://github.com/ggml-org/ggml/blob/master/docs/gguf.md",)),
    Rule("GGF104", W, "GGUF tensor data lies outside the file or overlaps another tensor",
         "A tensor's bytes run past the end of the file or share bytes with another tensor: "
         "out-of-bounds reads in loaders that trust the offsets, or data crafted to differ "
         "between readers.",
         ("CWE-125",)),
    Rule("GGF105", W, "GGUF alignment is not a power of two",
         "general.alignment must be a non-zero power of two (and a uint32); any other value makes "
         "loaders compute different data offsets.",
         ("https://github.com/ggml-org/ggml/blob/master/docs/gguf.md",)),
    Rule("GGF106", W, "GGUF metadata key or tensor name appears twice",
         "Readers disagree on which copy wins, so a scanner can read a benign chat template while "
         "the loader renders another. Every copy was analysed.",
         ()),
    Rule("GGF107", W, "GGUF metadata string holds embedded binary content",
         "A metadata value carries a pickle, archive or executable. No loader runs it, but it has "
         "no reason to be there; its content was scanned as a member.",
         ()),
    Rule("TPL101", C, "Chat template walks into Python internals (template injection)",
         "The template reaches __globals__, __builtins__, __subclasses__, __mro__ or similar. "
         "Rendered outside a sandbox (llama-cpp-python < 0.2.72 and other servers) it runs "
         "arbitrary code. Do not load the model; remove the template.",
         ("CVE-2024-34359", "CWE-1336")),
    Rule("TPL102", C, "Chat template reaches a command or code-execution call",
         "The template names os, subprocess, popen, system, eval, exec or an import function: "
         "rendered outside a sandbox it runs commands on the host.",
         ("CVE-2024-34359", "CWE-94")),
    Rule("TPL103", W, "Chat template uses constructs no chat template needs",
         "Dunder or private attributes, Flask-style request/config/self objects, or statements "
         "that load other templates: the building blocks of template injection.",
         ("CWE-1336",)),
    Rule("TPL104", W, "Chat template could not be fully analysed",
         "The template does not tokenise as Jinja or exceeds the size bound, so part of it was "
         "not inspected. A template that fails to parse is also rejected by loaders.",
         ()),
    Rule("TPL105", W, "Chat template hides attribute names",
         "Names are spelled with escapes, assembled from pieces (+, ~, join, format, reverse) or "
         "computed for |attr(): obfuscation that only serves to slip past pattern-matching "
         "scanners.",
         ("CVE-2024-34359",)),
    # --- ONX: ONNX ---
    Rule("ONX101", W, "ONNX node uses a custom operator domain",
         "The operator is not built into ONNX or onnxruntime: loading the model needs a custom-op "
         "library (native code registered with register_custom_ops_library) or functions the loading "
         "process registers. Load it only with a custom-op library from a trusted source.",
         ("https://onnxruntime.ai/docs/reference/operators/add-custom-op.html",)),
    Rule("ONX102", C, "ONNX node runs Python code",
         "PyOp, PyFunc, PythonOp and onnxruntime-extensions Py* operators call Python at inference; "
         "onnxruntime's PyOp imports the module and function its attributes name. The model decides "
         "what code runs.",
         ("https://github.com/microsoft/onnxruntime-extensions/blob/main/docs/pyop.md",)),
    Rule("ONX103", C, "ONNX external data path escapes the model directory",
         "A tensor's external_data location with '..', an absolute path, a drive letter or a symbolic "
         "link reads an arbitrary file into the tensor at load, and overwrites it when the model is "
         "saved again.",
         ("CWE-22", "CVE-2022-25882", "CVE-2024-27318", "CVE-2025-51480")),
    Rule("ONX104", W, "ONNX external data file is missing or too short",
         "The file a tensor reads its data from is not next to the model, or is shorter than the "
         "offset and length the tensor declares: the model does not load, and that data was not "
         "checked.",
         ("https://onnx.ai/onnx/repo-docs/ExternalData.html",)),
    Rule("ONX105", I, "ONNX tensor data is stored in external files",
         "Tensors name files that are read when the model loads. They are listed so that they are "
         "scanned with the model; for a model that is not a local file they were not checked.",
         ("https://onnx.ai/onnx/repo-docs/ExternalData.html",)),
    Rule("ONX106", W, "ONNX external data entry is malformed",
         "An external_data entry has an unknown key, a missing or empty location, or an offset or "
         "length that is not a non-negative integer. onnx sets every key as an attribute, a route to "
         "corrupt its loader (CVE-2026-34445); no writer produces such entries.",
         ("CVE-2026-34445",)),
    Rule("ONX107", W, "ONNX text field holds code",
         "A doc_string or metadata_props value contains Python, shell or template-injection code. "
         "ONNX never runs it, but tools that display or template metadata might, and models have no "
         "reason to carry it (heuristic).",
         ()),
    Rule("ONX108", I, "ONNX text field holds a URL",
         "A doc_string or metadata_props value names a URL; listed for review (heuristic).",
         ()),
    Rule("ONX110", W, "ONNX model exceeds a parsing limit",
         "Nodes, subgraph nesting, message nesting, field count or a string size are beyond the ONNX "
         "limits: a denial-of-service attempt or corruption. The rest of the model was not inspected.",
         ("CWE-400",)),
    Rule("ONX111", W, "ONNX model is not valid protobuf",
         "The bytes do not parse as an ONNX ModelProto (truncated, corrupt, or not ONNX), so the model "
         "was inspected only up to the error.",
         ()),
    # --- KER: Keras ---
    Rule("KER001", C, "Keras Lambda bytecode reaches a dangerous capability",
         "A Lambda layer's function is marshalled CPython bytecode, rebuilt and run when the model "
         "is loaded (always by Keras 2 and by Keras 3 for .h5 files; with safe_mode=False for "
         ".keras). Its names and constants, decoded statically, reach a denylisted callable "
         "(os, subprocess, eval, socket...). Do not load it.",
         ("CVE-2024-3660", "CVE-2025-9905", "CWE-94")),
    Rule("KER002", W, "Keras Lambda layer carries Python bytecode",
         "Lambda layers serialise their function as marshalled bytecode that runs on load: always "
         "in Keras 2 and for .h5 in Keras 3 (safe_mode is ignored there), with safe_mode=False for "
         ".keras. Nothing dangerous was recognised in it, but it is arbitrary code: load only from "
         "trusted producers, or rebuild the layer in code.",
         ("CVE-2024-3660", "CVE-2025-9905")),
    Rule("KER003", C, "Keras config references a dangerous callable by module",
         "A layer, activation, initializer or Lambda function names a module and callable that "
         "the policy denies (builtins.exec, os.system, subprocess...). Keras < 3.9 imports any "
         "module named in a config and calls the function, even with safe_mode=True.",
         ("CVE-2025-1550", "CWE-502")),
    Rule("KER004", W, "Keras config references a function outside Keras",
         "A function is resolved from a module outside keras/tensorflow: Keras < 3.9 imports "
         "that module while loading (CVE-2025-1550), newer versions need it registered. Review "
         "that the module is yours and trusted.",
         ("CVE-2025-1550",)),
    Rule("KER005", C, "Keras config turns safe mode off or loads another model",
         "The config calls keras.config.enable_unsafe_deserialization, keras.models.load_model "
         "or a bytecode loader as a layer function, or passes safe_mode=False: a Keras-namespace "
         "gadget that lets a later Lambda or a second model run arbitrary code.",
         ("CVE-2025-9906", "CVE-2025-8747", "GHSA-c9rc-mg46-23w3")),
    Rule("KER006", C, "Keras config downloads files with keras.utils.get_file",
         "get_file referenced from a config fetches a URL and writes (or extracts) it to a path "
         "chosen by the file while the model loads: arbitrary file write or a second-stage "
         "download.",
         ("CVE-2025-8747", "CVE-2025-12060")),
    Rule("KER007", I, "TFOpLambda layers call TensorFlow ops by name",
         "tf.keras functional models record TensorFlow API calls as TFOpLambda layers that "
         "resolve the op by its name on load; the ops used are listed.",
         ()),
    Rule("KER008", C, "Keras config calls a TensorFlow op that touches files or runs Python",
         "A TFOpLambda layer or a function reference reaches tf.io file operations, gfile, "
         "py_function/numpy_function or native library loading: file read/write or code "
         "execution from the model config.",
         ("https://www.tensorflow.org/api_docs/python/tf/io/write_file",)),
    Rule("KER009", I, "Keras config needs custom objects from outside Keras",
         "Layers or functions registered by another package (registered_name 'pkg>Name', module "
         "outside keras) need that package's code to load; it runs with the loader's rights.",
         ("https://keras.io/guides/serialization_and_saving/",)),
    Rule("KER010", W, "Keras config references a URL or an outside file",
         "A URL or an absolute or parent-relative path in the config points at content outside "
         "the model (weights, vocabularies, a model to load, a download target): it was not "
         "scanned and may be replaced or written.",
         ("CVE-2025-8747", "CWE-22")),
    Rule("KER011", W, "Keras model file is malformed",
         "The HDF5 container or its Keras config attributes could not be read (corrupt, "
         "truncated, not JSON), so the model config was not inspected.",
         ()),
    Rule("KER012", W, "Keras config exceeds an inspection limit",
         "The config or a Lambda payload is larger or more deeply nested than the limits allow; "
         "the part beyond them was not inspected.",
         ()),
    Rule("KER013", I, "HDF5 file holds no Keras model config",
         "Plain HDF5 data (or weights only): there is no model config to inspect, and datasets "
         "are not read.",
         ()),
    # --- CFG: configuration and code shipped with models ---
    Rule("CFG001", W, "Config makes the loader run Python code shipped with the model",
         "auto_map (or custom_pipelines) in a Hugging Face config names modules of the repository "
         "that transformers imports and runs with trust_remote_code=True. Legitimate for new "
         "architectures, but that code runs with the user's rights: review the named .py files "
         "(they are scanned too) and pin the revision.",
         ("https://huggingface.co/docs/transformers/custom_models", "arXiv:2601.14163")),
    Rule("CFG002", W, "Config makes the loader run Python code from another repository",
         "An auto_map entry of the form 'org/repo--module.Class' makes transformers fetch and run "
         "code from a different repository, which this scan did not see. Fine-tunes of remote-code "
         "models do this legitimately; the code is unscanned and can change under the pinned "
         "revision of this repository.",
         ("https://huggingface.co/docs/transformers/custom_models",)),
    Rule("CFG003", W, "Config enables trust_remote_code",
         "A configuration sets trust_remote_code: true, so the loader it drives runs Python code "
         "from the model repository without asking.",
         ("https://huggingface.co/docs/transformers/custom_models",)),
    Rule("CFG101", C, "Python file runs commands or code when imported",
         "Module-level code (or a class body, decorator or default argument) spawns a process, "
         "evaluates source, builds code objects, loads native libraries or installs packages. "
         "Importing the file (transformers does with trust_remote_code) runs it; no modeling file "
         "needs to.",
         ("CWE-94", "CWE-78")),
    Rule("CFG102", C, "Python file contacts the network when imported",
         "Module-level code opens sockets or HTTP connections: exfiltration or a second-stage "
         "download the moment the file is imported.",
         ("CWE-494",)),
    Rule("CFG103", W, "Python file writes files or deserialises data when imported",
         "Module-level code writes, moves or removes files, or unpickles data (pickle, torch.load, "
         "joblib...). Importing a modeling file should have no such side effects.",
         ("CWE-73", "CWE-502")),
    Rule("CFG104", W, "Python file imports modules by computed name when imported",
         "__import__, importlib.import_module or getattr on a sensitive module with a name built at "
         "run time hides which code is reached from review and from scanners.",
         ("CWE-470",)),
    Rule("CFG105", C, "Python source executes an encoded or compressed payload",
         "exec, eval, compile, a function builder or a deserialiser is fed the output of base64, "
         "hex, zlib, marshal or codecs decoding: the signature of an obfuscated dropper.",
         ("CWE-506",)),
    Rule("CFG106", W, "Python function runs commands, code or network calls",
         "A function or method spawns processes, evaluates source, loads native code or contacts "
         "hosts. It runs only when called (not at import), but then with the user's rights.",
         ("CWE-94",)),
    Rule("CFG107", I, "Python function writes files, deserialises data or imports by computed name",
         "Common in loaders and tokenizers; listed so a reviewer sees what the code can touch when "
         "called.",
         ()),
    Rule("CFG201", C, "YAML config calls or builds Python objects through tags",
         "!!python/object/apply, !!python/object/new (or a python tag naming a denylisted "
         "callable) make yaml.load with an unsafe loader (Loader, UnsafeLoader, older full_load) "
         "call arbitrary callables: code execution when the config is read.",
         ("CVE-2020-14343", "CVE-2017-18342", "https://pyyaml.org/wiki/PyYAMLDocumentation")),
    Rule("CFG202", W, "YAML config imports Python objects through tags",
         "!!python/name, !!python/module and !!python/object import a module when read by an "
         "unsafe loader. INFO when the object is on the allowlist, WARNING when it is unknown.",
         ("https://pyyaml.org/wiki/PyYAMLDocumentation",)),
    Rule("CFG203", C, "Hydra _target_ names a dangerous callable",
         "hydra.utils.instantiate imports and calls the _target_ with the config's arguments; this "
         "one reaches a denylisted capability (process, eval, file system, network...).",
         ("https://hydra.cc/docs/advanced/instantiate_objects/overview/",)),
    Rule("CFG204", I, "Hydra _target_ outside known ML libraries",
         "instantiate imports and calls this callable; it is neither on the allowlist nor in a "
         "well-known ML package. Usually the project's own classes: check they ship with the model.",
         ("https://hydra.cc/docs/advanced/instantiate_objects/overview/",)),
    Rule("CFG205", W, "MLmodel loads the model through a custom loader module",
         "A flavor's loader_module is outside mlflow: mlflow.pyfunc.load_model imports it and "
         "calls its _load_pyfunc.",
         ("https://mlflow.org/docs/latest/python_api/mlflow.pyfunc.html",)),
    Rule("CFG206", I, "MLmodel loads code or pickles shipped with the model",
         "The flavor adds shipped code paths to sys.path or restores the model with "
         "cloudpickle/pickle; those files are scanned on their own.",
         ("https://mlflow.org/docs/latest/models.html",)),
    Rule("CFG301", W, "Configuration or source exceeds a parser limit",
         "Nesting depth, node count, YAML alias expansion (billion laughs) or AST size is beyond "
         "any real config or modeling file: a denial-of-service attempt or corruption. The part "
         "beyond the limit was not analysed.",
         ("CWE-776",)),
    Rule("CFG302", I, "Configuration or source does not parse",
         "The file named as JSON, YAML or Python is not valid (or not UTF-8); the loader would "
         "reject it too. It was checked by pattern only.",
         ()),
    # --- TFG: TensorFlow graphs; TFL: TensorFlow Lite ---
    Rule("TFG001", C, "TensorFlow graph op runs Python",
         "PyFunc, PyFuncStateless and EagerPyFunc call a Python function registered by the process "
         "that runs the graph. The body is not serialised (only a token), so the file cannot carry "
         "the code itself, but running the signature calls whatever Python the loader registered "
         "under that token: an indicator of a graph built to reach Python.",
         ("https://www.tensorflow.org/api_docs/python/tf/py_function",)),
    Rule("TFG002", W, "TensorFlow graph op reads or lists files",
         "ReadFile, MatchingFiles, file readers, file datasets, ImmutableConst (maps a named memory "
         "region or file) and similar ops read the file system of whoever runs the signature, with "
         "paths held in the graph or fed at run time. Serving models do not need them.",
         ("https://github.com/protectai/modelscan",)),
    Rule("TFG003", C, "TensorFlow graph op writes files",
         "WriteFile, PrintV2 with a file:// output_stream, Debug* ops with file:// debug_urls, "
         "TFRecord/dataset writers and summary file writers write to paths chosen by the graph when "
         "a signature runs (the ordinary checkpoint ops SaveV2/RestoreV2/MergeV2Checkpoints are not "
         "reported).",
         ("https://github.com/protectai/modelscan",)),
    Rule("TFG004", W, "TensorFlow graph op contacts the network",
         "RPC ops, tf.data service datasets and Debug* ops with grpc:// debug_urls open network "
         "connections from the process that runs the signature.",
         ()),
    Rule("TFG005", W, "TensorFlow model exceeds a parsing limit",
         "Nodes, message nesting, field count or a string size are beyond the TensorFlow limits: "
         "the rest of the graph was not inspected.",
         ("CWE-400",)),
    Rule("TFG006", W, "TensorFlow model is not valid protobuf",
         "The bytes do not parse as the SavedModel, MetaGraphDef or GraphDef the name or content "
         "suggests (truncated, corrupt, or another protobuf): TensorFlow would refuse it too, and "
         "it was not inspected past the error.",
         ()),
    Rule("TFL001", W, "TensorFlow Lite model uses a custom operator",
         "A CUSTOM operator code runs a kernel the application registers with its op resolver "
         "(native code outside the model); the name says which one must be trusted.",
         ("https://www.tensorflow.org/lite/guide/ops_custom",)),
    Rule("TFL002", I, "TensorFlow Lite model uses Select TF (Flex) operators",
         "Flex* custom ops run full TensorFlow kernels through the Flex delegate; the delegate's "
         "allowlist decides which. Listed so a reviewer sees the model needs TensorFlow at run time.",
         ("https://www.tensorflow.org/lite/guide/ops_select",)),
    Rule("TFL003", W, "TensorFlow Lite Flex operator touches files or runs Python",
         "A Flex op names a TensorFlow op that reads or writes files, contacts the network or runs "
         "Python (the TFG op tables). It runs if the Flex delegate in use allows it.",
         ("https://www.tensorflow.org/lite/guide/ops_select",)),
    Rule("TFL004", W, "TensorFlow Lite buffer lies outside the file",
         "A buffer's offset/size (the large-model layout) or an operator's opcode index points "
         "outside what the file holds: corruption, or an attempt to make the runtime read beyond it.",
         ("CWE-125",)),
    Rule("TFL005", W, "TensorFlow Lite metadata holds code",
         "The description or a metadata buffer contains Python, shell or template-injection "
         "patterns (heuristic, as ONX107).",
         ("CWE-94",)),
    Rule("TFL006", I, "TensorFlow Lite metadata holds a URL",
         "The description or a metadata buffer names a URL; listed for review (heuristic).",
         ()),
    Rule("TFL008", W, "TensorFlow Lite model exceeds a parsing limit",
         "Tables, vector lengths or a string size are beyond the TensorFlow Lite limits: the rest "
         "of the model was not inspected.",
         ("CWE-400",)),
    Rule("TFL009", W, "TensorFlow Lite model is not a valid flatbuffer",
         "Offsets, vtables or vectors of the Model table point outside the file or are malformed "
         "(truncated, corrupt, or crafted to crash a reader).",
         ()),
    # --- PMM: PMML; MPK: Flax/msgpack and Orbax ---
    Rule("PMM001", C, "PMML declares an external entity or DTD (XXE)",
         "A DOCTYPE with a SYSTEM or PUBLIC entity or external DTD makes a resolving XML parser "
         "read local files or fetch URLs when the model is loaded (XML external entities, SSRF). "
         "PMML needs no DOCTYPE.",
         ("CWE-611", "https://owasp.org/www-community/vulnerabilities/XML_External_Entity_(XXE)_Processing")),
    Rule("PMM002", W, "PMML declares internal entities or a DOCTYPE",
         "Entity declarations expand at parse time (billion laughs) and exhaust a loader's "
         "memory; PMML needs no DOCTYPE at all.",
         ("CWE-776",)),
    Rule("PMM003", W, "PMML is not well-formed XML",
         "The document does not parse (or its root is not <PMML>): loaders refuse it or read it "
         "differently. Extensions were checked by pattern only.",
         ()),
    Rule("PMM004", I, "PMML references external resources",
         "A schemaLocation or an Extension names a URL: a validating or extending engine may "
         "fetch it. Listed so a download location is seen.",
         ("CWE-829",)),
    Rule("PMM005", C, "PMML Extension carries code",
         "An <Extension> holds Python, shell or script code. Engines with scripting extensions "
         "(Jython/JavaScript transformations) run it when the model is scored.",
         ("CWE-94",)),
    Rule("PMM006", W, "PMML Extension declares a script",
         "An <Extension> is named as a script (script, jython, python, javascript...) or holds "
         "code-like lines without a recognised dangerous call: engines that run Extension "
         "scripts would execute it.",
         ("CWE-94",)),
    Rule("PMM007", W, "PMML exceeds a parser limit",
         "Element nesting or count is beyond any real model: a denial-of-service attempt or "
         "corruption. The rest of the document was not analysed.",
         ("CWE-400",)),
    Rule("MPK001", W, "msgpack document is malformed",
         "The Flax/msgpack checkpoint is truncated or does not follow msgpack (bad type byte, "
         "lengths past the end, invalid UTF-8): the loader refuses it; nothing after the error "
         "was checked.",
         ("https://github.com/msgpack/msgpack/blob/master/spec.md",)),
    Rule("MPK002", W, "msgpack document exceeds a parser limit",
         "Nesting, value count or a string beyond any real checkpoint: a denial-of-service "
         "attempt or corruption. The part beyond the limit was not analysed.",
         ("CWE-400",)),
    Rule("MPK003", W, "msgpack ext type Flax does not define",
         "Flax writes ext types 1-3 (ndarray, complex, numpy scalar). Other ext types are decoded "
         "by whatever hook a custom loader installs; their payloads were classified and scanned.",
         ()),
    Rule("MPK004", W, "msgpack value holds another format (pickle, archive, executable)",
         "Flax never stores pickles or archives: bytes that read as one are a payload for a "
         "second-stage loader. They were scanned by the other scanners; their findings are listed.",
         ("CWE-502",)),
    Rule("MPK005", W, "msgpack array record is malformed or disagrees with its payload",
         "An ndarray record that is not (shape, dtype, bytes), names an object or unknown dtype, "
         "or whose shape times item size differs from its data length: np.frombuffer reads past "
         "or refuses it.",
         ("CWE-130",)),
    Rule("MPK006", W, "msgpack string holds code, markup or shell commands",
         "Checkpoint names and config strings never hold code; tools that render or evaluate "
         "them might run it.",
         ("CWE-94",)),
    Rule("MPK007", I, "msgpack string names URLs or file paths",
         "Listed so that a download location or a leaked local path is seen.",
         ()),
    Rule("MPK009", W, "msgpack file has bytes after the document",
         "The Flax loader refuses trailing data; such bytes are a place for a polyglot payload. "
         "Recognised content in them was scanned.",
         ()),
    # --- ORB: Orbax/JAX checkpoints ---
    Rule("ORB001", W, "Orbax metadata is malformed",
         "_CHECKPOINT_METADATA, _METADATA or zarr metadata is not the JSON object Orbax writes (does not parse, "
         "wrong type of a field): Orbax refuses or misreads it; nothing after the error was checked.",
         ("https://orbax.readthedocs.io/en/latest/guides/checkpoint/checkpoint_format.html",)),
    Rule("ORB002", W, "Orbax metadata or OCDBT file exceeds a parser limit",
         "Nesting, value count or node count beyond any real checkpoint: a denial-of-service attempt or "
         "corruption. The part beyond the limit was not analysed.",
         ("CWE-400",)),
    Rule("ORB003", W, "Orbax handler type names a module outside Orbax and JAX",
         "item_handlers (or another handler field) names a class outside orbax/flax/jax/numpy/tensorstore. "
         "Restoring without explicit handler args resolves the type string and imports its module, so the "
         "checkpoint picks code to run. Restore with explicit args, and check where the module comes from.",
         ("CWE-470",)),
    Rule("ORB004", W, "Orbax restore type names an arbitrary Python class",
         "value_type (or a restore type) is a dotted class, not one of Orbax's value types (jax.Array, "
         "np.ndarray, scalar, string): a restorer that builds it imports that module.",
         ("CWE-470",)),
    Rule("ORB005", W, "Orbax metadata string holds code, markup or shell",
         "Orbax writes type names, keys and numbers; code in its metadata is meant for a tool that evaluates or "
         "renders it.",
         ("CWE-94",)),
    Rule("ORB006", I, "Orbax metadata names URLs",
         "Listed so that a download location or a leaked endpoint is seen.",
         ()),
    Rule("ORB008", W, "OCDBT file is malformed",
         "An OCDBT manifest or node has a bad header (version, compression, length past the end of the file), "
         "a body that does not decode, or bytes after the manifest: TensorStore refuses it; nothing after the "
         "error was parsed.",
         ("https://google.github.io/tensorstore/kvstore/ocdbt/index.html",)),
    Rule("ORB009", W, "OCDBT data holds a pickle, script or archive",
         "OCDBT values are array chunks and node records. A pickle or archive inside one is a payload for a "
         "second-stage loader; a pickle was handed to the pickle scanner, whose findings are listed with it.",
         ("CWE-502",)),
    Rule("ORB010", I, "OCDBT content not fully searched",
         "A node or value could not be decoded within the limits (zstd budget, size), or a data file starts "
         "with raw values that are searched, not parsed. Coverage of that part is partial, not clean.",
         ()),
    Rule("ORB011", C, "Zarr array decodes its chunks with pickle",
         "The array's filters or codecs name the numcodecs pickle codec: reading the array runs pickle.loads on "
         "every chunk file, so whoever wrote the chunks runs code on restore. Do not read it.",
         ("CWE-502", "https://numcodecs.readthedocs.io/en/stable/other/pickles.html")),
    Rule("ORB012", W, "Zarr array needs a codec numcodecs does not ship",
         "A compressor, filter or codec id outside numcodecs and zarr's own (or an object dtype with no declared "
         "string/JSON/msgpack codec): decoding needs a codec registered by other code, which runs on read.",
         ("https://numcodecs.readthedocs.io/en/stable/",)),
    # --- MAN: image and archive manifests ---
    Rule("MAN001", W, "Image or archive manifest is malformed",
         "An OCI/Docker manifest or index, a docker-save manifest.json or a TorchServe MANIFEST.json does not "
         "have the fields and types its format defines: tools refuse it or read it differently.",
         ("https://github.com/opencontainers/image-spec/blob/main/manifest.md",)),
    Rule("MAN002", W, "OCI descriptor fetches content from URLs",
         "A descriptor lists urls (a foreign, non-distributable layer): the content is downloaded from those "
         "hosts at pull time, outside the registry and outside this scan.",
         ("https://github.com/opencontainers/image-spec/blob/main/descriptor.md#urls",)),
    Rule("MAN003", C, "Manifest path or digest escapes the archive",
         "A layer, config, model, handler or requirements path is absolute or climbs with '..', or a digest "
         "holds path characters: a loader that joins it to its directory reads or writes outside the archive.",
         ("CWE-22",)),
    Rule("MAN004", W, "Manifest digest is malformed",
         "A digest is not algorithm:hex of the algorithm's length: content addressing (the integrity check) "
         "cannot hold, and registries and runtimes refuse it.",
         ("https://github.com/opencontainers/image-spec/blob/main/descriptor.md#digests",)),
    Rule("MAN006", I, "Manifest names URLs",
         "Listed so that a download location or a leaked endpoint is seen.",
         ()),
    Rule("MAN007", I, "TorchServe archive runs a custom handler",
         "The handler is not one of TorchServe's built-in handlers: its Python module, shipped in the archive "
         "(and scanned as a member), runs in the model server when the model loads.",
         ("https://pytorch.org/serve/custom_service.html",)),
    Rule("MAN008", W, "TorchServe archive installs Python requirements",
         "requirementsFile is pip-installed when the server runs with install_py_dep_per_model: packages (and "
         "their setup code) from an index run on the server. Pin and review them.",
         ("https://pytorch.org/serve/configuration.html#allow-model-specific-custom-python-packages",)),
    Rule("MAN009", I, "TorchServe archive names a non-Python runtime",
         "runtime is not python/python3: the server starts another worker runtime for this model.",
         ()),
    # --- BIN: content embedded in any model (executables, secrets, network indicators) ---
    Rule("BIN001", C, "Executable embedded in a model",
         "An ELF, PE or Mach-O binary (header checked, not just its magic) sits inside model data: "
         "weights and metadata never hold machine code, so it is a dropper's payload or a polyglot "
         "waiting for a loader bug or a second stage to extract and run it. Scripts and archives found "
         "the same way are reported by the calling scanner at the severity it judges.",
         ("CWE-506", "https://attack.mitre.org/techniques/T1027/009/")),
    Rule("BIN002", W, "Secret embedded in a model",
         "A token, key, password or private key shape (masked in every report) in a model's metadata, "
         "configuration, strings or code. Whoever downloads the model can read it: revoke it and "
         "remove it from every copy. One rule for every format, so one query finds them all.",
         ("CWE-798", "CWE-312")),
    # --- OPQ: opaque compiled engines (TensorRT .engine/.plan/.trt) ---
    Rule("OPQ001", I, "Opaque compiled engine: only embedded code and plugin references were checked",
         "A serialized engine is vendor-compiled kernels for one GPU and one runtime version; its layout is "
         "undocumented, so its layers cannot be judged. It was searched for embedded executables (BIN001) "
         "and native plugin references (OPQ002) only. Trust it as far as you trust the build that made it.",
         ("https://docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/work-with-engines.html",)),
    Rule("OPQ002", W, "Engine needs native plugin code",
         "The engine names a shared library (lib*.so, .dll, .dylib) or the TensorRT plugin interfaces "
         "(getPluginCreator, IPluginV2/IPluginV3): deserialising it looks up plugin creators whose native "
         "code runs in the loading process. Check which plugin libraries the deployment loads and where "
         "they come from.",
         ("CWE-829", "https://docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/extending-custom-layers.html")),
    # --- WGT: weight statistics (shardscan/weights; evidence names tensor, statistic, threshold) ---
    Rule("WGT001", W, "Weights hold NaN or infinite values",
         "Trained weights are finite: none of 788 benign tensors held NaN or Inf. Non-finite values "
         "poison every output they reach, and exponent bit flips produce them. Tensors named like "
         "masks are reported as INFO: attention masks legitimately hold -inf.",
         ()),
    Rule("WGT002", W, "Weight magnitude far beyond trained values",
         "The largest |w| in a benign corpus was 391 (about 1000 in a published survey); a value over "
         "1e6 is a corrupted or deliberately flipped exponent bit, which silently degrades the model "
         "or plants a trigger.",
         ()),
    Rule("WGT003", W, "Weights carry low-order bits their precision cannot produce",
         "Almost every element of the tensor ends in a run of zero mantissa bits (an fp16 or bf16 "
         "origin), but some elements do not: low bits written after training, the signature of a "
         "payload hidden in the weights. INFO when the odd elements are whole trailing rows, as a "
         "vocabulary resize leaves them.",
         ()),
    Rule("WGT004", W, "Weight exponents flattened as by byte substitution (EvilModel)",
         "Trained weights hold about twice as many values in each odd binade as in the even one below; "
         "replacing the low three bytes of each float with payload bytes randomises the exponent's "
         "lowest bit and flattens that ratio in the block where the payload sits.",
         ("https://arxiv.org/abs/2107.08590", "https://arxiv.org/abs/2109.04344")),
    Rule("WGT005", C, "Executable or archive header in the low bits of weights",
         "The low bits of consecutive weights, read as a byte stream, begin an ELF, PE or script "
         "header (CRITICAL) or a zip local header (WARNING): a payload smuggled through the weights "
         "for a second stage to extract. Encryption would hide it; a plain header is conclusive.",
         ("CWE-506", "https://arxiv.org/abs/2107.08590")),
    Rule("WGT101", I, "Classification-head class outlier (opt-in, informational)",
         "One class of a classification head has a per-class weight norm or mean far from the other "
         "classes by robust z-score, which is how a class favoured by training (a backdoor target, for "
         "one) can look. Weight statistics alone separate backdoored from clean models poorly (AUC 0.71 "
         "on toy classifiers), so this is a lead to inspect, never a verdict. With --weights deep.",
         ()),
    Rule("WGT102", I, "Layer spread unlike its same-role peers (opt-in, informational)",
         "A layer's weight standard deviation is far off the other layers with the same role and shape, "
         "as a re-initialised or replaced layer looks. Deliberate re-initialisation before fine-tuning "
         "or separately trained layers explain it too. With --weights deep.",
         ()),
    Rule("WGT006", I, "Weight analysis incomplete",
         "Some tensors were not analysed within the object's time or size budget; the coverage in the "
         "report says which and how much. Absence of weight findings says nothing about them.",
         ()),
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
    # Coverage the format scanners could not complete or check:
    "ONX105": W, "GGF001": W, "CFG204": W, "CFG302": W, "KER009": W, "TRC108": W, "OPQ001": W,
    "WGT006": W,
}
