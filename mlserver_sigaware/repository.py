"""``MlflowRegistryRepository``: the model repository to name in settings.json.

Today it finds model-settings.json files exactly as MLServer's default repository does. Naming it in
``settings.json`` (``"model_repository_implementation": "mlserver_sigaware.MlflowRegistryRepository"``)
makes MLServer import this package *before* it builds its HTTP app, which is when our REST fixes
(:mod:`mlserver_sigaware._patches`) must be in place.
"""

from __future__ import annotations

from mlserver.repository.repository import SchemalessModelRepository


class MlflowRegistryRepository(SchemalessModelRepository):
    """MLServer's file-based repository, imported early so that our patches apply to the server."""
