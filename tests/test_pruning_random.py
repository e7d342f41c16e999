"""Random pruning baselines: they mirror an IMP round's sparsity, nest, and stay reproducible."""

import pytest
import torch

from prunesim.pruning.magnitude import magnitude_step
from prunesim.pruning.masks import full_masks, is_nested
from prunesim.pruning.random import random_step


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def imp_rounds(make_model):
    """A LeNet-5 and its dense mask followed by three global IMP masks at rate 0.4."""
    model = make_model("lenet5")
    masks = [full_masks(model)]
    for _ in range(3):
        masks.append(magnitude_step(model, masks[-1], 0.4, "global"))
    return masks


def _kept(masks) -> dict[str, int]:
    return {name: int(mask.sum()) for name, mask in masks.items()}


def test_random_global_keeps_the_imp_rounds_total_count_in_every_round(imp_rounds):
    current = imp_rounds[0]
    for reference in imp_rounds[1:]:
        new = random_step(current, reference, "global", _generator())
        assert sum(_kept(new).values()) == sum(_kept(reference).values())
        assert is_nested(new, current)
        current = new


def test_random_layerwise_keeps_the_imp_rounds_count_in_every_layer(imp_rounds):
    current = imp_rounds[0]
    for reference in imp_rounds[1:]:
        new = random_step(current, reference, "layerwise", _generator())
        assert _kept(new) == _kept(reference)
        assert is_nested(new, current)
        current = new


def test_random_global_spreads_pruning_unlike_imp(imp_rounds):
    """Global random positions give every layer about the same sparsity, which IMP does not."""
    new = random_step(imp_rounds[0], imp_rounds[3], "global", _generator())
    sizes = {name: mask.numel() for name, mask in new.items()}
    fractions = [kept / sizes[name] for name, kept in _kept(new).items() if sizes[name] > 2000]
    overall = sum(_kept(new).values()) / sum(sizes.values())
    assert all(abs(f - overall) < 0.05 for f in fractions)
    assert _kept(new) != _kept(imp_rounds[3])


def test_random_positions_differ_from_imps_and_depend_on_the_generator_seed(imp_rounds):
    a = random_step(imp_rounds[0], imp_rounds[1], "layerwise", _generator(0))
    b = random_step(imp_rounds[0], imp_rounds[1], "layerwise", _generator(0))
    c = random_step(imp_rounds[0], imp_rounds[1], "layerwise", _generator(1))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    assert any(not torch.equal(a[k], imp_rounds[1][k]) for k in a)


def test_random_step_refuses_a_reference_that_keeps_more_than_the_mask(imp_rounds):
    with pytest.raises(ValueError, match="only shrink"):
        random_step(imp_rounds[2], imp_rounds[1], "layerwise", _generator())
    with pytest.raises(ValueError, match="only shrink"):
        random_step(imp_rounds[2], imp_rounds[1], "global", _generator())


def test_random_step_rejects_an_unknown_scope(imp_rounds):
    with pytest.raises(ValueError, match="global"):
        random_step(imp_rounds[0], imp_rounds[1], "blockwise", _generator())
