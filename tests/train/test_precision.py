"""train.accelerator / precision / deterministic: validated, resolved at run time, recorded;
every registered model family trains under bf16-mixed on the CPU, and no family's training
step uses an op that has no deterministic CUDA kernel."""

import importlib.util
from collections import defaultdict
from pathlib import Path

import pytest
import torch
import yaml
from torch.utils._python_dispatch import TorchDispatchMode

from pianoeval.errors import ConfigError
from pianoeval.experiment import ExperimentConfig
from pianoeval.models.registry import get_model
from pianoeval.train import train_run
from pianoeval.train.check import first_train_batch, repeated_batch_steps

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_check)


def config(train: dict, name: str = "han", **data) -> ExperimentConfig:
    return ExperimentConfig.resolve({"model": {"name": name, "hidden_size": 16, "num_heads": 4},
                                     "data": {"max_train_segments": 8, **data}, "train": train}, "run.yaml")


def test_the_keys_have_defaults_aliases_and_one_line_errors():
    train = config({}).train
    assert (train.accelerator, train.precision, train.deterministic) == ("auto", "32", True)
    assert config({"precision": 32}).train.precision == "32"  # YAML's number
    assert config({"deterministic": "warn"}).train.deterministic == "warn"
    for bad, message in [({"precision": "bf16"}, "run.yaml: train.precision: got 'bf16', expected one of"),
                         ({"deterministic": "maybe"}, "run.yaml: train.deterministic: .*expected true, warn or false"),
                         ({"accelerator": "tpu"}, "run.yaml: train.accelerator: got 'tpu'"),
                         ({"precision": "16-mixed", "accelerator": "cpu"},
                          "run.yaml: train.precision: .*16-mixed needs CUDA .* use bf16-mixed on CPU")]:
        with pytest.raises(ConfigError, match=message):
            config(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks what happens where torch sees no CUDA device")
def test_16_mixed_or_cuda_without_a_cuda_device_fail_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match=r"^train.precision: 16-mixed needs a CUDA device, and this run is on cpu"):
        train_run(config({"precision": "16-mixed"}), out_dir=tmp_path / "a", verbose=False)
    with pytest.raises(ConfigError, match=r"^train.accelerator: cuda asked for, but torch .* sees no CUDA device"):
        train_run(config({"accelerator": "cuda"}), out_dir=tmp_path / "b", verbose=False)
    assert not any(tmp_path.iterdir())  # nothing written, nothing computed


def test_resolved_yaml_records_the_modes_that_took_effect_and_reruns(tmp_path):
    original = config({"precision": "bf16-mixed", "deterministic": "warn", "max_epochs": 1})
    result = train_run(original, out_dir=tmp_path, verbose=False)
    assert result.status == "completed" and torch.isfinite(torch.tensor(result.metrics["val/r2"]))
    resolved = yaml.safe_load((tmp_path / "resolved.yaml").read_text())
    compute = resolved["provenance"]["compute"]
    assert compute["accelerator"] == "cpu" and compute["precision"] == "bf16-mixed"
    assert compute["autocast_dtype"] == "bfloat16" and compute["deterministic"] == "warn"
    assert "cublas_workspace_config" in compute and compute["cudnn_benchmark"] is False
    assert ExperimentConfig.resolve(resolved, "resolved.yaml").train == original.train  # the file alone reruns it
    # and back to the default: Lightning resets torch's flag, the record follows
    train_run(config({"max_epochs": 1}), out_dir=tmp_path / "again", verbose=False)
    again = yaml.safe_load((tmp_path / "again" / "resolved.yaml").read_text())["provenance"]["compute"]
    assert (again["precision"], again["deterministic"], again["autocast_dtype"]) == ("32", True, None)


# Ops that raise under torch.use_deterministic_algorithms(True) on CUDA (the list in that
# function's docstring, torch 2.13), as aten names, with the argument condition where the
# docstring gives one.
CUDA_RAISES = {
    "avg_pool3d_backward", "_adaptive_avg_pool2d_backward", "_adaptive_avg_pool3d_backward",
    "adaptive_max_pool2d_backward", "fractional_max_pool2d_backward", "fractional_max_pool3d_backward",
    "max_unpool2d", "max_unpool3d", "upsample_linear1d_backward", "upsample_bilinear2d_backward",
    "upsample_bicubic2d_backward", "upsample_trilinear3d_backward", "reflection_pad1d_backward",
    "reflection_pad2d_backward", "reflection_pad3d_backward", "nll_loss_forward", "nll_loss2d_forward",
    "_ctc_loss_backward", "put", "put_", "histc", "grid_sampler_2d_backward", "grid_sampler_3d_backward",
}


def _raises_on_cuda(func, args, kwargs) -> str | None:
    name, overload = func._overloadpacket.__name__, func._overloadname
    if name in CUDA_RAISES:
        return name
    if name == "cumsum" and args[0].is_floating_point():
        return "cumsum of floats"
    if name == "bincount" and (len(args) > 1 and args[1] is not None or kwargs.get("weights") is not None):
        return "bincount with weights"
    if name.startswith("scatter_reduce") and "prod" in (list(args[4:5]) + [kwargs.get("reduce")]):
        return "scatter_reduce prod"
    if name == "median" and overload.startswith("dim"):
        return "median with indices"
    if name == "_embedding_bag_backward" and len(args) > 7 and args[7] == 2:
        return "embedding_bag max backward"
    return None


class CudaNondeterminism(TorchDispatchMode):
    """Records every op of a CPU run that would raise on CUDA under deterministic: true."""

    def __init__(self):
        super().__init__()
        self.found: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        problem = _raises_on_cuda(func, args, kwargs)
        if problem:
            self.found.add(problem)
        return func(*args, **kwargs)


def test_the_recorder_sees_an_op_without_a_deterministic_cuda_kernel():
    with CudaNondeterminism() as recorder:
        torch.nn.functional.cross_entropy(torch.randn(4, 3, requires_grad=True), torch.tensor([0, 1, 2, 0])).backward()
        torch.arange(5.0).cumsum(0)
        torch.arange(5).cumsum(0)  # integer: exact, not recorded
        padded = torch.nn.functional.pad(torch.randn(1, 2, 8, requires_grad=True), (2, 2), mode="reflect")
        padded.sum().backward()  # backward ops are seen too
    assert recorder.found == {"nll_loss_forward", "cumsum of floats", "reflection_pad1d_backward"}


FAMILIES = defaultdict(list)
for _name in gpu_check.trainable_models():
    FAMILIES[get_model(_name).config_cls.__name__].append(_name)


@pytest.fixture(scope="module")
def backbone(tmp_path_factory) -> str:
    return gpu_check.tiny_backbone(tmp_path_factory.mktemp("backbone"))


@pytest.fixture(autouse=True)
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("PIANOEVAL_RESULTS", str(tmp_path / "results"))  # A2's stage-1 checkpoints go here


def _family_params():
    # A2's stage 1 reads ASAP windows (not bundled); no other family needs them
    return [pytest.param(family, marks=[pytest.mark.asap] if "stage1_steps" in get_model(names[0]).config_cls.model_fields
                         else []) for family, names in sorted(FAMILIES.items())]


@pytest.mark.parametrize("family", _family_params())
def test_every_family_trains_under_bf16_mixed_on_a_repeated_batch_without_cuda_nondeterministic_ops(
        family, backbone, exported_frames):
    for name in FAMILIES[family]:
        check_config = gpu_check.check_config(name, "tiny", backbone, "cpu", exported_frames, precision="bf16-mixed")
        with CudaNondeterminism() as recorder:
            check = repeated_batch_steps(check_config, steps=4, prepared=first_train_batch(check_config))
        assert check.finite and check.losses[-1] < check.losses[0], (name, check.losses)
        assert check.compute["autocast_dtype"] == "bfloat16"
        assert not recorder.found, f"{name}: ops without a deterministic CUDA kernel: {sorted(recorder.found)}"


def test_resources_gpu_is_a_share_of_one_gpu_or_whole_gpus_in_sweeps_and_ablations():
    from pianoeval.ablation.spec import load_ablation
    from pianoeval.sweep.space import load_space

    assert load_space("smoke", {"resources.gpu": 0.25}).resources.packing() == "4 trials per GPU"
    assert "0.1 of each GPU stays idle" in load_space("smoke", {"resources.gpu": 0.3}).resources.packing()
    assert load_space("smoke", {"resources.gpu": 2}).resources.gpu == 2
    with pytest.raises(ConfigError, match="resources.gpu: .*whole number"):
        load_space("smoke", {"resources.gpu": 1.5})
    with pytest.raises(ConfigError, match=r"ablations/han_incremental.yaml: resources.gpu: .*whole number"):
        load_ablation("han_incremental", {"resources.gpu": 2.5})
    with pytest.raises(ConfigError, match="resources.gpu: .*greater than or equal to 0"):
        load_space("smoke", {"resources.gpu": -0.5})
