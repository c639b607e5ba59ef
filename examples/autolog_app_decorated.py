"""``autolog_app.py`` with its workflow declared by decorators instead of recorded by ``autolog``.

The same work, split into functions that say what they read and write; run it as it is::

    SERVER_ADDRESS=https://app.supervisely.com API_TOKEN=... TASK_ID=12345 TEAM_ID=7 PROJECT_ID=42 \\
        python examples/autolog_app_decorated.py

Both record the same edges: input ``project:PROJECT_ID``, output the new project and the archive file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

import supervisely as sly

import workflow_trace as wt


@wt.consumes_project
def download(api: Any, project_info: Any, local: str) -> None:
    """Download the project to ``local``."""
    sly.download_project(api, project_info.id, local, log_progress=False)


@wt.produces_project(lambda result: result[0])  # (project_id, project_name)
def upload(api: Any, local: str, workspace_id: int, name: str) -> tuple[int, str]:
    """Upload ``local`` as a new project; return its id and name."""
    return sly.upload_project(local, api, workspace_id, project_name=name, log_progress=False)


@wt.produces_file
def upload_archive(api: Any, team_id: int, archive: str, remote: str) -> Any:
    """Upload the archive to team Files; return its FileInfo."""
    return api.file.upload(team_id, archive, remote)


@wt.workflow_step("autolog_app.py")
def main() -> None:
    """Download the project, upload it as a new one, upload an archive of it."""
    api = sly.Api.from_env()
    team_id = sly.env.team_id()
    project = api.project.get_info_by_id(sly.env.project_id())
    workdir = tempfile.mkdtemp()
    try:
        local = os.path.join(workdir, "project")
        download(api, project, local)
        res_id, res_name = upload(api, local, project.workspace_id, f"{project.name} converted")
        result = api.project.get_info_by_id(res_id)
        archive = shutil.make_archive(os.path.join(workdir, res_name), "gztar", local)
        file_info = upload_archive(api, team_id, archive, f"/exports/{result.id}/{os.path.basename(archive)}")
        print(f"project {result.id} ({result.name}); archive {file_info.path}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
    wt.flush(timeout=30)
