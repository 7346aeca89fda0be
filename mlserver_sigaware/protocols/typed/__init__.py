"""The typed API: ``POST /v2/models/<name>/predict`` (records in, records out), its OpenAPI document and
an offline Swagger UI page, all generated from the signature.

* :mod:`.fields`: MLflow types -> pydantic field types that accept exactly what the codec accepts;
* :mod:`.api`: the generated request/response models and the predict route's logic;
* :mod:`.records`: records <-> V2 tensors, so ``/predict`` goes through the same codec as ``/infer``;
* :mod:`.openapi` (with :mod:`.oas30` and :mod:`.examples`): the OpenAPI 3.0 document;
* :mod:`.swagger`: the Swagger UI page, assets served from the installed package;
* :mod:`.routes`: the HTTP routes.
"""
