"""Tests for the one streaming driver and its memory policy (prunesim.metrics.streaming)."""

from __future__ import annotations

import numpy as np
import pytest

from prunesim.metrics.streaming import (
    Policy,
    Side,
    array_side,
    cross_groups,
    keeps_centred_data,
    stream,
    wants_samples,
)


def test_the_memory_policy_keeps_data_when_p_exceeds_n_or_a_kernel_needs_it():
    assert keeps_centred_data(live=11, rows=10, samples_wanted=False)
    assert not keeps_centred_data(live=10, rows=10, samples_wanted=False)
    assert keeps_centred_data(live=3, rows=10, samples_wanted=True)
    assert wants_samples(True, rows=100, pairwise_max_samples=100)
    assert not wants_samples(True, rows=101, pairwise_max_samples=100)
    assert not wants_samples(False, rows=1, pairwise_max_samples=None)
    assert wants_samples(True, rows=10**9, pairwise_max_samples=None)


def _two_layer_side(rng, n: int, widths: dict[str, int], step: int) -> Side:
    data = {name: rng.standard_normal((n, p)) for name, p in widths.items()}

    def blocks(size):
        size = size or step
        for start in range(0, n, size):
            yield {name: x[start : start + size] for name, x in data.items()}

    return Side(blocks, step, {name: (lambda b, k=name: b[k]) for name in widths})


def test_cross_products_fit_the_budget_across_all_pairs_or_take_more_passes(rng):
    side_a = _two_layer_side(rng, 50, {"u": 8, "v": 16}, step=20)
    side_b = _two_layer_side(rng, 50, {"w": 4, "z": 32}, step=20)
    pairs = [(a, b) for a in ("u", "v") for b in ("w", "z")]
    sizes = {
        (a, b): 8 * pa * pb for a, pa in (("u", 8), ("v", 16)) for b, pb in (("w", 4), ("z", 32))
    }
    budget_bytes = 4096 + 1024
    policy = Policy(cross_memory_mb=budget_bytes / 2**20)
    for side in (side_a, side_b):
        side.first_pass(policy)
    groups = cross_groups(pairs, side_a, side_b, policy)
    assert [p for g in groups for p in g] == pairs
    assert all(sum(sizes[p] for p in g) <= budget_bytes or len(g) == 1 for g in groups)
    assert len(cross_groups(pairs, side_a, side_b, Policy())) == 1  # no budget: one pass


def test_streamed_statistics_and_cross_products_do_not_depend_on_the_budget(rng):
    def run(budget):
        local = np.random.default_rng(0)
        side_a = _two_layer_side(local, 50, {"u": 8, "v": 16}, step=20)
        side_b = _two_layer_side(local, 50, {"w": 4, "z": 32}, step=15)
        pairs = [(a, b) for a in ("u", "v") for b in ("w", "z")]
        return stream(side_a, side_b, pairs, Policy(cross_memory_mb=budget))

    one, many = run(None), run(1e-6)
    assert one.crosses.keys() == many.crosses.keys()
    for key in one.crosses:
        assert np.array_equal(one.crosses[key], many.crosses[key])
    for key in one.stats_a:
        assert np.array_equal(one.stats_a[key].cov, many.stats_a[key].cov)


def test_a_pair_of_arrays_gives_the_exact_centred_statistics(rng):
    x, y = rng.standard_normal((30, 5)), rng.standard_normal((30, 40))  # y: p > n keeps data
    streamed = stream(
        array_side(x, chunk_rows=7), array_side(y, chunk_rows=7), [("x", "x")], Policy()
    )
    cx, cy = x - x.mean(axis=0), y - y.mean(axis=0)
    np.testing.assert_allclose(streamed.stats_a["x"].cov, cx.T @ cx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(streamed.stats_b["x"].data, cy, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(streamed.crosses["x", "x"], cx.T @ cy, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("rows_a", "rows_b", "chunk_rows", "width", "keep", "message"),
    [
        (10, 12, None, 3, False, "more samples"),  # even blocks: 12 rows read as 10 + 2
        (12, 8, 4, 3, False, "fewer samples"),  # the second side runs out of blocks
        (12, 10, None, 3, False, "blocks of 12 and 10 samples"),
        (10, 9, None, 30, False, "blocks of 10 and 9 samples"),  # p > n: no XᵀY streamed
        (10, 9, None, 3, True, "blocks of 10 and 9 samples"),  # samples kept: no XᵀY streamed
    ],
)
def test_sides_with_different_sample_counts_are_refused(
    rng, rows_a, rows_b, chunk_rows, width, keep, message
):
    # whatever the blocks and whether XᵀY is streamed, no sample is dropped or left unpaired
    side_a, side_b = (
        array_side(rng.standard_normal((rows_a, width)), chunk_rows=chunk_rows),
        array_side(rng.standard_normal((rows_b, width)), chunk_rows=chunk_rows),
    )
    with pytest.raises(ValueError, match=message):
        stream(side_a, side_b, [("x", "x")], Policy(keep_samples=keep))
