"""Test-process set-up shared by every test.

``tritonclient.grpc`` and MLServer both register the V2 protocol's messages (``inference.ServerLiveRequest``,
...) in protobuf's default descriptor pool under different file names, so importing both in one process
fails ("duplicate symbol"). Servers run in their own processes; only this test process needs both (MLServer
for unit tests, tritonclient as a real client), so tritonclient's generated modules are built into a
private pool here, before any test module imports either. The messages are the same on the wire.
"""

from __future__ import annotations

from google.protobuf import descriptor_pool


def _import_tritonclient_grpc_in_private_pool() -> None:
    default = descriptor_pool.Default
    private = descriptor_pool.DescriptorPool()
    descriptor_pool.Default = lambda: private  # type: ignore[assignment]
    try:
        import tritonclient.grpc  # noqa: F401
    finally:
        descriptor_pool.Default = default  # type: ignore[assignment]


_import_tritonclient_grpc_in_private_pool()
