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
    #: Largest SafeTensors JSON header parsed: the format's own maximum (the reference loader
    #: refuses larger headers). It is parsed in memory, up to about 15x its size at worst.
    max_safetensors_header: int = 100_000_000
    #: Tensor entries checked per file (counted before the parse too); real files hold at
    #: most about 1e5, and 1e6 entries take some seconds to parse and check.
    max_safetensors_tensors: int = 1_000_000
    #: Dimensions of one tensor shape: NumPy's maximum (64 in NumPy 2); no checkpoint nears it.
    max_safetensors_rank: int = 64
    #: Gaps and trailing regions classified (two reads each) and handed to other scanners
    #: per file; the rest are only reported.
    max_safetensors_hidden_regions: int = 16
    #: Bytes of one gap or trailing region handed to the other scanners.
    max_safetensors_hidden_bytes: int = 256 * MiB
    # -- GGUF and GGML, chat templates ----------------------------------------------------------
    #: GGUF tensors: the largest published models (MoE with per-expert tensors) hold tens of
    #: thousands; a count beyond this is a parser DoS, not a model.
    max_gguf_tensors: int = 1_000_000
    #: GGUF metadata pairs: real files hold a few dozen (the vocabulary is one array).
    max_gguf_kv: int = 1_000_000
    #: Elements of one GGUF metadata array, nested ones included: vocabularies and merges run
    #: to a few hundred thousand.
    max_gguf_array_items: int = 16_000_000
    #: Nesting of GGUF arrays of arrays: the format allows it, no file needs more than one level.
    max_gguf_array_depth: int = 8
    #: One GGUF metadata string (chat templates are the longest, tens of KiB).
    max_gguf_string: int = 64 * MiB
    #: One GGUF key or tensor name (llama.cpp caps tensor names at 64 bytes).
    max_gguf_key: int = 64 * KiB
    #: Characters of one chat template analysed; real ones are under 64 KiB.
    max_template_chars: int = 1 * MiB
    # -- ONNX -----------------------------------------------------------------------------------
    #: Nodes walked in all graphs, subgraphs and functions of one model; exported LLM graphs
    #: hold a few hundred thousand.
    max_onnx_nodes: int = 5_000_000
    #: Graphs nested in node attributes (If/Loop/Scan bodies): protobuf's parser refuses
    #: messages nested deeper than 100, about 32 graph levels.
    max_onnx_graph_depth: int = 32
    #: Protobuf message and group nesting, as protobuf's default recursion limit.
    max_onnx_proto_depth: int = 100
    #: Protobuf fields walked per model (tensor bytes, types and value_info are skipped, not walked).
    max_onnx_fields: int = 50_000_000
    #: Largest string read into memory (names, domains, doc strings, metadata).
    max_onnx_string: int = 16 * MiB
    # -- Keras ----------------------------------------------------------------------------------
    #: Largest Keras config attribute read from an HDF5 file (model_config, training_config);
    #: real model_config attributes are a few KiB to a few MiB (large functional models).
    max_keras_config_bytes: int = 64 * MiB
    #: Nesting and values walked in one Keras config (nested Functional/Sequential models
    #: reach a few dozen levels; a 1,000-layer model has ~100k values).
    max_keras_config_depth: int = 256
    max_keras_config_nodes: int = 4_000_000
    #: Largest Lambda payload decoded (a marshalled lambda is a few hundred bytes).
    max_keras_lambda_code: int = 4 * MiB
    #: Bytes libhdf5 may read from one HDF5 file while only its root attributes are wanted
    #: (superblock, object headers, heaps): a model's weights are never read.
    max_hdf5_metadata_read: int = 256 * MiB
    # -- configuration and code -----------------------------------------------------------------
    # -- TensorFlow and TensorFlow Lite ----------------------------------------------------------
    #: Nodes walked in all graphs and library functions of one TensorFlow model (large
    #: SavedModels hold a few hundred thousand).
    max_tf_nodes: int = 5_000_000
    #: Protobuf message nesting and fields walked per TensorFlow file (as the ONNX limits).
    max_tf_proto_depth: int = 100
    max_tf_fields: int = 50_000_000
    #: Largest TensorFlow string read into memory (names, attr strings, Keras metadata JSON).
    max_tf_string: int = 64 * MiB
    #: Flatbuffer tables and vector elements visited in one TensorFlow Lite model.
    max_tflite_items: int = 10_000_000
    #: Largest TensorFlow Lite string or metadata buffer searched for text.
    max_tflite_string: int = 16 * MiB
    # -- PMML, Flax/msgpack and Orbax ------------------------------------------------------------
    #: Largest PMML document parsed: big ensembles exported by sklearn2pmml/JPMML reach a few
    #: hundred MiB; beyond this the file is reported, not parsed.
    max_pmml_bytes: int = 1 * GiB
    #: Bytes of the prolog searched for DOCTYPE and ENTITY declarations.
    max_pmml_prolog: int = 1 * MiB
    #: XML nesting: deep decision trees nest a Node per level (a few hundred at most).
    max_pmml_depth: int = 2_000
    #: Elements walked: a 500-tree forest of 10k nodes holds about 15 million.
    max_pmml_elements: int = 50_000_000
    #: Characters of one Extension (attributes and text) checked for code, URLs and secrets.
    max_pmml_extension_chars: int = 1 * MiB
    #: msgpack nesting: Flax parameter trees nest a dozen levels.
    max_msgpack_depth: int = 256
    #: msgpack values walked (array data counts as one value): checkpoints hold a few per parameter.
    max_msgpack_values: int = 20_000_000
    #: Longest msgpack string analysed (names and config strings are short).
    max_msgpack_string: int = 16 * MiB
    #: Embedded payloads (bytes values, unknown ext types) handed to the other scanners per file.
    max_msgpack_members: int = 64
    # orbax
    #: Decoded body of one OCDBT node or zstd value (TensorStore's default max_decoded_node_bytes
    #: is 8 MiB; zarr chunks Orbax writes are a few MiB).
    max_ocdbt_node_bytes: int = 64 * MiB
    #: zstd output decoded per OCDBT file, all nodes and values together; beyond it, ORB010.
    max_ocdbt_decoded_bytes: int = 256 * MiB
    #: Encoded nodes walked in one OCDBT file (a data file holds a few hundred).
    max_ocdbt_nodes: int = 1_000_000
    #: Raw bytes of one OCDBT file searched for executables and pickles.
    max_ocdbt_search_bytes: int = 4 * GiB
    #: Candidate pickles (PROTO bytes) and zstd frames tried per OCDBT file: a file packed with
    #: those magics cannot make the search quadratic; beyond it, ORB010.
    max_ocdbt_probes: int = 20_000
    #: Embedded pickles handed to the other scanners per OCDBT file.
    max_orbax_members: int = 64
    #: Descriptors, layers or entries checked per image or archive manifest (real ones hold dozens).
    max_manifest_entries: int = 100_000
    # -- embedded content (executables, secrets, network indicators) -----------------------------
    #: Matches one call of scanners.indicators returns (secrets, URLs, network uses, executables):
    #: a blob packed with magics or token shapes cannot grow a list without bound.
    max_indicator_matches: int = 256
    #: Longest string searched for secrets where a scanner would otherwise only skip over it
    #: (GGUF metadata values, pickle strings): names, paths and tokens are far shorter.
    max_secret_text: int = 64 * 1024
    #: Shortest string worth a look: no token shape is shorter.
    min_secret_text: int = 12
    #: Largest Python source, YAML or template analysed; real modeling files and configs are a
    #: few hundred KiB at most.
    max_text_bytes: int = 16 * MiB
    #: Largest JSON parsed: tokenizer.json of large-vocabulary models reaches 30+ MiB.
    max_json_bytes: int = 64 * MiB
    #: JSON/YAML nesting; real configs nest a dozen levels (Keras functional models ~30).
    max_config_depth: int = 256
    #: JSON values / YAML nodes walked, counting YAML aliases as expanded (billion laughs).
    max_config_nodes: int = 4_000_000
    #: AST nodes walked in one Python file (a 10k-line modeling file has ~150k).
    max_ast_nodes: int = 2_000_000

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
    # -- weights ---------------------------------------------------------------------------------
    #: Tensor spans a scanner hands to the weight analysis per file (real models hold at most
    #: about 1e5 tensors); the rest are recorded as one skipped "<more tensors>" span.
    max_tensor_spans: int = 1_000_000
    #: Weight bytes analysed per object. At about 1 GB/s per core, 64 GiB stays within the
    #: default 300 s object timeout; beyond it tensors are recorded as skipped (WGT006), never
    #: silently passed.
    max_weight_bytes: int = 64 * GiB
    #: Elements after a block read with it, so a low-bit header starting in the block's last
    #: elements is still validated.
    weight_tail_elements: int = 4096

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) <= 0:
                raise ValueError(f"limit {f.name} must be positive")


DEFAULT_LIMITS = Limits()
