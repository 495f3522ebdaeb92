"""The one inference path: BGR images of any size in, people in image pixels out.

`Estimator` owns preprocessing (resize and pad to the network's input, normalisation), the network,
the decoder and the mapping back to image pixels. The ROS node, the bag tool, the demo, the evaluator
and the benchmarks all call it, so they all see the same results for the same image.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from strongpose_ros import checkpoint
from strongpose_ros.decode import DecoderConfig, PersonPose, decode
from strongpose_ros.model import ModelConfig, PoseOutputs, StrongPoseNet, build_model
from strongpose_ros.schema import KeypointSchema

__all__ = ["Estimator", "HeatmapTransform", "PoseResult", "resolve_device"]


@dataclass(frozen=True)
class HeatmapTransform:
    """Maps heat-map cells to image pixels: image_x = heatmap_x * scale_x + offset_x (same for y)."""

    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float

    def to_image(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64)
        return np.stack([xy[..., 0] * self.scale_x + self.offset_x, xy[..., 1] * self.scale_y + self.offset_y], -1)


@dataclass
class PoseResult:
    """What the estimator found in one image.

    - `people`: sorted by score, keypoints and boxes in pixels of the image given to the estimator;
    - `image_size`: (height, width) of that image;
    - `heatmap_transform`: heat-map cell to image pixel, for `body_heatmap` and `keypoint_heatmaps`;
    - `body_heatmap`: (H', W') float32 body heat map in [0, 1], cropped to the image, when asked for;
    - `keypoint_heatmaps`: (K, H', W') float32 strong keypoint heat maps, when asked for;
    - `timings_ms`: wall time of each stage for the batch this image was in (preprocess, network, decode).
    """

    people: list[PersonPose]
    image_size: tuple[int, int]
    heatmap_transform: HeatmapTransform
    body_heatmap: np.ndarray | None = None
    keypoint_heatmaps: np.ndarray | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or 'cuda:N', checked against the machine."""
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but CUDA is not available on this machine")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} asked for, but there are {torch.cuda.device_count()} CUDA devices")
    elif resolved.type != "cpu":
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return resolved


@dataclass(frozen=True)
class _Placement:
    """How one image sits in the network input: resized to (height, width), padded right and bottom."""

    image_size: tuple[int, int]
    resized_size: tuple[int, int]

    @property
    def factors(self) -> tuple[float, float]:
        """Image pixels per input pixel, (x, y)."""
        return self.image_size[1] / self.resized_size[1], self.image_size[0] / self.resized_size[0]

    def input_to_image(self, xy: np.ndarray) -> np.ndarray:
        # cv2.resize maps pixel centres: x_in + 0.5 = (x_img + 0.5) / factor.
        fx, fy = self.factors
        out = np.empty_like(xy, dtype=np.float32)
        out[..., 0] = (xy[..., 0] + 0.5) * fx - 0.5
        out[..., 1] = (xy[..., 1] + 0.5) * fy - 0.5
        return out

    def heatmap_transform(self, stride: int) -> HeatmapTransform:
        fx, fy = self.factors
        return HeatmapTransform(stride * fx, stride * fy, 0.5 * fx - 0.5, 0.5 * fy - 0.5)

    def grid_extent(self, stride: int) -> tuple[int, int]:
        """Output cells (rows, cols) whose input pixel lies inside the resized image (not the padding)."""
        return (self.resized_size[0] - 1) // stride + 1, (self.resized_size[1] - 1) // stride + 1


class Estimator:
    """StrongPose inference: preprocessing, network, decoder and the mapping back to image pixels.

    >>> estimator = Estimator.from_checkpoint("model.safetensors", device="auto")
    >>> result = estimator.estimate(bgr_image)          # one image
    >>> results = estimator.estimate_batch([a, b, c])   # several cameras in one forward pass

    Images are HxWx3 uint8 BGR arrays (OpenCV's layout) of any size. Each is resized, keeping its aspect
    ratio, to fit `input_size` and padded right and bottom; a batch shares one network call.
    """

    def __init__(
        self,
        model: StrongPoseNet,
        *,
        device: str | torch.device = "auto",
        half: bool = False,
        input_size: int | tuple[int, int] | None = None,
        output_stride: int | None = None,
        decoder: DecoderConfig | None = None,
        flip: bool = False,
    ) -> None:
        self.device = resolve_device(device)
        # Half precision is a GPU feature; on the CPU it would be slower and less accurate.
        self.half = bool(half) and self.device.type == "cuda"
        if output_stride is not None and output_stride != model.stride:
            model.set_output_stride(output_stride)
        self.model = model.to(self.device).eval()
        if self.half:
            self.model.half()
        size = model.config.input_size if input_size is None else input_size
        self.input_size: tuple[int, int] = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        if min(self.input_size) < 2:
            raise ValueError(f"input_size must be at least 2x2, got {self.input_size}")
        self.flip = bool(flip)
        if self.flip and (self.input_size[1] - 1) % self.stride:
            # Mirroring maps cell j to n-1-j only when the input width is stride*n+1.
            raise ValueError(
                f"flip needs an input width of stride*n+1 (stride {self.stride}), got {self.input_size[1]}"
            )
        self.decoder_config = decoder or DecoderConfig()
        # BGR order reversed to RGB and the network's normalisation, precomputed once on the device.
        config = model.config
        dtype = torch.float16 if self.half else torch.float32
        self._mean = torch.tensor(config.input_mean, device=self.device, dtype=dtype).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(config.input_std, device=self.device, dtype=dtype).view(1, 3, 1, 1) * 255.0
        self._pad_bgr = tuple(float(round(m * 255.0)) for m in reversed(config.input_mean))

    # --- construction ----------------------------------------------------------------------------------

    @classmethod
    def from_checkpoint(cls, path: str | Path, **options) -> Estimator:
        """Load a StrongPose checkpoint (safetensors + metadata; never unpickles). Errors name the file."""
        device = resolve_device(options.pop("device", "auto"))
        loaded = checkpoint.load(path, device=device)
        return cls(loaded.model, device=device, **options)

    @classmethod
    def untrained(cls, config: ModelConfig | None = None, seed: int = 0, **options) -> Estimator:
        """A randomly initialised network (seeded): exercises the whole path before weights exist."""
        torch.manual_seed(seed)
        return cls(build_model(config), **options)

    # --- properties -----------------------------------------------------------------------------------

    @property
    def schema(self) -> KeypointSchema:
        return self.model.schema

    @property
    def model_config(self) -> ModelConfig:
        return self.model.config

    @property
    def stride(self) -> int:
        return self.model.stride

    def set_decoder_config(self, config: DecoderConfig) -> None:
        """Swap decoder settings between frames (e.g. from a ROS parameter callback)."""
        self.decoder_config = config

    def release(self) -> None:
        """Move the network off the GPU and free cached GPU memory (a deactivated node keeps no VRAM)."""
        self.model.to("cpu")
        self.device = torch.device("cpu")
        self._mean, self._std = self._mean.cpu().float(), self._std.cpu().float()
        if self.half:
            self.model.float()
            self.half = False
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # --- inference ------------------------------------------------------------------------------------

    def estimate(self, image: np.ndarray, *, heatmaps: bool = False, keypoint_heatmaps: bool = False) -> PoseResult:
        """People in one BGR image."""
        return self.estimate_batch([image], heatmaps=heatmaps, keypoint_heatmaps=keypoint_heatmaps)[0]

    def estimate_batch(
        self, images: Sequence[np.ndarray], *, heatmaps: bool = False, keypoint_heatmaps: bool = False
    ) -> list[PoseResult]:
        """People in each of several BGR images, with one network call for all of them."""
        if len(images) == 0:
            return []
        started = time.perf_counter()
        batch, placements = self._preprocess(images)
        prepared = time.perf_counter()
        with torch.inference_mode():
            outputs = self._forward(batch)
            outputs = outputs.to(dtype=torch.float32) if self.half else outputs
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            networked = time.perf_counter()
            people = decode(outputs, self.schema, self.decoder_config)
        decoded = time.perf_counter()
        timings = {
            "preprocess": (prepared - started) * 1e3,
            "network": (networked - prepared) * 1e3,
            "decode": (decoded - networked) * 1e3,
        }
        results = []
        for index, (placement, found) in enumerate(zip(placements, people, strict=True)):
            result = PoseResult(
                people=[self._to_image(person, placement) for person in found],
                image_size=placement.image_size,
                heatmap_transform=placement.heatmap_transform(self.stride),
                timings_ms=timings,
            )
            rows, cols = placement.grid_extent(self.stride)
            if heatmaps:
                result.body_heatmap = outputs.body_heatmap[index, 0, :rows, :cols].cpu().numpy().astype(np.float32)
            if keypoint_heatmaps:
                result.keypoint_heatmaps = outputs.heatmaps[index, :, :rows, :cols].cpu().numpy().astype(np.float32)
            results.append(result)
        return results

    def _preprocess(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, list[_Placement]]:
        height, width = self.input_size
        canvas = np.empty((len(images), height, width, 3), dtype=np.uint8)
        placements = []
        for i, image in enumerate(images):
            _check_image(image, i)
            h, w = image.shape[:2]
            factor = min(height / h, width / w)
            new_h, new_w = max(1, min(height, round(h * factor))), max(1, min(width, round(w * factor)))
            # INTER_AREA averages when shrinking (no aliasing from a 4K frame); linear when enlarging.
            interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
            canvas[i] = self._pad_bgr
            canvas[i, :new_h, :new_w] = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
            placements.append(_Placement((h, w), (new_h, new_w)))
        # Upload uint8 (a quarter of the bytes of float32), then convert on the device.
        batch = torch.from_numpy(canvas).to(self.device, non_blocking=True)
        batch = batch.permute(0, 3, 1, 2).flip(1)  # NHWC BGR -> NCHW RGB
        batch = batch.to(torch.float16 if self.half else torch.float32)
        return (batch - self._mean) / self._std, placements

    def _forward(self, batch: torch.Tensor) -> PoseOutputs:
        outputs = self.model(batch)
        if not self.flip:
            return outputs
        return _average_with_mirror(outputs, self.model(batch.flip(-1)), self.schema)

    def _to_image(self, person: PersonPose, placement: _Placement) -> PersonPose:
        keypoints = person.keypoints.copy()
        keypoints[:, :2] = placement.input_to_image(keypoints[:, :2])
        h, w = placement.image_size
        # A keypoint pushed into the padding by its offsets is still the image's nearest edge point.
        np.clip(keypoints[:, 0], 0, w - 1, out=keypoints[:, 0])
        np.clip(keypoints[:, 1], 0, h - 1, out=keypoints[:, 1])
        corners = placement.input_to_image(np.asarray(person.box, dtype=np.float32).reshape(2, 2))
        corners[:, 0] = np.clip(corners[:, 0], 0, w - 1)
        corners[:, 1] = np.clip(corners[:, 1], 0, h - 1)
        return replace(person, keypoints=keypoints, box=tuple(float(v) for v in corners.reshape(-1)))


def _check_image(image: np.ndarray, index: int) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"image {index}: expected an HxWx3 uint8 BGR array, got shape {shape} of {dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image {index}: empty image ({image.shape[1]}x{image.shape[0]})")


def _average_with_mirror(outputs: PoseOutputs, mirrored: PoseOutputs, schema: KeypointSchema) -> PoseOutputs:
    """Flip test-time augmentation: mirror the outputs of the mirrored image back and average.

    Mirroring swaps left and right keypoints (and directed edges) and negates horizontal offsets.
    """
    keypoint_perm = torch.as_tensor(schema.flip_permutation, device=outputs.heatmaps.device)
    edge_perm = torch.as_tensor(schema.directed_edge_flip_permutation, device=outputs.heatmaps.device)
    device, dtype = outputs.heatmaps.device, outputs.short_offsets.dtype
    sign = torch.tensor([-1.0, 1.0], device=device, dtype=dtype).view(1, 1, 2, 1, 1)

    def unmirror(t: torch.Tensor, perm: torch.Tensor | None, offsets: bool = False) -> torch.Tensor:
        t = t.flip(-1)
        if perm is not None:
            t = t[:, perm]
        return t * sign if offsets else t

    return PoseOutputs(
        heatmaps=(outputs.heatmaps + unmirror(mirrored.heatmaps, keypoint_perm)) / 2,
        short_offsets=(outputs.short_offsets + unmirror(mirrored.short_offsets, keypoint_perm, True)) / 2,
        mid_offsets=(outputs.mid_offsets + unmirror(mirrored.mid_offsets, edge_perm, True)) / 2,
        body_heatmap=(outputs.body_heatmap + unmirror(mirrored.body_heatmap, None)) / 2,
        stride=outputs.stride,
    )
