"""Benchmark inputs, written byte by byte without torch or joblib installed.

`torch_zip` writes a PyTorch-layout zip (archive/data.pkl, archive/data/N, version, byteorder)
whose data.pkl is what torch.save writes for a state dict: protocol 2, `_rebuild_tensor_v2`,
BINPERSID storage tuples. `numpy_pickle` writes a pickle of many NumPy arrays.
"""

from __future__ import annotations

import os
import pickle
import struct
import zipfile
from pathlib import Path

MiB = 1 << 20


def _sbu(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def state_dict_pickle(sizes: list[int]) -> bytes:
    """data.pkl for an OrderedDict of float32 tensors of `sizes` elements, one storage each."""
    out = [b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01("]
    for i, numel in enumerate(sizes):
        out.append(_sbu(f"layers.{i}.weight"))
        out.append(b"ctorch._utils\n_rebuild_tensor_v2\n(")
        out.append(b"(" + _sbu("storage") + b"ctorch\nFloatStorage\n" + _sbu(str(i)) + _sbu("cpu")
                   + b"J" + struct.pack("<i", numel) + b"tQ")
        out.append(b"K\x00J" + struct.pack("<i", numel) + b"\x85K\x01\x85\x89ccollections\nOrderedDict\n)Rt")
        out.append(b"R")
    out.append(b"u.")
    return b"".join(out)


def torch_zip(path: Path, total_bytes: int, tensor_bytes: int = 64 * MiB) -> Path:
    """A stored (uncompressed) torch zip of about `total_bytes` of float32 storages."""
    count = max(1, total_bytes // tensor_bytes)
    sizes = [tensor_bytes // 4] * count
    block = os.urandom(MiB)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", state_dict_pickle(sizes))
        zf.writestr("archive/byteorder", "little")
        for i, numel in enumerate(sizes):
            with zf.open(f"archive/data/{i}", "w", force_zip64=True) as member:
                for _ in range(numel * 4 // MiB):
                    member.write(block)
        zf.writestr("archive/version", "3\n")
    return path


def numpy_pickle(path: Path, total_bytes: int, arrays: int = 1000, protocol: int = 4) -> Path:
    """A pickle of a dict of `arrays` float32 NumPy arrays, as scikit-learn and joblib
    users save them (written by pickle.dumps; nothing is loaded)."""
    import numpy as np

    rng = np.random.default_rng(0)
    per = total_bytes // arrays // 4
    data = {f"w{i}": rng.standard_normal(per).astype(np.float32) for i in range(arrays)}
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    return path


def tiny_pickle(path: Path) -> Path:
    path.write_bytes(pickle.dumps({"weight": [0.1, 0.2], "epoch": 3}, protocol=4))
    return path
