"""The one streaming driver: every way the metrics are computed (two activation stores, two
in-memory arrays, one array) runs these two passes over blocks of samples.

Pass 1 finds each representation's column means and variances (:class:`ColumnMoments`), so
its neurons that do not vary (dropped). Pass 2 centres every block with those means and accumulates, per
representation, what the metrics need (:class:`LayerAccumulator`), and per layer pair the
cross-product ``XᵀY`` where one is needed.

The memory policy, stated once:

* a representation keeps its **centred data** (n × p) when p > n, where its Gram matrix is
  the cheaper route and the data is small exactly then, or when a metric of sample pairs (RBF
  CKA, k-NN Jaccard, RSA) needs the samples and n is at most ``pairwise_max_samples`` (its
  n × n matrices take 8 n² bytes each), or
  when the values are calibrated (permutations and bootstrap resample the samples);
  otherwise it keeps only its **covariance** ``XᵀX`` (p × p), which does not grow with n
  (:func:`keeps_centred_data`);
* a pair's ``XᵀY`` is streamed unless both sides keep their data (then it is formed from the
  data when needed); the ``XᵀY`` held at once stay within ``cross_memory_mb``: pairs that do
  not fit wait for another pass over the samples (:func:`cross_groups`);
* each representation reuses one block-sized buffer for its centred blocks, so the passes
  allocate nothing per block;
* a single call of a metric that needs only ``XᵀY`` and the traces (NBS, Procrustes:
  ``Metric.covariances``) accumulates no covariance either (``Policy.covariances``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from prunesim.metrics.backend import NUMPY
from prunesim.metrics.stats import ColumnMoments, LayerAccumulator, LayerStats, product

Block = Mapping[str, np.ndarray]
# An in-memory array's centred blocks: large enough that the products of a block run at the
# BLAS rate of the whole (one block for 5,000 × 500 instead of 4,096 + 904 rows)
ARRAY_BLOCK_BYTES = 32 * 2**20
Pair = tuple[Hashable, Hashable]


def wants_samples(pairwise: bool, rows: int, pairwise_max_samples: int | None) -> bool:
    """Whether a metric of sample pairs needs a representation's samples: one is asked for
    and its n × n matrices are allowed at ``rows`` samples (``None``: any n)."""
    return pairwise and (pairwise_max_samples is None or rows <= pairwise_max_samples)


def keeps_centred_data(live: int, rows: int, samples_wanted: bool) -> bool:
    """Whether a representation of ``live`` neurons over ``rows`` samples keeps its centred
    data rather than only its covariance (see the module docstring)."""
    return live > rows or samples_wanted


@dataclass(frozen=True)
class Policy:
    """How one streaming run treats its representations."""

    pairwise: bool = (
        False  # a metric of sample pairs (n × n) is computed: keep the samples where n allows
    )
    keep_samples: bool = False  # keep every representation's samples (calibration)
    pairwise_max_samples: int | None = None
    cross_memory_mb: float | None = None  # None: every XᵀY in one pass
    float32_products: bool = False
    backend: object = NUMPY
    covariances: bool = True  # False: a layer that keeps no data accumulates no XᵀX either

    def accumulator(self, moments: ColumnMoments) -> LayerAccumulator:
        wanted = self.keep_samples or wants_samples(
            self.pairwise, moments.n, self.pairwise_max_samples
        )
        keep = keeps_centred_data(int(moments.live().sum()), moments.n, wanted)
        return moments.accumulator(keep, self.float32_products, self.backend, self.covariances)


@dataclass
class Side:
    """A source of blocks of the same samples and the representations formed from a block.

    ``blocks(step)`` yields consecutive blocks of ``step`` samples (``None``: the source's own
    block size, ``step``); two sides are read in pass 2 with the first side's step, so their
    blocks hold the same samples."""

    blocks: Callable[[int | None], Iterable[Block]]
    step: int
    representations: dict[Hashable, Callable[[Block], np.ndarray]]
    accumulators: dict[Hashable, LayerAccumulator] = field(default_factory=dict)

    def first_pass(self, policy: Policy) -> None:
        moments: dict[Hashable, ColumnMoments] = {}
        for block in self.blocks(None):
            for key, form in self.representations.items():
                matrix = form(block)
                if key not in moments:
                    moments[key] = ColumnMoments(matrix.shape[1])
                moments[key].add(matrix)
        self.accumulators = {key: policy.accumulator(m) for key, m in moments.items()}

    def centred(self, block: Block, keys: Iterable[Hashable]) -> dict[Hashable, np.ndarray]:
        """The block's centred live neurons of each representation in ``keys`` (views of the
        representations' buffers: valid until the next block)."""
        return {
            key: self.accumulators[key].centred(self.representations[key](block)) for key in keys
        }


def cross_groups(
    pairs: Iterable[Pair], side_a: Side, side_b: Side, policy: Policy
) -> list[list[Pair]]:
    """The pairs whose ``XᵀY`` is streamed, in groups that fit ``policy.cross_memory_mb``
    (one pass over the samples per group)."""
    budget = None if policy.cross_memory_mb is None else policy.cross_memory_mb * 2**20
    groups: list[list[Pair]] = [[]]
    used = 0
    for ka, kb in pairs:
        acc_a, acc_b = side_a.accumulators[ka], side_b.accumulators[kb]
        if acc_a.keep_data and acc_b.keep_data:
            continue  # formed from the kept data when needed
        size = 8 * int(acc_a.live.sum()) * int(acc_b.live.sum())
        if budget is not None and used + size > budget and groups[-1]:
            groups.append([])
            used = 0
        groups[-1].append((ka, kb))
        used += size
    return groups


@dataclass
class Streamed:
    """What the two passes found: each side's per-representation statistics, and ``XᵀY`` of
    every streamed pair (a pair missing here keeps the data on both sides)."""

    stats_a: dict[Hashable, LayerStats]
    stats_b: dict[Hashable, LayerStats]
    crosses: dict[Pair, np.ndarray]


def stream(side_a: Side, side_b: Side | None, pairs: Iterable[Pair], policy: Policy) -> Streamed:
    """Both passes over ``side_a`` and ``side_b`` (``None`` or ``side_a`` itself: one side,
    compared with itself), with ``XᵀY`` of ``pairs`` (keys of side a's and side b's
    representations, whose blocks must have the same number of rows)."""
    same = side_b is None or side_b is side_a
    side_b = side_a if same else side_b
    for side in (side_a,) if same else (side_a, side_b):
        side.first_pass(policy)
    groups = cross_groups(pairs, side_a, side_b, policy)
    crosses: dict[Pair, np.ndarray] = {}
    for index, group in enumerate(groups):
        first = index == 0  # the per-representation statistics are summed in the first pass
        keys_a = list(side_a.accumulators) if first else list(dict.fromkeys(a for a, _ in group))
        keys_b = list(side_b.accumulators) if first else list(dict.fromkeys(b for _, b in group))
        if same:
            keys_a = list(dict.fromkeys(keys_a + keys_b))
        blocks_b = None if same else iter(side_b.blocks(side_a.step))
        for block_a in side_a.blocks(side_a.step):
            centred_a = side_a.centred(block_a, keys_a)
            centred_b = (
                centred_a if same else side_b.centred(_matching_block(blocks_b, block_a), keys_b)
            )
            if first:
                for key, centred in centred_a.items():
                    side_a.accumulators[key].add(centred)
                if not same:
                    for key, centred in centred_b.items():
                        side_b.accumulators[key].add(centred)
            for ka, kb in group:
                a, b = centred_a[ka], centred_b[kb]
                if a.shape[0] != b.shape[0]:
                    raise ValueError(
                        f"pair {ka} / {kb}: blocks of {a.shape[0]} and {b.shape[0]} rows"
                    )
                chunk_cross = product(a, b, policy.float32_products, policy.backend)
                if (ka, kb) in crosses:
                    crosses[ka, kb] += chunk_cross
                else:
                    crosses[ka, kb] = chunk_cross
        if blocks_b is not None and next(blocks_b, None) is not None:
            raise ValueError("the second side has more samples than the first")
    results = []
    for side in (side_a,) if same else (side_a, side_b):
        results.append({key: acc.result() for key, acc in side.accumulators.items()})
        side.accumulators = {}
    return Streamed(results[0], results[-1], crosses)


def _samples(block: Block) -> int:
    return len(next(iter(block.values()))) if block else 0


def _matching_block(blocks: Iterator[Block], block_a: Block) -> Block:
    """The second side's next block, which must hold as many samples as the first side's."""
    block = next(blocks, None)
    if block is None:
        raise ValueError("the second side has fewer samples than the first")
    if _samples(block) != _samples(block_a):
        raise ValueError(
            f"blocks of {_samples(block_a)} and {_samples(block)} samples on the two sides"
        )
    return block


def array_side(x: np.ndarray, key: Hashable = "x", chunk_rows: int | None = None) -> Side:
    """An in-memory ``n × p`` array as a side of one representation, read in blocks the way a
    store is read, so that temporaries stay block-sized: of ``chunk_rows`` rows, by default
    as many as fill ``ARRAY_BLOCK_BYTES`` in float64 (at least 4,096). The blocks are of even
    size: a short last block costs its products' fixed overhead for little work."""
    n = len(x)
    if chunk_rows is None:
        chunk_rows = max(4096, ARRAY_BLOCK_BYTES // (8 * max(x.shape[1], 1)))
    chunk_rows = -(-n // -(-n // chunk_rows)) if n else chunk_rows

    def blocks(step: int | None) -> Iterable[Block]:
        step = step or chunk_rows
        for start in range(0, n, step):
            yield {key: x[start : start + step]}

    return Side(blocks, chunk_rows, {key: lambda block: block[key]})
