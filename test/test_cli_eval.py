"""`strongpose eval`: the oracle mode end to end, and the mode checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from strongpose_ros.cli import build_parser, main
from strongpose_ros.evaluation import RESULT_NAMES


def test_oracle_eval_writes_the_ten_figures(coco_mini_annotations: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "oracle.json"
    assert main(["eval", "--oracle", "--annotations", str(coco_mini_annotations), "--stride", "8",
                 "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert set(figures) == set(RESULT_NAMES)
    assert figures["AP"] >= 0.95
    printed = capsys.readouterr().out
    assert "AP50" in printed and "AR_L" in printed and f"{figures['AP']:.3f}" in printed


def test_oracle_eval_connected_people(coco_mini_annotations: Path, tmp_path: Path) -> None:
    out = tmp_path / "connected.json"
    assert main(["eval", "--oracle", "--annotations", str(coco_mini_annotations), "--connected-only",
                 "--json", str(out)]) == 0
    assert json.loads(out.read_text())["AP"] >= 0.97


def test_decoder_settings_reach_the_decoder(coco_mini_annotations: Path, tmp_path: Path) -> None:
    out = tmp_path / "one.json"
    assert main(["eval", "--oracle", "--annotations", str(coco_mini_annotations), "--set", "max_people=1",
                 "--set", "keypoint_score=expected_oks", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["AR"] < 0.6  # one person per image cannot recall them all


def test_mode_is_required_and_exclusive(coco_mini_annotations: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["eval", "--annotations", str(coco_mini_annotations)]) == 2
    assert "--oracle" in capsys.readouterr().err
    with pytest.raises(SystemExit) as excinfo:
        main(["eval", "--oracle", "--checkpoint", "x.safetensors", "--annotations", str(coco_mini_annotations)])
    assert excinfo.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_bad_inputs_are_clear_errors(tmp_path: Path, coco_mini_annotations: Path,
                                     capsys: pytest.CaptureFixture) -> None:
    assert main(["eval", "--oracle", "--annotations", str(tmp_path / "none.json")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["eval", "--oracle", "--annotations", str(coco_mini_annotations), "--set", "nonsense"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(["eval", "--oracle", "--annotations", str(coco_mini_annotations), "--set", "peak_window=4"]) == 2
    assert "peak_window" in capsys.readouterr().err


def test_eval_is_a_verb() -> None:
    assert "eval" in build_parser().format_help()


def test_checkpoint_mode_runs_a_network(coco_mini_annotations: Path, coco_mini_images: Path, tmp_path: Path) -> None:
    import torch

    from strongpose_ros import checkpoint
    from strongpose_ros.model import build_model

    torch.manual_seed(0)
    path = checkpoint.save(tmp_path / "untrained.safetensors", build_model(backbone="resnet18", output_stride=16))
    out, results = tmp_path / "figures.json", tmp_path / "results.json"
    assert main(["eval", "--checkpoint", str(path), "--annotations", str(coco_mini_annotations), "--images",
                 str(coco_mini_images), "--max-images", "2", "--json", str(out), "--results", str(results)]) == 0
    figures = json.loads(out.read_text())
    assert set(figures) == set(RESULT_NAMES) and figures["AP"] < 0.1  # an untrained network finds nobody
    assert isinstance(json.loads(results.read_text()), list)


def test_input_size_reaches_the_estimator(coco_mini_annotations: Path, coco_mini_images: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    import torch

    from strongpose_ros import checkpoint
    from strongpose_ros.model import build_model

    torch.manual_seed(0)
    path = checkpoint.save(tmp_path / "mobilenet.safetensors",
                           build_model(backbone="mobilenet_v1", backbone_options={"width_multiplier": 0.25},
                                       output_stride=16, input_size=(33, 33)))
    args = ["eval", "--checkpoint", str(path), "--annotations", str(coco_mini_annotations), "--images",
            str(coco_mini_images), "--max-images", "1"]
    assert main([*args, "--input-size", "81", "--results", str(tmp_path / "r.json")]) == 0
    assert "input 81x81" in capsys.readouterr().out
    assert main([*args, "--input-size", "65", "97"]) == 0 and "input 65x97" in capsys.readouterr().out
    assert main([*args, "--input-size", "65", "97", "129"]) == 2
    assert "one side or HEIGHT WIDTH" in capsys.readouterr().err


def test_checkpoint_mode_errors(coco_mini_annotations: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["eval", "--checkpoint", str(tmp_path / "x.safetensors"), "--annotations",
                 str(coco_mini_annotations)]) == 2
    assert "--images" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(tmp_path / "x.safetensors"), "--annotations",
                 str(coco_mini_annotations), "--images", str(tmp_path)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
