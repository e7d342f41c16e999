"""Tests for the device vocabulary (prunesim.device)."""

from __future__ import annotations

import pytest
import torch

from prunesim.device import DeviceError, check_setting, check_visible, gpus_reserved, resolve


@pytest.mark.parametrize("word", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_every_word_of_the_vocabulary_is_accepted(word):
    check_setting(word)


@pytest.mark.parametrize("word", ["gpu", "CUDA", "cuda:", "cuda:x", "torch:cpu", "", None])
def test_other_words_are_refused_naming_the_vocabulary(word):
    with pytest.raises(DeviceError, match="expected 'auto', 'cpu', 'cuda' or 'cuda:N'"):
        check_setting(word)


def test_only_a_cuda_setting_reserves_a_gpu():
    assert [gpus_reserved(w) for w in ("auto", "cpu", "cuda", "cuda:1")] == [0, 0, 1, 1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")
def test_without_a_gpu_auto_means_cpu_and_cuda_is_refused_before_and_at_run_time():
    assert resolve("auto") == resolve("cpu") == "cpu"
    check_visible("auto")
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        check_visible("cuda:0")
    with pytest.raises(DeviceError, match="no CUDA device"):
        resolve("cuda")
