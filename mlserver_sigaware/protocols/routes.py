"""Every HTTP route of one model instance, attached where MLServer discovers custom handlers.

The protocols each list their routes (:func:`~.scoring.routes.scoring_handlers`,
:func:`~.typed.routes.typed_handlers`); this module attaches them to the runtime instance. V2 itself
(``/v2/models/<name>/infer``, metadata, gRPC) is MLServer's, and reaches us through
:meth:`SignatureAwareRuntime.predict` and ``metadata`` (see :mod:`.v2`).
"""

from __future__ import annotations

from .http import ModelEndpoint, register
from .scoring.routes import scoring_handlers
from .typed.routes import typed_handlers

__all__ = ["install"]


def install(model: ModelEndpoint) -> None:
    """Attach this instance's route handlers as instance attributes MLServer will discover.

    Attribute names are fixed, so a worker process's instance of the same model has a method of the
    same name for the server process to call.
    """
    for attr, fn, path, method in scoring_handlers(model) + typed_handlers(model):
        setattr(model, attr, register(attr, fn, path, method))
