"""The shipped models that commands and the report use when none is named (no imports: read by the CLI)."""

DEFAULT_MODELS = {"ktheory": "ktheory-base-eprime", "miiii": "miiii-small"}
DEFAULT_KTHEORY_MODEL = DEFAULT_MODELS["ktheory"]
