"""Checkpoints: exact round trips, atomic writes, and a named error for every kind of bad file."""

from __future__ import annotations

import json
import os

import pytest
import torch

from strongpose_ros import checkpoint
from strongpose_ros.checkpoint import CheckpointError
from strongpose_ros.model import ModelConfig, build_model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(1)
    net = build_model(backbone="resnet18", schema="crowdpose14", intermediate_supervision=True, head_channels=8,
                      output_stride=8, frozen_bn=True)
    with torch.no_grad():  # make every entry distinctive, statistics included
        for value in net.state_dict().values():
            if value.is_floating_point():
                value.uniform_(0.5, 1.5)
    return net


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "model.safetensors"
    checkpoint.save(path, model, model.config, {"epoch": 7, "data": "coco-mini", "ap": [0.1, 0.2]})
    return path


def test_round_trip_is_exact(model, saved):
    loaded = checkpoint.load(saved)
    assert loaded.config == model.config and loaded.metadata == {"epoch": 7, "data": "coco-mini", "ap": [0.1, 0.2]}
    assert not loaded.model.training and loaded.model.schema.name == "crowdpose14"
    theirs = loaded.model.state_dict()
    assert theirs.keys() == model.state_dict().keys()
    assert all(torch.equal(v, theirs[k]) and v.dtype == theirs[k].dtype for k, v in model.state_dict().items())
    x = torch.randn(1, 3, 49, 65)
    model.eval()
    with torch.inference_mode():
        assert torch.equal(model(x).mid_offsets, loaded.model(x).mid_offsets)
    assert all(p.requires_grad for p in loaded.model.parameters())  # ready for fine-tuning too


def test_half_precision_storage_halves_the_file_and_loads_as_float32(model, saved, tmp_path):
    half = checkpoint.save(tmp_path / "half.safetensors", model, metadata={"epoch": 7}, dtype=torch.float16)
    assert half.stat().st_size < 0.55 * saved.stat().st_size
    stored = checkpoint.read_header(half).tensors
    assert stored["heads.heatmap.predict.bias"][0] == "F16"
    assert stored["backbone.bn1.num_batches_tracked"][0] == "I64"  # integers are left alone
    loaded = checkpoint.load(half)
    ours, theirs = model.state_dict(), loaded.model.state_dict()
    for name, value in ours.items():
        assert theirs[name].dtype == value.dtype, name
        torch.testing.assert_close(theirs[name], value, rtol=1e-3, atol=0)  # float16 keeps 11 significant bits
    assert loaded.metadata == {"epoch": 7}
    with pytest.raises(CheckpointError, match="floating-point"):
        checkpoint.save(tmp_path / "int.safetensors", model, dtype=torch.int8)


def test_header_carries_config_schema_and_normalisation(saved):
    from safetensors import safe_open

    with safe_open(str(saved), framework="pt") as handle:
        header = handle.metadata()
    assert header["format"] == "strongpose_ros" and header["format_version"] == "1"
    config = json.loads(header["model_config"])
    assert config["schema"]["name"] == "crowdpose14" and len(config["schema"]["keypoints"]) == 14
    assert config["input_mean"] == [0.485, 0.456, 0.406] and config["input_std"] == [0.229, 0.224, 0.225]
    assert json.loads(header["metadata"])["epoch"] == 7
    assert checkpoint.read_header(saved).config == ModelConfig.from_dict(config)


def test_save_is_atomic_and_overwrites(model, tmp_path):
    path = tmp_path / "sub" / "last.safetensors"
    checkpoint.save(path, model)  # config defaults to model.config
    checkpoint.save(path, model, metadata={"epoch": 2})
    assert checkpoint.load(path).metadata == {"epoch": 2}
    assert sorted(os.listdir(path.parent)) == ["last.safetensors"]  # no temporary file left behind
    with pytest.raises(CheckpointError, match="JSON"):
        checkpoint.save(path, model, metadata={"bad": object()})
    assert checkpoint.load(path).metadata == {"epoch": 2}  # a failed save leaves the old file intact
    assert sorted(os.listdir(path.parent)) == ["last.safetensors"]


def test_saved_file_has_the_usual_permissions_of_a_new_file(model, tmp_path):
    """Not mkstemp's private 0600: a shipped or installed checkpoint must be readable by other users."""
    old = os.umask(0o022)
    try:
        path = checkpoint.save(tmp_path / "shared.safetensors", model)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_save_refuses_a_config_that_does_not_describe_the_model(model, tmp_path):
    with pytest.raises(CheckpointError, match="does not match its config"):
        checkpoint.save(tmp_path / "x.safetensors", model, ModelConfig(backbone="resnet18"))


def test_missing_and_truncated_files(saved, tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file") as error:
        checkpoint.load(tmp_path / "absent.safetensors")
    assert "absent.safetensors" in str(error.value)
    data = saved.read_bytes()
    for cut, expected in ((0, "truncated or empty"), (5, "truncated or empty"), (100, "truncated"),
                          (len(data) // 2, "truncated"), (len(data) - 1, "truncated")):
        bad = tmp_path / f"cut{cut}.safetensors"
        bad.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=expected) as error:
            checkpoint.load(bad)
        assert str(bad) in str(error.value)


def test_foreign_files(model, tmp_path):
    pickle_file = tmp_path / "model.pth"
    torch.save(model.state_dict(), pickle_file)
    with pytest.raises(CheckpointError, match="never unpickles"):
        checkpoint.load(pickle_file)
    random_file = tmp_path / "noise.safetensors"
    random_file.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match=r"not a safetensors file|truncated"):
        checkpoint.load(random_file)
    not_json = tmp_path / "notjson.safetensors"
    not_json.write_bytes((10).to_bytes(8, "little") + b"{not json!" + b"\0" * 10)
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        checkpoint.load(not_json)

    from safetensors.torch import save_file

    someone_elses = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(someone_elses), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="not a strongpose_ros checkpoint"):
        checkpoint.load(someone_elses)


def _ours(tensors, config, path, **header):
    from safetensors.torch import save_file

    metadata = {"format": "strongpose_ros", "format_version": "1",
                "model_config": json.dumps(config.to_dict()), "metadata": "{}"} | header
    save_file(tensors, str(path), metadata=metadata)
    return path


def test_mismatched_files(model, tmp_path):
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    # Tensors of a ResNet-18 under a ResNet-34 config: blocks are missing.
    with pytest.raises(CheckpointError, match=r"missing \(\d+\): .*layer1\.2\.bn1\.bias"):
        checkpoint.load(_ours(tensors, ModelConfig(backbone="resnet34", schema="crowdpose14",
                                                   intermediate_supervision=True, head_channels=8), tmp_path / "a.st"))
    # A COCO-17 config over CrowdPose-14 heads: wrong shapes, named with both shapes.
    coco = ModelConfig(backbone="resnet18", intermediate_supervision=True, head_channels=8)
    with pytest.raises(CheckpointError, match=r"wrong shape or dtype .*heads\.heatmap\.predict\.bias \(14,\)"):
        checkpoint.load(_ours(tensors, coco, tmp_path / "b.st"))
    # An extra tensor, a bad config, a future format version.
    extra = tensors | {"spare.weight": torch.zeros(2)}
    same = ModelConfig.from_dict(model.config.to_dict())
    with pytest.raises(CheckpointError, match=r"unexpected \(1\): spare\.weight"):
        checkpoint.load(_ours(extra, same, tmp_path / "c.st"))
    with pytest.raises(CheckpointError, match="bad model config"):
        checkpoint.load(_ours(tensors, same, tmp_path / "d.st", model_config='{"backbone": "vgg"}'))
    with pytest.raises(CheckpointError, match="format version '9'"):
        checkpoint.load(_ours(tensors, same, tmp_path / "e.st", format_version="9"))
    assert checkpoint.load(_ours(tensors, same, tmp_path / "f.st")).config == same  # the control case loads


def test_resolve_path_gives_the_bundled_default_for_empty_and_refuses_directories(tmp_path):
    assert checkpoint.resolve_path("") == checkpoint.resolve_path(None) == checkpoint.default_path()
    assert checkpoint.default_path().is_file()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"a directory, not a checkpoint file.*model\.safetensors"):
        checkpoint.resolve_path(tmp_path / "run")
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        checkpoint.resolve_path(tmp_path / "absent.safetensors")
