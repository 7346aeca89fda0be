"""Protocol adapters: each turns its wire format into a call on one served model version and back.

* :mod:`.v2`: V2 / Open Inference Protocol (REST and gRPC transport are MLServer's);
* :mod:`.scoring`: MLflow's scoring protocol (``/invocations``, ``/ping``, ``/version``);
* :mod:`.typed`: the typed API (``/predict``), its OpenAPI document and Swagger UI page;
* :mod:`.http` and :mod:`.routes`: how our HTTP routes are registered with MLServer.

Protocols depend on the layers below (versions, model, codec, signature); nothing below imports them.
"""
