"""mlserver-sigaware: serve MLflow models on MLServer, driven by their signatures."""

from ._patches import apply as _apply_patches

_apply_patches()

from .repository import MlflowRegistryRepository  # noqa: E402
from .runtime import SignatureAwareRuntime  # noqa: E402

__all__ = ["MlflowRegistryRepository", "SignatureAwareRuntime"]
__version__ = "0.1.0"
