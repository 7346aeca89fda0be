"""mlserver-sigaware: serve MLflow models on MLServer, driven by their signatures.

A request flows: protocol adapter (:mod:`.protocols`: V2, MLflow scoring, typed API) -> version selection
(:mod:`.versions`) -> the signature codec (:mod:`.codec`, by :mod:`.signature`) -> the model
(:mod:`.model`) -> the codec -> the response. :mod:`.runtime` wires them into MLServer;
:mod:`._patches` fixes what MLServer 1.7.1 gets wrong.
"""

from ._patches import apply as _apply_patches

_apply_patches()

from .runtime import SignatureAwareRuntime  # noqa: E402
from .versions.repository import MlflowRegistryRepository  # noqa: E402

__all__ = ["MlflowRegistryRepository", "SignatureAwareRuntime"]
__version__ = "0.1.0"
