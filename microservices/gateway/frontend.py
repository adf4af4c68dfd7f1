"""The built front end served at `/`, with every unknown path answered by index.html (the SPA routes itself)."""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from microservices.common.errors import NotFound

# Paths that belong to the API, never to the front end: an unknown one is a 404, not the SPA.
_NOT_FRONTEND = ("api/", "ws/")


def frontend_router(directory: Path) -> APIRouter:
    """Routes serving the files of `directory`, and its index.html for anything else."""
    root = directory.resolve()
    index = root / "index.html"
    router = APIRouter(include_in_schema=False)

    @router.get("/{path:path}")
    async def frontend(path: str) -> FileResponse:
        """A file of the built front end, or index.html for a client-side route."""
        if path == "api" or path.startswith(_NOT_FRONTEND):
            raise NotFound(f"No route /{path}.")
        candidate = (root / path).resolve()
        # resolve() undoes any `..`, so a path outside the directory is simply not one of its files.
        if path and candidate.is_relative_to(root) and candidate.is_file():
            return FileResponse(candidate)
        if not index.is_file():
            raise NotFound("The front end has not been built.")
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    return router
