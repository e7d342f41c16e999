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


def test_auto_follows_torch_where_a_gpu_device_file_exists(monkeypatch, tmp_path):
    import prunesim.device as device

    node = tmp_path / "nvidiactl"
    node.touch()
    monkeypatch.setattr(device, "GPU_DEVICE_NODES", (str(node),))
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert device.gpu_device_nodes() and resolve("auto") == expected


def test_without_gpu_device_files_auto_means_cpu_without_importing_torch(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys, prunesim.device as d\n"
        f"d.GPU_DEVICE_NODES = ({str(tmp_path / 'absent')!r},)\n"
        "from prunesim.metrics.backend import get_backend\n"
        "print(d.resolve('auto'), get_backend('auto').name, 'torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["cpu", "numpy", "False"]
