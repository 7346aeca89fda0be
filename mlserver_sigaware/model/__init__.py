"""One loaded model version: where it comes from, how it is loaded, and how it is called.

* :mod:`.location`: ``parameters.uri`` -> :class:`ModelRef` (local folder, ``runs:/``, registry);
* :mod:`.registry`: :class:`RegistryClient`, a ref resolved to a registry version, downloaded, loaded;
* :mod:`.served`: :class:`ServedModel`, one loaded version with its codec, metadata and predictor,
  all computed once at load;
* :mod:`.predictor`: calling the pyfunc, client errors (400) kept apart from model failures (500);
* :mod:`.sklearn_input`: when a scikit-learn estimator may be handed its input as an array.
"""

from .location import ModelRef, ResolvedModel, parse_model_location
from .registry import RegistryClient
from .served import ServedModel

__all__ = ["ModelRef", "RegistryClient", "ResolvedModel", "ServedModel", "parse_model_location"]
