"""What every node's start shares: rclpy start-up with a readable error, and warnings for misspelt parameters.

- `init_rclpy(args, prog)`: rclpy.init, turning rcl's error for a missing or malformed `--params-file`
  (a traceback ending in "Couldn't parse params file ... at /project/src/...") into one line on stderr
  ("pose_node: cannot read the parameter file FILE: Error opening YAML file"), after rcl's own one;
- `undeclared_parameters(node, known)`: the parameters given to a node (command line, parameter file,
  `parameter_overrides`) that it does not declare, each with the nearest known name. rclpy ignores them
  silently; a node logs these at start, so `input.reliabilty` does not quietly fall back to the default.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Iterable
from typing import Any

import rclpy

__all__ = ["ROS_PARAMETERS", "init_rclpy", "undeclared_parameters", "warn_undeclared_parameters"]

# Parameters rclpy itself declares on every node.
ROS_PARAMETERS = frozenset({"use_sim_time", "start_type_description_service", "qos_overrides"})


def _rcl_message(exc: Exception) -> str:
    """rcl's message without its source locations (", at /project/src/parser.c:271")."""
    text = str(exc)
    text = re.sub(r", at [^,]*\.c:\d+", "", text)
    return text.replace("failed to initialize rcl: ", "")


def init_rclpy(args: list[str] | None, prog: str) -> bool:
    """rclpy.init(args); False (after one line on stderr saying why) when rcl refuses the arguments."""
    try:
        rclpy.init(args=sys.argv if args is None else args)
    except Exception as exc:  # rclpy raises _rclpy.RCLError, which is not importable by a stable name
        message = _rcl_message(exc)
        found = re.search(r"params file: '--params-file (.*?)'\. Error: (.*)", message)
        if found:
            message = f"cannot read the parameter file {found.group(1)}: {found.group(2)}"
        print(f"{prog}: {message}", file=sys.stderr, flush=True)
        return False
    return True


def undeclared_parameters(given: Iterable[str], known: Iterable[str]) -> list[tuple[str, str | None]]:
    """(name, nearest known name or None) for each given name that is neither known nor rclpy's own."""
    known = sorted(set(known))
    out = []
    for name in sorted(set(given)):
        if name in known or name in ROS_PARAMETERS or name.startswith("qos_overrides."):
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        out.append((name, close[0] if close else None))
    return out


def warn_undeclared_parameters(node: Any, known: Iterable[str]) -> list[str]:
    """Log a warning for every parameter given to `node` that it does not declare; returns the lines."""
    given = getattr(node, "_parameter_overrides", {})  # rclpy keeps what it was given here (no public API)
    lines = []
    for name, nearest in undeclared_parameters(given, known):
        hint = f"; did you mean '{nearest}'?" if nearest else ""
        lines.append(f"parameter '{name}' is not a parameter of {node.get_name()} and is ignored{hint}")
        node.get_logger().warning(lines[-1])
    return lines
