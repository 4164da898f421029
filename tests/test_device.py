"""The device layer: CPU path, errors, and a fake 'npu' PrivateUse1 device in a subprocess."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from reelrec.device import adam, autocast_dtype, distributed_backend, resolve_device
from reelrec.errors import DeviceError


def test_cpu_resolves() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert autocast_dtype(torch.device("cpu")) is None
    assert distributed_backend(torch.device("cpu")) == "gloo"


def test_auto_matches_torch_accelerator() -> None:
    acc = torch.accelerator.current_accelerator()
    expected = acc.type if acc is not None else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "npu:-1", "", "cpu:0:1"])
def test_bad_spec_fails(spec: str) -> None:
    with pytest.raises(DeviceError, match="not a device"):
        resolve_device(spec)


@pytest.mark.skipif(
    torch.accelerator.current_accelerator() is not None, reason="needs a CPU-only host"
)
def test_missing_cuda_fails_clearly() -> None:
    with pytest.raises(DeviceError, match="no cuda device"):
        resolve_device("cuda")


def test_npu_without_torch_npu_fails_with_install_hint() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["torch_npu"] = None  # an absent package: import raises ImportError
        from reelrec.device import resolve_device
        from reelrec.errors import DeviceError
        try:
            resolve_device("npu")
        except DeviceError as e:
            print("ERR", e)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "ERR" in out.stdout and "torch_npu" in out.stdout and "CANN" in out.stdout


FAKE_NPU = textwrap.dedent(
    """
    import json, torch
    torch.utils.backend_registration._setup_privateuseone_for_python_backend("npu")
    import reelrec.device as d
    calls = []
    import torch.distributed as dist
    dist.init_process_group = lambda *a, **k: calls.append({"args": [str(x) for x in a],
                                                           "device_id": str(k.get("device_id"))})
    dev = d.resolve_device("npu")
    auto = d.resolve_device("auto")
    d.init_distributed(dev)
    cuda_touched = torch.cuda.is_initialized()
    print(json.dumps({"dev": str(dev), "auto": str(auto), "backend": d.distributed_backend(dev),
                      "dtype": str(d.autocast_dtype(dev)), "calls": calls,
                      "cuda_initialized": cuda_touched, "idx": str(d.resolve_device("npu:0"))}))
    """
)


def test_fake_npu_resolution_and_backend() -> None:
    import json

    out = subprocess.run(
        [sys.executable, "-c", FAKE_NPU], capture_output=True, text=True, check=True
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["dev"] == "npu:0" and got["auto"] == "npu:0" and got["idx"] == "npu:0"
    assert got["backend"] == "hccl"
    assert got["dtype"] == "torch.bfloat16"
    # On an accelerator the process group gets device_id and no hard-coded backend name.
    assert got["calls"] == [{"args": [], "device_id": "npu:0"}]
    assert got["cuda_initialized"] is False


def test_fake_npu_index_out_of_range_fails() -> None:
    code = FAKE_NPU.split("import reelrec.device")[0] + textwrap.dedent(
        """
        from reelrec.device import resolve_device
        from reelrec.errors import DeviceError
        try:
            resolve_device("npu:3")
        except DeviceError as e:
            print("ERR", e)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "ERR" in out.stdout and "only 1 npu" in out.stdout


def test_adam_is_fused_where_pytorch_has_the_kernel_and_steps_like_plain_adam() -> None:
    torch.manual_seed(0)
    start = torch.randn(8, 4)
    fast, plain = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    opt_fast, opt_plain = adam([fast], 0.01), torch.optim.Adam([plain], lr=0.01, foreach=False)
    assert opt_fast.defaults["fused"] is True
    for _ in range(3):
        grad = torch.randn(8, 4)
        fast.grad, plain.grad = grad.clone(), grad.clone()
        opt_fast.step()
        opt_plain.step()
    torch.testing.assert_close(fast, plain)
    assert not torch.equal(fast, start)


def test_adam_falls_back_to_foreach_on_other_devices() -> None:
    meta = torch.nn.Parameter(torch.empty(3, device="meta"))
    opt = adam([meta], 0.01)
    assert opt.defaults["foreach"] is True and not opt.defaults["fused"]
