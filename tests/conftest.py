"""Test-wide settings: one intra-op thread (tiny models run fastest so, and runs are reproducible)."""

import torch

torch.set_num_threads(1)
