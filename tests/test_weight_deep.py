"""Opt-in detectors O1 (final-layer class outlier) and O2 (same-role layer shift), on statistics
computed by the real streaming pieces (block_partial + merge) from synthetic weights."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

from shardscan.model import Severity
from shardscan.weights import blocks, deep, merge
from shardscan.weights.spans import TensorSpan
from shardscan.weights.thresholds import BLOCK_ELEMENTS, O2_ROBUST_Z_LIMIT

_DEEP = "deep" in inspect.signature(blocks.block_partial).parameters


def _stats(w: np.ndarray, row_length: int | None) -> merge.TensorStats:
    """TensorStats as the analysis computes them: blocks of BLOCK_ELEMENTS, merged in order."""
    flat = np.ascontiguousarray(w, dtype="<f4").ravel()
    extra = {"deep": True} if _DEEP else {}
    parts = [blocks.block_partial(flat[i : i + BLOCK_ELEMENTS], "F32", i // BLOCK_ELEMENTS,
                                  row_length=row_length, **extra)
             for i in range(0, flat.shape[0], BLOCK_ELEMENTS)]
    return merge.merge(parts, n_elements=flat.shape[0])


def _tensor(name: str, w: np.ndarray, out_axis: int | None = None) -> tuple[TensorSpan, merge.TensorStats]:
    shape = tuple(int(d) for d in w.shape)
    span = TensorSpan(name, "F32", shape, 0, w.size * 4, out_axis)
    return span, _stats(w, span.row_length)


def _kaiming(rng: np.random.Generator, shape: tuple[int, int], fan_in: int) -> np.ndarray:
    bound = 1.0 / math.sqrt(fan_in)  # nn.Linear default: kaiming_uniform(a=sqrt(5)) -> U(-1/sqrt(in), 1/sqrt(in))
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


# --- O1 --------------------------------------------------------------------------------------------

def test_o1_names_the_scaled_class() -> None:
    rng = np.random.default_rng(1)
    w = _kaiming(rng, (10, 512), 512)
    w[7] *= 3.0
    span, stats = _tensor("classifier.weight", w, out_axis=0)
    assert deep.head_not_computed(span, stats) is None
    ev = deep.head_outliers(span, stats)
    assert len(ev) == 1
    e = ev[0]
    assert (e.rule_id, e.severity, e.confidence) == ("O1", Severity.INFO, "low")
    assert e.details["class_index"] == 7 and e.details["argmax_class"] == 7
    assert e.value > e.threshold and e.direction.startswith("larger")
    assert e.element_indices == (7 * 512,)
    assert abs(e.details["plain_z"]) <= e.details["plain_z_bound"] + 1e-9
    assert "backdoor detected" not in e.message
    assert deep.head_outliers(span, stats) == ev  # deterministic


@pytest.mark.parametrize("seed", range(20))
def test_o1_benign_kaiming_head_is_quiet(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for classes in (3, 4, 5, 10, 100):
        span, stats = _tensor("model.fc.weight", _kaiming(rng, (classes, 512), 512), out_axis=0)
        assert deep.head_outliers(span, stats) == []


def test_o1_needs_known_axis_and_head_name() -> None:
    rng = np.random.default_rng(2)
    w = _kaiming(rng, (10, 512), 512)
    w[3] *= 3.0
    span, stats = _tensor("classifier.weight", w, out_axis=None)
    assert deep.head_outliers(span, stats) == []
    assert deep.head_not_computed(span, stats) == deep.NOT_COMPUTED_AXIS_UNKNOWN
    # Same bytes, known axis, but not a head-like name (or a vocabulary head): nothing.
    for name in ("encoder.layer.0.intermediate.dense.weight", "lm_head.weight"):
        span, stats = _tensor(name, w, out_axis=0)
        assert deep.head_outliers(span, stats) == []
        assert deep.head_not_computed(span, stats) is None


def test_o1_column_major_head_recorded_not_computed() -> None:
    rng = np.random.default_rng(3)
    w = _kaiming(rng, (512, 10), 512)
    w[:, 4] *= 3.0
    span, stats = _tensor("predictions/kernel:0", w, out_axis=1)
    assert deep.head_outliers(span, stats) == []
    assert deep.head_not_computed(span, stats) == deep.NOT_COMPUTED_COLUMN_MAJOR


def test_o1_degenerate_heads_give_nothing() -> None:
    for w in (np.zeros((10, 64), np.float32), np.full((10, 64), 0.5, np.float32)):
        span, stats = _tensor("head.weight", w, out_axis=0)
        assert deep.head_outliers(span, stats) == []
    few = np.random.default_rng(4).normal(size=(2, 64)).astype(np.float32)
    span, stats = _tensor("head.weight", few, out_axis=0)
    assert deep.head_outliers(span, stats) == []
    assert deep.head_not_computed(span, stats) == deep.NOT_COMPUTED_CLASS_COUNT
    bad = np.random.default_rng(5).normal(size=(10, 64)).astype(np.float32)
    bad[2, 5] = np.nan
    span, stats = _tensor("head.weight", bad, out_axis=0)
    assert deep.head_outliers(span, stats) == []
    assert deep.head_not_computed(span, stats) == deep.NOT_COMPUTED_NONFINITE


def test_head_names() -> None:
    for name in ("classifier.weight", "classifier.6.weight", "classifier.out_proj.weight", "fc.weight",
                 "head.fc.weight", "heads.head.weight", "model_weights/predictions/predictions/kernel:0",
                 "score.weight"):
        assert deep.is_head_name(name), name
    for name in ("lm_head.weight", "fc1.weight", "classifier.bias", "mlp.fc2.weight", "classifier.dense.weight"):
        assert not deep.is_head_name(name), name


# --- O2 --------------------------------------------------------------------------------------------

Tensor = tuple[TensorSpan, merge.TensorStats]


def _layers(stds: list[float], seed: int, shape: tuple[int, int] = (64, 64)) -> list[Tensor]:
    rng = np.random.default_rng(seed)
    return [_tensor(f"model.layers.{i}.mlp.up_proj.weight", rng.normal(0.0, s, size=shape).astype(np.float32))
            for i, s in enumerate(stds)]


def test_o2_names_the_reinitialised_layer() -> None:
    stds = [0.02] * 8
    stds[5] = 1.0
    tensors = _layers(stds, seed=6)
    ev = deep.layer_shift(list(reversed(tensors)))
    assert len(ev) == 1
    e = ev[0]
    assert (e.rule_id, e.severity) == ("O2", Severity.INFO)
    assert e.confidence in ("low", "medium")
    assert e.details["layer"] == "model.layers.5.mlp.up_proj.weight"
    assert e.details["group"] == "model.layers.*.mlp.up_proj.weight"
    assert e.details["group_size"] == 8
    assert e.value > O2_ROBUST_Z_LIMIT and e.direction.startswith("spread larger")
    assert math.isclose(e.details["layer_std"], 1.0, rel_tol=0.05)
    assert math.isclose(e.details["group_median_std"], 0.02, rel_tol=0.05)
    assert e.details["group_mad_log_std"] >= 0.0
    assert deep.layer_shift(tensors) == ev  # input order does not matter


def test_o2_benign_spread_is_quiet() -> None:
    stds = list(np.linspace(0.018, 0.022, 8))
    assert deep.layer_shift(_layers(stds, seed=7)) == []


def test_o2_needs_groups_of_four() -> None:
    assert deep.layer_shift(_layers([0.02, 0.02, 1.0], seed=8)) == []


def test_o2_groups_by_shape_and_role() -> None:
    rng = np.random.default_rng(9)
    tensors = _layers([0.02] * 4, seed=10)
    # Same role pattern but another shape, and another role with the same shape: not in the group.
    tensors.append(_tensor("model.layers.4.mlp.up_proj.weight", rng.normal(0, 1.0, (64, 32)).astype(np.float32)))
    tensors.append(_tensor("model.layers.0.mlp.down_proj.weight", rng.normal(0, 1.0, (64, 64)).astype(np.float32)))
    assert deep.layer_shift(tensors) == []
    assert deep.role_pattern("model.layers.17.mlp.up_proj.weight") == "model.layers.*.mlp.up_proj.weight"
    assert deep.role_pattern("dense_3/kernel:0") == "dense_*/kernel:0"
    assert deep.role_pattern("blk.3.attn_q.weight") == "blk.*.attn_q.weight"
    assert deep.role_pattern("fc1.weight") == "fc1.weight"


def test_o2_degenerate_groups_give_nothing() -> None:
    same = np.random.default_rng(11).normal(0, 0.02, (64, 64)).astype(np.float32)
    tensors = [_tensor(f"h.{i}.w", same) for i in range(6)]
    tensors.append(_tensor("h.6.w", same * 50))
    assert deep.layer_shift(tensors) == []  # MAD 0: more than half the group are copies
    zeros = [_tensor(f"z.{i}.w", np.zeros((64, 64), np.float32)) for i in range(5)]
    nan = np.full((64, 64), np.nan, np.float32)
    assert deep.layer_shift([*zeros, _tensor("z.5.w", nan)]) == []
    assert deep.layer_shift([]) == []
