"""The fast greedy decoder: StrongPose outputs in, people out (ALGORITHM.md sections 5-7).

    from strongpose_ros.decode import decode, DecoderConfig, PersonPose, warmup
    people = decode(outputs, COCO17, DecoderConfig())[0]   # one list per batch element, best first

Modules: `config` (every constant), `voting` (Hough maps), `peaks` (blur, local maxima), `sampling`
(bilinear reads), `greedy` (grouping along the kinematic tree), `scoring` (keypoint scores, Eq. 1, OKS),
`fragments` (joining the pieces of a person the tree walk could not connect [ours]), `nms` (instance NMS
options), `decoder` (the pipeline), `types` (PersonPose). Call `warmup()` once at start-up: it compiles the
numba kernels (or loads them from numba's on-disk cache) so that the first frame is not slow.
"""

from strongpose_ros.decode.config import DecoderConfig
from strongpose_ros.decode.decoder import decode, warmup
from strongpose_ros.decode.types import PersonPose

__all__ = ["DecoderConfig", "PersonPose", "decode", "warmup"]
