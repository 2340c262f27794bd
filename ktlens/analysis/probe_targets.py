"""What to probe, where, and at which position, for each study's model.

Kept for existing imports: everything here is defined in ``ktlens.analysis.probes.targets`` (the
studies' targets, read from the task variables) and ``ktlens.analysis.probes.positions`` (the
position convention).
"""

from __future__ import annotations

from ktlens.analysis.probes.targets import (
    FLATTEN_HOOKS,
    KTHEORY_TARGETS,
    READ_POSITION,
    ProbeData,
    default_hooks,
    default_position,
    joint_codes,
    ktheory_probe_data,
    probe_data,
    remainders_probe_data,
)

__all__ = [
    "ProbeData",
    "default_position",
    "default_hooks",
    "probe_data",
    "ktheory_probe_data",
    "remainders_probe_data",
    "joint_codes",
    "FLATTEN_HOOKS",
    "READ_POSITION",
    "KTHEORY_TARGETS",
]
