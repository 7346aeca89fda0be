"""Which loaded model version answers a request.

* :mod:`.selectors`: the version a request asks for (headers), validated before any work;
* :mod:`.manager`: :class:`VersionManager`, the versions of one registered model in this process
  (default version, LRU cache, compatibility guard, alias hot-swap);
* :mod:`.repository`: :class:`MlflowRegistryRepository`, registry versions listed as MLServer model
  versions (``/v2/models/<name>/versions/<v>/...``).
"""

from .manager import VersionManager, manager_for
from .repository import MlflowRegistryRepository
from .selectors import VERSION_HEADERS, parse_selector, selector_from_headers

__all__ = [
    "VERSION_HEADERS",
    "MlflowRegistryRepository",
    "VersionManager",
    "manager_for",
    "parse_selector",
    "selector_from_headers",
]
