"""Scanners, one per format family, registered here explicitly and in one place.

The table is data, so start-up imports no scanner: a scanner module is imported the first
time content of one of its formats is met. A scanner's `version` enters the policy version
that keys cached results: bump it when its findings may change.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING

from shardscan.scanners import detect as fmt

if TYPE_CHECKING:
    from shardscan.scanners.base import Scanner


@dataclass(frozen=True, slots=True)
class ScannerEntry:
    id: str
    version: int
    formats: tuple[str, ...]
    #: "module:Class"
    target: str

    def load(self) -> Scanner:
        return _instance(self.target)


@cache
def _instance(target: str) -> Scanner:
    module, _, name = target.partition(":")
    return getattr(import_module(module), name)()


#: Scanners of formats. Each format family adds its entry on its own line.
_FORMAT_SCANNERS: tuple[ScannerEntry, ...] = (
    ScannerEntry("pickle", 1, (fmt.PICKLE,), "shardscan.scanners.pickle.scanner:PickleScanner"),
    ScannerEntry("zip", 1, (fmt.ZIP,), "shardscan.scanners.ziparchive:ZipScanner"),
    ScannerEntry("npy", 1, (fmt.NPY,), "shardscan.scanners.npy:NpyScanner"),
    ScannerEntry("compressed", 1, fmt.COMPRESSED_STREAMS, "shardscan.scanners.compressed:CompressedScanner"),
    ScannerEntry("tar", 1, (fmt.TAR,), "shardscan.scanners.tararchive:TarScanner"),
    ScannerEntry("7z", 1, (fmt.SEVENZ,), "shardscan.scanners.sevenzip:SevenZipScanner"),
    # safetensors scanner
    ScannerEntry("safetensors", 1, (fmt.SAFETENSORS,), "shardscan.scanners.safetensors:SafeTensorsScanner"),
    # gguf scanner
    ScannerEntry("gguf", 1, (fmt.GGUF, fmt.GGML), "shardscan.scanners.gguf:GgufScanner"),
    ScannerEntry("onnx", 1, (fmt.ONNX,), "shardscan.scanners.onnx_model:OnnxScanner"),
    ScannerEntry("keras", 1, (fmt.HDF5,), "shardscan.scanners.keras:KerasH5Scanner"),
    ScannerEntry("opaque", 1, (fmt.OPAQUE_ENGINE,), "shardscan.scanners.opaque:OpaqueEngineScanner"),
    # tensorflow scanner
    ScannerEntry("tensorflow", 1, (fmt.TF_GRAPH,), "shardscan.scanners.tensorflow:TensorFlowScanner"),
    # pmml scanner
    ScannerEntry("pmml", 1, (fmt.PMML,), "shardscan.scanners.pmml:PmmlScanner"),
    # msgpack scanner
    ScannerEntry("msgpack", 1, (fmt.MSGPACK,), "shardscan.scanners.msgpack_model:MsgpackScanner"),
    # orbax scanner
    ScannerEntry("orbax", 1, (fmt.OCDBT,), "shardscan.scanners.orbax:OcdbtScanner"),
    # tflite scanner
    ScannerEntry("tflite", 1, (fmt.TFLITE,), "shardscan.scanners.tflite:TFLiteScanner"),
    ScannerEntry("text", 1, (fmt.TEXT,), "shardscan.scanners.text:TextScanner"),
)
_ANALYSED = {f for entry in _FORMAT_SCANNERS for f in entry.formats}

SCANNERS: tuple[ScannerEntry, ...] = (
    *_FORMAT_SCANNERS,
    # The fallback: what no scanner above analyses is reported, never silently dropped.
    ScannerEntry("unanalysed", 1, (fmt.EMPTY, fmt.UNKNOWN, *(f for f in fmt.NOT_ANALYSED if f not in _ANALYSED),
                                   *fmt.EXECUTABLES), "shardscan.scanners.unanalysed:UnanalysedScanner"),
)


def registry() -> dict[str, ScannerEntry]:
    """Entries by id; a duplicate id or format is a programming error."""
    out: dict[str, ScannerEntry] = {}
    formats: set[str] = set()
    for entry in SCANNERS:
        if entry.id in out:
            raise ValueError(f"duplicate scanner id {entry.id}")
        overlap = formats & set(entry.formats)
        if overlap:
            raise ValueError(f"formats {sorted(overlap)} claimed twice")
        formats |= set(entry.formats)
        out[entry.id] = entry
    return out
