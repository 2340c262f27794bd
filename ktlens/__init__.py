"""ktlens: mechanistic interpretability of small transformers trained on exact mathematics."""

__version__ = "0.1.0"


def load_pretrained(name_or_path, device="cpu"):
    """Load a shipped model by name (e.g. "ktheory-small") or a checkpoint folder."""
    from ktlens.checkpoint import load_pretrained as _load

    return _load(name_or_path, device=device)


__all__ = ["load_pretrained", "__version__"]
