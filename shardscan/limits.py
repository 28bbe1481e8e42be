"""Every bound a parser respects, in one place, each with the reason for its default.

A parser that meets a limit stops cleanly and reports it (PKL305, CNT107-109, FMT005); it never
allocates what a file merely claims.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


@dataclass(frozen=True, slots=True)
class Limits:
    #: Largest pickle stream walked opcode by opcode; real checkpoints' pickles hold a few
    #: million opcodes at most (the tensor bytes are skipped, not walked).
    max_pickle_opcodes: int = 20_000_000
    #: Memo entries: a state dict memoises a few per tensor.
    max_pickle_memo: int = 5_000_000
    #: Symbolic stack depth plus MARK nesting.
    max_pickle_stack: int = 1_000_000
    #: Elements reachable through memo GETs of containers before we call it an expansion attack.
    max_pickle_expansion: int = 10_000_000
    #: Literals up to this size are always kept (names, keys, short strings).
    small_literal: int = 4 * KiB
    #: Largest single literal kept in memory, and all literals kept per stream; beyond either,
    #: a literal becomes an (offset, length) reference read again only if a payload needs it.
    max_inline_literal: int = 1 * MiB
    max_retained_literals: int = 8 * MiB
    #: Largest payload decoded (base64, hex, zlib...) to look inside it.
    max_decoded_payload: int = 64 * MiB
    #: Longest protocol-0 text line (GLOBAL, INT, STRING...).
    max_pickle_line: int = 1 * MiB
    #: Pickles inside pickles (loads of embedded bytes), and pickles stacked in one stream.
    max_nested_pickle_depth: int = 4
    max_pickles_per_stream: int = 64
    #: Bytes tried when deciding whether content without magic is a protocol 0/1 pickle.
    pickle_trial_bytes: int = 64 * KiB
    #: Archive nesting (zip in tar in gzip...).
    max_archive_depth: int = 6
    #: Members inspected per archive; torch zips have a few thousand at most.
    max_archive_members: int = 100_000
    #: Decompressed bytes inspected per member and per archive, and the ratio of a bomb.
    max_member_size: int = 16 * GiB
    max_total_uncompressed: int = 64 * GiB
    max_compression_ratio: int = 1_000
    #: Compressed streams only exceed the ratio limit once this much has come out.
    ratio_grace_bytes: int = 64 * MiB
    #: Decompressed members up to this size stay in memory; larger ones spill to a temp file.
    spool_in_memory: int = 8 * MiB
    #: Read size for sequential parsing: large enough to amortise calls, small for memory.
    stream_chunk: int = 1 * MiB
    #: Largest NumPy .npy header (NumPy itself refuses more than 10 KiB by default).
    max_npy_header: int = 1 * MiB
    #: Largest zip central directory read into memory.
    max_zip_directory: int = 256 * MiB

    # -- SafeTensors ---------------------------------------------------------------------------
    # -- GGUF and GGML, chat templates ----------------------------------------------------------
    # -- ONNX -----------------------------------------------------------------------------------
    # -- Keras ----------------------------------------------------------------------------------
    # -- configuration and code -----------------------------------------------------------------

    # -- the pipeline ------------------------------------------------------------------------
    #: Most bytes of one object a unit covers (`--chunk-size`): what one worker holds at once.
    chunk_size: int = 64 * MiB
    #: Small reads against an object store are served from aligned blocks of this size, a few
    #: kept per open object: one round trip serves a head, a tail or a zip directory.
    remote_block: int = 1 * MiB
    remote_blocks: int = 8
    #: Times a task whose worker died (killed, node lost) is tried again before its objects are
    #: recorded as errors.
    max_task_retries: int = 2
    #: Small objects are batched into one task up to this many, so per-task overhead (about a
    #: millisecond on Ray) stays small next to the work.
    max_objects_per_task: int = 256

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) <= 0:
                raise ValueError(f"limit {f.name} must be positive")


DEFAULT_LIMITS = Limits()
