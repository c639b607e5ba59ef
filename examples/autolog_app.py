"""A small Supervisely app with no workflow code at all: its workflow is recorded by ``autolog``.

It reads project ``PROJECT_ID``, downloads it, writes it back as a new project, archives it and uploads
the archive to team Files — the seed guide's example app, without its ``workflow.py``. Record its
workflow without changing a line::

    SERVER_ADDRESS=https://app.supervisely.com API_TOKEN=... TASK_ID=12345 TEAM_ID=7 PROJECT_ID=42 \\
        python -m workflow_trace run examples/autolog_app.py

(or put ``import workflow_trace; workflow_trace.autolog()`` at the top). The workflow: input
``project:PROJECT_ID``, output the new project and the archive file — the same edges as
``autolog_app_decorated.py``, which declares them by hand.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import supervisely as sly


def main() -> None:
    """Download the project, upload it as a new one, upload an archive of it."""
    api = sly.Api.from_env()
    team_id = sly.env.team_id()
    project = api.project.get_info_by_id(sly.env.project_id())
    workdir = tempfile.mkdtemp()
    try:
        local = os.path.join(workdir, "project")
        sly.download_project(api, project.id, local, log_progress=False)
        res_id, res_name = sly.upload_project(
            local, api, project.workspace_id, project_name=f"{project.name} converted", log_progress=False
        )
        result = api.project.get_info_by_id(res_id)
        archive = shutil.make_archive(os.path.join(workdir, res_name), "gztar", local)
        file_info = api.file.upload(team_id, archive, f"/exports/{result.id}/{os.path.basename(archive)}")
        print(f"project {result.id} ({result.name}); archive {file_info.path}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
