"""Rank from the torchrun environment, the global batch split over processes, and the per-method learning rate."""

from __future__ import annotations

import pytest

from seas_runtime.data import DataError
from seas_runtime.distributed import BatchLayoutError, RankInfo, backend, batch_layout, rank_info
from seas_runtime.settings import ModelTrainingSpec, TrainingMethod, TrainingSpec
from seas_runtime.training import common_args


def test_alone_without_torchrun_and_placed_by_its_environment():
    assert rank_info({}) == RankInfo(0, 0, 1) and rank_info({}).main and not rank_info({}).distributed
    worker = rank_info({"RANK": "9", "LOCAL_RANK": "1", "WORLD_SIZE": "16"})
    assert worker == RankInfo(9, 1, 16) and worker.distributed and not worker.main


@pytest.mark.parametrize("env", [{"RANK": "2", "WORLD_SIZE": "2"}, {"WORLD_SIZE": "0"}, {"RANK": "x", "WORLD_SIZE": "2"}])
def test_an_inconsistent_environment_is_refused(env):
    with pytest.raises(ValueError):
        rank_info(env)


def test_backend_is_gloo_on_cpus_and_nccl_on_gpus():
    assert backend(cuda=False) == "gloo" and backend(cuda=True) == "nccl"


@pytest.mark.parametrize("batch, accumulation, world, per_device, passes", [
    (8, 1, 1, 8, 1),    # alone: the spec as written
    (8, 1, 2, 4, 1),    # the global batch of 8 split over 2 processes
    (8, 1, 8, 1, 1),
    (4, 8, 8, 4, 1),    # 32 pairs per step on 8 GPUs: 4 each, one pass
    (2, 8, 2, 2, 4),    # 8 pairs per process, at most 2 per pass
    (3, 4, 2, 3, 2),    # 6 per process in passes of at most 3
])
def test_the_global_batch_stays_the_specs_whatever_the_processes(batch, accumulation, world, per_device, passes):
    layout = batch_layout(batch, accumulation, world)
    assert (layout.per_device, layout.accumulation) == (per_device, passes)
    assert layout.global_batch == batch * accumulation and layout.per_device <= batch


def test_a_global_batch_that_does_not_split_is_a_user_error():
    with pytest.raises(BatchLayoutError, match="multiple of 4") as caught:
        batch_layout(3, 2, 4)
    assert isinstance(caught.value, DataError)  # seas-runtime exits 3 with the message, no traceback


def test_learning_rate_defaults_per_method_and_an_explicit_one_wins():
    assert TrainingSpec().method == TrainingMethod.LORA
    assert TrainingSpec().learning_rate(ModelTrainingSpec()) == 5e-5
    assert TrainingSpec(method="full").learning_rate(ModelTrainingSpec()) == 5e-6
    assert TrainingSpec(method="full").learning_rate(ModelTrainingSpec(learningRate=1e-6)) == 1e-6


def test_trainer_arguments_choose_ddp_for_lora_and_fsdp_for_full_only_under_torchrun():
    import torch

    alone = common_args(torch.float32, "/tmp/x", 0, TrainingMethod.FULL, RankInfo(), batch_layout(8, 1, 1))
    assert "fsdp" not in alone and "ddp_backend" not in alone and alone["per_device_train_batch_size"] == 8
    two = RankInfo(rank=0, local_rank=0, world_size=2)
    lora = common_args(torch.float32, "/tmp/x", 0, TrainingMethod.LORA, two, batch_layout(8, 1, 2))
    assert "fsdp" not in lora and lora["ddp_find_unused_parameters"] is False and lora["per_device_train_batch_size"] == 4
    full = common_args(torch.float32, "/tmp/x", 0, TrainingMethod.FULL, two, batch_layout(8, 1, 2))
    assert full["fsdp"] is True and full["fsdp_config"]["version"] == 2 and full["fsdp_config"]["reshard_after_forward"] is True
    assert full["ddp_backend"] == ("nccl" if torch.cuda.is_available() else "gloo")
