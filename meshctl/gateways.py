"""Opening a SQLMesh Context on a named gateway.

`local` and `snowflake` need nothing beyond config.yaml. `fakesnow` is SQLMesh's real Snowflake
adapter over an emulated Snowflake, which only works in-process: the connector is patched for
as long as the context is open.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlmesh import Context

from meshctl.settings import Settings

EMULATED_GATEWAY = "fakesnow"


@contextlib.contextmanager
def emulation(settings: Settings, gateway: str) -> Iterator[None]:
    """Patch the Snowflake connector onto fakesnow when `gateway` is the emulated one."""
    if gateway != EMULATED_GATEWAY:
        yield
        return
    import fakesnow  # dev dependency: only the emulated gateway needs it

    data_dir = settings.resolve(settings.fakesnow_data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    with fakesnow.patch(db_path=data_dir):
        yield


@contextlib.contextmanager
def open_context(settings: Settings, gateway: str | None = None, **kwargs) -> Iterator[Context]:
    gateway = gateway or settings.gateway
    if gateway == "local":
        settings.resolve(settings.local_data_dir).mkdir(parents=True, exist_ok=True)
    with emulation(settings, gateway):
        context = Context(paths=[settings.project_dir], gateway=gateway, **kwargs)
        try:
            yield context
        finally:
            context.close()
