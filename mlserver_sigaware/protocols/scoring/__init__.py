"""MLflow's scoring protocol (``POST /invocations`` of ``mlflow models serve``), framework-free.

* :mod:`.invocations`: one request answered as MLflow's scoring server would (the contract, and the
  deliberate differences, are in its docstring);
* :mod:`.reading`: the body read by content type; :mod:`.fastpath`: regular payloads turned into V2
  inputs for the one codec; :mod:`.responses`: the bodies MLflow answers with;
* :mod:`.routes`: the HTTP routes (``/invocations``, ``/ping``, ``/health``, ``/version``).
"""

from .invocations import invoke
from .responses import ScoringResponse, error_for_status, format_predictions, no_default_model

__all__ = ["ScoringResponse", "error_for_status", "format_predictions", "invoke", "no_default_model"]
