"""Offline training and checkpoint evaluation (no ROS needed).

- `recipe`: training recipes (config/train/*.yaml) as checked dataclasses;
- `trainer`: the training loop (EMA, AMP, DDP, checkpoints, periodic COCOeval);
- `state`: training state on disk without pickle; `ema`: weight averaging;
- `logs`, `plots`: metrics history, TensorBoard, PNG plots;
- `evaluate`: `evaluate_checkpoint`, the evaluator behind `strongpose eval --checkpoint`.

Submodules are imported on use (`from strongpose_ros.train.trainer import Trainer`), so importing the
package stays cheap.
"""
