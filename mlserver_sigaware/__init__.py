"""mlserver-sigaware: serve MLflow models on MLServer, driven by their signatures."""

from ._patches import apply as _apply_patches

_apply_patches()

from .runtime import SignatureAwareRuntime  # noqa: E402

__all__ = ["SignatureAwareRuntime"]
__version__ = "0.1.0"
