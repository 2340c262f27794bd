"""ktlens: mechanistic interpretability of small transformers trained on exact mathematics."""

__version__ = "0.1.0"


def load_pretrained(name_or_path, device="cpu"):
    """Load a shipped model by name (e.g. "ktheory-small") or a checkpoint folder."""
    from ktlens.checkpoint import load_pretrained as _load

    return _load(name_or_path, device=device)


def load_sae(name_or_path, device="cpu"):
    """Load a shipped SAE by name (e.g. "ktheory-small/blocks.0.mlp.hook_post") or an SAE folder."""
    from ktlens.saes.io import load_sae as _load

    return _load(name_or_path, device=device)


def pretrained_saes():
    """Names of the shipped SAEs ("<model>/<hook>")."""
    from ktlens.saes.io import pretrained_saes as _names

    return _names()


__all__ = ["load_pretrained", "load_sae", "pretrained_saes", "__version__"]
