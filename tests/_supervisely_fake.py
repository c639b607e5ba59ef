"""A Supervisely instance as far as workflows go, on 127.0.0.1 (for the backend's tests and the SDK replay)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from httpserver import RecordingServer, Request

TOKEN = "s3cr3t-T0KEN-" + "x" * 115  # as long as a real one, and unmistakable in any text
API = "/public/api/v3/"


class FakeInstance:
    """A Supervisely instance as far as workflows go: it answers what the SDK and the backend ask."""

    def __init__(self) -> None:
        self.version: str | None = "6.12.44"
        self.teams: dict[int, int] = {5: 7, 6: 7}
        self.files: list[dict[str, Any]] = [
            {"id": 999, "path": "/models/run1/best.pt", "name": "best.pt", "teamId": 7},
            {"id": 998, "path": "/models/run1/best.pt.bak", "name": "best.pt.bak", "teamId": 7},
        ]
        self.versions: dict[int, list[dict[str, Any]]] = {
            123: [{"id": 77, "projectId": 123, "version": 3, "name": "v3", "description": "v3",
                   "createdAt": "2024-06-01T10:00:00.000Z"}],
        }
        self.per_page = 500
        #: method -> (status, body[, headers]) answered instead of the normal answer.
        self.fail: dict[str, tuple[Any, ...]] = {}
        self.server = RecordingServer(self.handle)

    # -- answers ----------------------------------------------------------------------------------

    def handle(self, req: Request) -> tuple[Any, ...]:
        method = req.path[len(API):] if req.path.startswith(API) else req.path
        if method in self.fail:
            return self.fail[method]
        if req.headers.get("x-api-key") != TOKEN:
            return 401, {"error": "Unauthorized", "details": {"message": "invalid token"}}
        body = req.json() or {}
        if method == "instance.version":
            if self.version is None:
                return 404, {"error": "Not found"}
            return 200, {"version": self.version}
        if method == "tasks.info":
            team = self.teams.get(int(body["id"]))  # the SDK sends the environment's task id as a str
            if team is None:
                return 404, {"error": f"task {body['id']} not found"}
            return 200, {"id": body["id"], "workspaceId": 3, "teamId": team, "type": "app", "meta": {}}
        if method == "file-storage.list":
            prefix = body["path"]
            team = body["teamId"]
            return 200, [f for f in self.files if f["teamId"] == team and f["path"].startswith(prefix)]
        if method == "projects.versions.list":
            items = list(self.versions.get(body["projectId"], []))
            for flt in body.get("filter", []):
                items = [v for v in items if v.get(flt["field"]) == flt["value"]]
            pages = max(1, -(-len(items) // self.per_page))
            page = body.get("page", 1)
            chunk = items[(page - 1) * self.per_page: page * self.per_page]
            page_info = {"total": len(items), "perPage": self.per_page, "pagesCount": pages}
            return 200, {**page_info, "entities": chunk}
        if method in ("workflow.node.add-input", "workflow.node.add-output"):
            return 200, {"success": True}
        return 404, {"error": f"unknown method {method}"}

    # -- what was asked ---------------------------------------------------------------------------

    def calls(self, method: str | None = None) -> list[Request]:
        """Answered requests, in order, optionally only those of one API method."""
        with self.server.lock:
            reqs = list(self.server.requests)
        return [r for r in reqs if method is None or r.path == API + method]

    def edges(self) -> list[Request]:
        """The workflow edge requests, in order."""
        return [r for r in self.calls() if r.path.startswith(API + "workflow.node.add-")]

    @property
    def url(self) -> str:
        return self.server.url

    def load(self, data: Mapping[str, Any]) -> FakeInstance:
        """Hold what a recorded scenario's instance holds (``tests/data/sdk_scenarios.json``, ``instance``)."""
        self.teams = {int(task): int(data["team_id"]) for task in data["tasks"]}
        self.files = [dict(f) for f in data["files"]]
        self.versions = {int(project): [dict(v) for v in items] for project, items in data["versions"].items()}
        return self
