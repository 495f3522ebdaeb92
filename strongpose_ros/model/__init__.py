"""The StrongPose network, its training targets, losses and the oracle.

Public names are re-exported here; each lives in a small module named for what it holds:
`config` (ModelConfig), `backbones` (the trunks, registered by name: ResNets, MobileNetV1), `heads` (the four
heads, mid-range refinement), `network` (StrongPoseNet, build_model), `targets` (encode_targets), `oracle`,
`losses`, `outputs`; `importers` (other projects' published weights as StrongPose checkpoints).
"""

from strongpose_ros.model.config import ModelConfig
from strongpose_ros.model.losses import LossConfig, compute_losses
from strongpose_ros.model.network import StrongPoseNet, build_model
from strongpose_ros.model.oracle import oracle_from_targets, oracle_outputs
from strongpose_ros.model.outputs import PoseOutputs, output_size
from strongpose_ros.model.targets import DISK_RADIUS, Targets, collate_targets, encode_targets

__all__ = [
    "DISK_RADIUS",
    "LossConfig",
    "ModelConfig",
    "PoseOutputs",
    "StrongPoseNet",
    "Targets",
    "build_model",
    "collate_targets",
    "compute_losses",
    "encode_targets",
    "oracle_from_targets",
    "oracle_outputs",
    "output_size",
]
