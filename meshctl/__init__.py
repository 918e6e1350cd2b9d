"""Runtime around the Goodword SQLMesh project: one console entry point, `meshctl`."""
