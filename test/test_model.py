"""The network: torchvision-compatible trunks, output grids, atrous strides, heads and refinement."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from strongpose_ros.model import ModelConfig, build_model, output_size
from strongpose_ros.model.backbones import BACKBONES, MobileNetV1, MobileNetV1Options
from strongpose_ros.model.backbones.common import FrozenBatchNorm2d
from strongpose_ros.model.backbones.resnet import resnet
from strongpose_ros.model.heads import refine_mid_offsets
from strongpose_ros.schema import COCO17, CROWDPOSE14, KeypointSchema

# torchvision's resnet18 modules with weights (fc left out), and each conv's weight shape.
RESNET18_CONVS = {
    "conv1": (64, 3, 7, 7),
    "layer1.0.conv1": (64, 64, 3, 3), "layer1.0.conv2": (64, 64, 3, 3),
    "layer1.1.conv1": (64, 64, 3, 3), "layer1.1.conv2": (64, 64, 3, 3),
    "layer2.0.conv1": (128, 64, 3, 3), "layer2.0.conv2": (128, 128, 3, 3), "layer2.0.downsample.0": (128, 64, 1, 1),
    "layer2.1.conv1": (128, 128, 3, 3), "layer2.1.conv2": (128, 128, 3, 3),
    "layer3.0.conv1": (256, 128, 3, 3), "layer3.0.conv2": (256, 256, 3, 3), "layer3.0.downsample.0": (256, 128, 1, 1),
    "layer3.1.conv1": (256, 256, 3, 3), "layer3.1.conv2": (256, 256, 3, 3),
    "layer4.0.conv1": (512, 256, 3, 3), "layer4.0.conv2": (512, 512, 3, 3), "layer4.0.downsample.0": (512, 256, 1, 1),
    "layer4.1.conv1": (512, 512, 3, 3), "layer4.1.conv2": (512, 512, 3, 3),
}
RESNET18_NORMS = {
    "bn1": 64,
    "layer1.0.bn1": 64, "layer1.0.bn2": 64, "layer1.1.bn1": 64, "layer1.1.bn2": 64,
    "layer2.0.bn1": 128, "layer2.0.bn2": 128, "layer2.0.downsample.1": 128, "layer2.1.bn1": 128, "layer2.1.bn2": 128,
    "layer3.0.bn1": 256, "layer3.0.bn2": 256, "layer3.0.downsample.1": 256, "layer3.1.bn1": 256, "layer3.1.bn2": 256,
    "layer4.0.bn1": 512, "layer4.0.bn2": 512, "layer4.0.downsample.1": 512, "layer4.1.bn1": 512, "layer4.1.bn2": 512,
}
BN_ENTRIES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
# torchvision's state-dict sizes and parameter counts, minus fc (fc.weight + fc.bias: C * 1000 + 1000).
TORCHVISION = {  # name: (state-dict entries, named parameters, parameters)
    "resnet18": (122 - 2, 62 - 2, 11_689_512 - 513_000),
    "resnet34": (218 - 2, 110 - 2, 21_797_672 - 513_000),
    "resnet50": (320 - 2, 161 - 2, 25_557_032 - 2_049_000),
    "resnet101": (626 - 2, 314 - 2, 44_549_160 - 2_049_000),
    "resnet152": (932 - 2, 467 - 2, 60_192_808 - 2_049_000),
}


def test_resnet18_state_dict_is_torchvisions():
    expected = {f"{m}.weight": shape for m, shape in RESNET18_CONVS.items()}
    for m, c in RESNET18_NORMS.items():
        expected |= {f"{m}.{e}": (() if e == "num_batches_tracked" else (c,)) for e in BN_ENTRIES}
    state = resnet("resnet18").state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == expected


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_trunk_sizes_match_torchvision(name):
    with torch.device("meta"):  # shapes only: no memory, no initialisation time
        trunk = resnet(name)
    entries, named, total = TORCHVISION[name]
    assert len(trunk.state_dict()) == entries
    assert len(list(trunk.named_parameters())) == named
    assert sum(p.numel() for p in trunk.parameters()) == total
    if name != "resnet18" and name != "resnet34":
        assert tuple(trunk.state_dict()["layer4.2.conv3.weight"].shape) == (2048, 512, 1, 1)
        assert tuple(trunk.state_dict()["layer1.0.downsample.0.weight"].shape) == (256, 64, 1, 1)


def _torchvision_style_file(tmp_path, suffix, drop=(), extra=None, name="resnet18"):
    trunk = resnet("resnet18")
    with torch.no_grad():
        for p in trunk.parameters():
            p.normal_()
    state = {k: v.clone() for k, v in trunk.state_dict().items() if k not in drop}
    state |= {"fc.weight": torch.randn(1000, 512), "fc.bias": torch.randn(1000)} | (extra or {})
    path = tmp_path / f"{name}{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path, trunk


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_loads_torchvision_checkpoints_by_path(tmp_path, suffix):
    # Older torchvision files have no num_batches_tracked entries; they load all the same.
    drop = [k for k in resnet("resnet18").state_dict() if k.endswith("num_batches_tracked")]
    path, source = _torchvision_style_file(tmp_path, suffix, drop=drop)
    net = build_model(backbone="resnet18")
    net.load_backbone_weights(path)
    for name, value in source.state_dict().items():
        if not name.endswith("num_batches_tracked"):
            assert torch.equal(net.backbone.state_dict()[name], value), name


def test_loading_a_wrong_checkpoint_names_the_problems(tmp_path):
    path, _ = _torchvision_style_file(tmp_path, ".pth", drop=("layer3.1.conv2.weight",),
                                      extra={"layer5.0.conv1.weight": torch.zeros(1)})
    with pytest.raises(ValueError) as error:
        resnet("resnet18").load_torchvision_weights(path)
    message = str(error.value)
    assert str(path) in message and "missing: layer3.1.conv2.weight" in message
    assert "unexpected: layer5.0.conv1.weight" in message
    wrong_conv1 = {"conv1.weight": torch.zeros(64, 3, 3, 3)}
    reshaped, _ = _torchvision_style_file(tmp_path, ".pth", name="reshaped", extra=wrong_conv1)
    with pytest.raises(ValueError, match=r"wrong shape: conv1.weight \(64, 3, 3, 3\) \(expected \(64, 3, 7, 7\)\)"):
        resnet("resnet18").load_torchvision_weights(reshaped)
    with pytest.raises(ValueError, match="no such weights file"):
        resnet("resnet18").load_torchvision_weights(tmp_path / "absent.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read weights"):
        resnet("resnet18").load_torchvision_weights(garbage)


@pytest.mark.parametrize("stride", [16, 8])
def test_resnet18_grid_at_odd_input_sizes(stride):
    net = build_model(backbone="resnet18", output_stride=stride).eval()
    k, e2 = COCO17.num_keypoints, len(COCO17.directed_edges)
    for height, width in ((401, 401), (321, 321), (480, 640)):
        with torch.inference_mode():
            out = net(torch.randn(1, 3, height, width))
        h, w = output_size(height, stride), output_size(width, stride)
        assert out.stride == stride and out.grid_size == (h, w)
        assert out.heatmaps.shape == (1, k, h, w) and out.short_offsets.shape == (1, k, 2, h, w)
        assert out.mid_offsets.shape == (1, e2, 2, h, w) and out.body_heatmap.shape == (1, 1, h, w)
        assert out.heatmap_logits.shape == (1, k, h, w) and out.body_logits.shape == (1, 1, h, w)
        assert out.heatmaps.min() >= 0 and out.heatmaps.max() <= 1 and torch.isfinite(out.mid_offsets).all()


@pytest.mark.parametrize("name", ["resnet34", "resnet50", "resnet101", "resnet152"])
def test_deeper_backbones_at_both_strides(name):
    net = build_model(backbone=name).eval()
    for stride in (16, 8):
        net.set_output_stride(stride)
        with torch.inference_mode():
            out = net(torch.randn(1, 3, 65, 49))
        assert out.heatmaps.shape == (1, 17, output_size(65, stride), output_size(49, stride))
        assert out.mid_offsets.shape[:3] == (1, 32, 2)


def test_small_and_degenerate_sizes_and_stride_32():
    net = build_model(backbone="resnet18", output_stride=32).eval()
    for height, width in ((1, 1), (2, 3), (33, 65), (97, 31)):
        with torch.inference_mode():
            out = net(torch.randn(2, 3, height, width))
        assert out.grid_size == (output_size(height, 32), output_size(width, 32))


def test_output_stride_switch_keeps_the_weights():
    net = build_model(backbone="resnet18", output_stride=16).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(1, 3, 129, 129)
    with torch.inference_mode():
        a = net(x)
        net.set_output_stride(8)
        b = net(x)
        net.set_output_stride(16)
        c = net(x)
    assert a.grid_size == (9, 9) and b.grid_size == (17, 17) and net.config.output_stride == 16
    assert torch.equal(a.heatmap_logits, c.heatmap_logits)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    convs = {n: m for n, m in net.backbone.named_modules() if isinstance(m, torch.nn.Conv2d)}
    net.set_output_stride(8)
    assert convs["layer3.0.conv1"].dilation == (1, 1) and convs["layer3.1.conv1"].dilation == (2, 2)
    assert convs["layer4.0.conv1"].dilation == (2, 2) and convs["layer4.1.conv2"].dilation == (4, 4)
    assert convs["layer3.0.downsample.0"].stride == (1, 1) and convs["layer2.0.conv1"].stride == (2, 2)
    with pytest.raises(ValueError, match="output stride"):
        net.set_output_stride(4)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v1"])
@pytest.mark.parametrize("stride", [16, 8])
def test_features_sit_on_the_grid_convention(stride, name):
    # With left/right-symmetric kernels, a trunk whose cell j is input pixel j*s commutes with mirroring
    # an image of width s*n+1; any half-pixel shift anywhere in the stack (padding, pooling) breaks this.
    trunk = (resnet(name, output_stride=stride) if name.startswith("resnet")
             else MobileNetV1(MobileNetV1Options(width_multiplier=0.25), output_stride=stride)).eval()
    with torch.no_grad():
        for m in trunk.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.normal_(0, (2.0 / m.weight[0].numel()) ** 0.5)
                m.weight.copy_((m.weight + m.weight.flip(-1)) / 2)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.0)
    x = torch.randn(1, 3, 49, 16 * 6 + 1)
    with torch.inference_mode():
        features, mirrored = trunk(x), trunk(x.flip(-1)).flip(-1)
    assert features.shape[-1] == output_size(x.shape[-1], stride)
    torch.testing.assert_close(mirrored, features, rtol=1e-4, atol=1e-4)


# --- MobileNetV1 ---------------------------------------------------------------------------------------------------


def test_every_backbone_is_registered_and_builds():
    assert {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "mobilenet_v1"} <= set(BACKBONES)
    net = build_model(backbone="mobilenet_v1", backbone_options={"width_multiplier": 0.5}).eval()
    with torch.inference_mode():
        out = net(torch.randn(1, 3, 65, 49))
    assert out.grid_size == (5, 4) and out.mid_offsets.shape == (1, 32, 2, 5, 4)
    assert net.heads.heatmap.predict.in_channels == 512  # 1024 * 0.5


def test_mobilenet_v1_is_the_textbook_network():
    # Howard et al. (2017), Table 8: 1.0 MobileNet-224 569 M multiply-adds, 0.75: 325 M; minus the 1000-way
    # classifier (1024 * 1000 and 768 * 1000 MACs). Parameters: torch's usual 4,231,976 minus the classifier.
    from strongpose_ros.bench.model import count_macs

    full = MobileNetV1(MobileNetV1Options(), output_stride=32).eval()
    assert sum(p.numel() for p in full.parameters()) == 4_231_976 - 1_025_000
    assert round((count_macs(full, torch.randn(1, 3, 224, 224)) + 1_024_000) / 1e6) == 569
    narrow = MobileNetV1(MobileNetV1Options(width_multiplier=0.75), output_stride=32).eval()
    assert round((count_macs(narrow, torch.randn(1, 3, 224, 224)) + 768_000) / 1e6) == 325
    assert [b.pointwise.conv.out_channels for b in narrow.blocks][-3:] == [384, 768, 768]
    assert all(isinstance(m.act, torch.nn.ReLU6) for m in narrow.modules() if hasattr(m, "act"))


def test_mobilenet_v1_output_strides_by_atrous_convolution():
    net = build_model(backbone="mobilenet_v1", backbone_options={"width_multiplier": 0.25}, output_stride=32).eval()
    x = torch.randn(1, 3, 97, 65)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    grids = {}
    for stride in (8, 16, 32):
        net.set_output_stride(stride)
        with torch.inference_mode():
            grids[stride] = net(x).grid_size
    assert grids == {8: (13, 9), 16: (7, 5), 32: (4, 3)}
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    net.set_output_stride(8)  # stride 8 is reached at block 4: block 6 keeps dilation 1, block 12 gets 2
    convs = net.backbone.spatial_convs
    assert [c.stride[0] for c in convs] == [2, 1, 2, 1, 2] + [1] * 9
    assert [c.dilation[0] for c in convs] == [1] * 7 + [2] * 6 + [4]
    assert all(c.padding == c.dilation for c in convs)
    # PoseNet's form stops striding at 16: no stride-32 network exists for it.
    posenet_like = ModelConfig(backbone="mobilenet_v1", backbone_options={
        "width_multiplier": 0.25, "strides": [2, 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 1, 1]})
    with pytest.raises(ValueError, match=r"one of \(8, 16\) for 'mobilenet_v1'"):
        replace(posenet_like, output_stride=32)
    with pytest.raises(ValueError, match="output stride must be one of"):
        build_model(posenet_like).set_output_stride(32)


def test_mobilenet_v1_options_round_trip_and_are_checked():
    options = {"channels": [8, 16, 16, 24], "strides": [2, 2, 2, 2], "batch_norm": False}
    config = ModelConfig(backbone="mobilenet_v1", backbone_options=options, output_stride=16,
                         input_mean=(0.5, 0.5, 0.5), input_std=(0.5, 0.5, 0.5), body_head_channels=16)
    data = json.loads(json.dumps(config.to_dict()))
    assert data["backbone_options"] == options and ModelConfig.from_dict(data) == config
    assert hash(ModelConfig.from_dict(data)) == hash(config)
    net = build_model(config)
    assert net.backbone.out_channels == 24 and not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert net.backbone.stem.conv.bias is not None and net.heads.body.hidden[0].out_channels == 16
    assert isinstance(net.heads.heatmap.hidden, torch.nn.Identity)
    # Defaults are dropped, so the same network has one config.
    assert ModelConfig(backbone="mobilenet_v1", backbone_options={"width_multiplier": 1, "batch_norm": True}) == \
        ModelConfig(backbone="mobilenet_v1")
    bad = [
        ({"backbone_options": {"depth": 3}}, "has no option 'depth'"),
        ({"backbone_options": {"width_multiplier": 0}}, "width_multiplier"),
        ({"backbone_options": {"width_multiplier": 0.5, "channels": [8] * 14}}, "not both"),
        ({"backbone_options": {"channels": [8, 16]}}, "need their strides"),
        ({"backbone_options": {"strides": [2, 3] + [1] * 12}}, "1 or 2"),
        ({"backbone_options": {"batch_norm": False}, "frozen_bn": True}, "no batch norm to freeze"),
        ({"intermediate_supervision": True}, "no intermediate features"),
    ]
    for fields, message in bad:
        with pytest.raises(ValueError, match=message):
            ModelConfig(backbone="mobilenet_v1", **fields)
    with pytest.raises(ValueError, match="'resnet18' has no option 'width_multiplier'"):
        build_model(ModelConfig(backbone="mobilenet_v1", backbone_options={"width_multiplier": 0.5}),
                    backbone="resnet18")
    with pytest.raises(ValueError, match="torchvision has no MobileNetV1"):
        build_model(backbone="mobilenet_v1").load_backbone_weights("imagenet.pth")


def test_mobilenet_v1_frozen_batch_norm():
    net = build_model(backbone="mobilenet_v1", backbone_options={"width_multiplier": 0.25}, frozen_bn=True)
    norms = [m for m in net.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 27 and all(isinstance(m, FrozenBatchNorm2d) for m in norms)


def test_intermediate_supervision_in_training_only():
    net = build_model(backbone="resnet18", output_stride=8, intermediate_supervision=True).train()
    out = net(torch.randn(1, 3, 65, 65))
    assert out.intermediate is not None and out.intermediate.heatmaps.shape == out.heatmaps.shape == (1, 17, 9, 9)
    assert out.intermediate.mid_offsets.shape == out.mid_offsets.shape and out.intermediate.stride == 8
    net.set_output_stride(32)  # layer3 (stride 16) is read at every other cell
    assert net(torch.randn(1, 3, 65, 65)).intermediate.heatmaps.shape == (1, 17, 3, 3)
    net.eval()
    with torch.inference_mode():
        assert net(torch.randn(1, 3, 65, 65)).intermediate is None


def test_frozen_batch_norm_never_updates_its_statistics():
    net = build_model(backbone="resnet18", frozen_bn=True)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(isinstance(m, FrozenBatchNorm2d) for m in norms)
    with torch.no_grad():
        for m in norms:
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(2, 3, 65, 65)
    train_out = net.train()(x).heatmap_logits
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    with torch.no_grad():
        eval_out = net.eval()(x).heatmap_logits
    torch.testing.assert_close(train_out, eval_out)
    assert all(m.weight.requires_grad for m in norms)  # the affine part still trains
    # The unfrozen default does update them in training mode.
    plain = build_model(backbone="resnet18").train()
    mean = plain.backbone.bn1.running_mean.clone()
    plain(x)
    assert not torch.equal(mean, plain.backbone.bn1.running_mean)


def test_gradients_reach_conv1():
    net = build_model(backbone="resnet18", output_stride=16, intermediate_supervision=True).train()
    out = net(torch.randn(1, 3, 65, 65))
    total = 0
    for o in (out, out.intermediate):
        total = total + o.heatmap_logits.sum() + o.mid_offsets.sum() + o.short_offsets.sum() + o.body_logits.sum()
    total.backward()
    grad = net.backbone.conv1.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    for head in (net.heads, net.intermediate_heads):
        assert all(p.grad is not None for p in head.parameters())


def test_refinement_adds_the_short_offset_where_the_edge_lands():
    h, w, stride = 5, 7, 8
    ys, xs = torch.meshgrid(torch.arange(h) * stride, torch.arange(w) * stride, indexing="ij")
    # A short-range field that is linear in position is reproduced exactly by bilinear sampling.
    short = torch.zeros(1, 2, 2, h, w)
    short[0, 1, 0] = 0.25 * xs + 1.0
    short[0, 1, 1] = -0.5 * ys + 2.0
    mid = torch.zeros(1, 1, 2, h, w)
    mid[0, 0, 0], mid[0, 0, 1] = 4.0, 8.0  # lands half a cell right, one cell down
    ends = torch.tensor([1])
    refined = refine_mid_offsets(mid, short, ends, stride)[0, 0]
    inner = (slice(0, h - 1), slice(0, w - 1))  # the landing point stays on the grid
    torch.testing.assert_close(refined[0][inner], (4.0 + 0.25 * (xs + 4.0) + 1.0)[inner].float())
    torch.testing.assert_close(refined[1][inner], (8.0 - 0.5 * (ys + 8.0) + 2.0)[inner].float())
    # Two steps with a constant field add it twice; points beyond the border read the border cell.
    short = torch.zeros(1, 2, 2, h, w)
    short[0, 1, 0], short[0, 1, 1] = 3.0, -2.0
    mid = torch.full((1, 1, 2, h, w), 100.0)
    twice = refine_mid_offsets(refine_mid_offsets(mid, short, ends, stride), short, ends, stride)
    assert torch.allclose(twice[0, 0, 0], torch.tensor(106.0)) and torch.allclose(twice[0, 0, 1], torch.tensor(96.0))


def test_refinement_is_differentiable_through_both_fields():
    short = torch.randn(1, 3, 2, 4, 4, requires_grad=True)
    mid = torch.randn(1, 2, 2, 4, 4).mul(5).requires_grad_()
    refine_mid_offsets(mid, short, torch.tensor([2, 0]), 8).sum().backward()
    assert short.grad.abs().sum() > 0 and mid.grad is not None


def test_crowdpose14_network():
    net = build_model(backbone="resnet18", schema="crowdpose14", head_channels=32).eval()
    with torch.inference_mode():
        out = net(torch.randn(1, 3, 65, 65))
    assert out.heatmaps.shape == (1, 14, 5, 5) and out.mid_offsets.shape == (1, 26, 2, 5, 5)
    assert net.schema is CROWDPOSE14


def test_model_config_round_trips_and_validates():
    config = ModelConfig(backbone="resnet50", output_stride=8, schema="crowdpose14", input_size=(321, 257),
                         intermediate_supervision=True, head_channels=64)
    data = json.loads(json.dumps(config.to_dict()))
    assert data["schema"]["keypoints"][0] == "left_shoulder" and data["input_mean"] == [0.485, 0.456, 0.406]
    assert ModelConfig.from_dict(data) == config
    custom = KeypointSchema("pair", ("a", "b"), (), (0.1, 0.1), ((0, 1),), ((0, 1),))
    custom_config = ModelConfig(schema=custom)
    assert ModelConfig.from_dict(json.loads(json.dumps(custom_config.to_dict()))) == custom_config
    assert build_model(custom_config, backbone="resnet18").heads.mid.predict.out_channels == 4
    for bad in ({"backbone": "vgg16"}, {"output_stride": 4}, {"schema": "mpii"}, {"input_std": (0, 1, 1)}):
        with pytest.raises(ValueError):
            ModelConfig(**bad)
    with pytest.raises(ValueError, match="unknown entries"):
        ModelConfig.from_dict({"backbone": "resnet18", "depth": 3})
    with pytest.raises(ValueError, match="unknown ModelConfig fields"):
        build_model(backbone="resnet18", width=3)


def test_normalisation_and_bad_inputs():
    config = ModelConfig(backbone="resnet18")
    gray = torch.full((1, 3, 2, 2), 0.5)
    normalised = config.normalize(gray)
    expected = (0.5 - torch.tensor(config.input_mean)) / torch.tensor(config.input_std)
    torch.testing.assert_close(normalised[0, :, 0, 0], expected)
    net = build_model(config).eval()
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.randn(3, 65, 65))
    with pytest.raises(ValueError, match="float"):
        net(torch.zeros(1, 3, 65, 65, dtype=torch.uint8))


def test_mac_counter_matches_the_textbook_resnet18_figure():
    from strongpose_ros.bench.model import count_macs

    # ResNet-18 at 224x224: 1.8136 GMACs in its convolutions (1.814 G with the 1000-way classifier).
    macs = count_macs(resnet("resnet18").eval(), torch.randn(1, 3, 224, 224))
    assert macs == 118_013_952 + 4 * 115_605_504 + 3 * (57_802_752 + 3 * 115_605_504 + 6_422_528) == 1_813_561_344
