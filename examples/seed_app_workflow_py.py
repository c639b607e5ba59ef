"""The seed app with the workflow integrated BY HAND, as the MLOps workflow guide shows it (SDK only).

This is the guide's ``workflow.py`` + ``main.py`` in one file (its typos fixed: ``FileInfo`` imported,
``file_info`` logged, ``def main():``), kept to compare with ``seed_app_decorated.py``, the same app
with workflow_trace. It needs the ``supervisely`` package and an instance; it is not run by the tests.

The app reads a project, writes a converted copy of it as a new project and uploads an archive of the
result to team Files. Its workflow: the project as input; the new project and the archive (a pink
"archive" card linking to the download) as outputs.

Every workflow call is wrapped in its own try/except, and each one blocks on the network: that is the
boilerplate workflow_trace removes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Optional

import supervisely as sly
from supervisely.api.file_api import FileInfo

# ---------------------------------------------------------------------------------------------------
# workflow.py
# ---------------------------------------------------------------------------------------------------


def workflow_input(api: sly.Api, project_info: sly.ProjectInfo) -> None:
    try:
        api.app.workflow.add_input_project(project_info.id)
        sly.logger.debug(f"Workflow: Input project - {project_info.id}")
    except Exception as e:
        sly.logger.debug(f"Workflow: Failed to add input project to the workflow: {e!r}")


def workflow_output(
    api: sly.Api,
    project_info: Optional[sly.ProjectInfo] = None,
    file_info: Optional[FileInfo] = None,
) -> None:
    if project_info is None and file_info is None:
        sly.logger.warning(
            "Workflow: at least one of the `project_info` or `file_info` must be provided. "
            "Workflow output will not be processed."
        )
        return
    try:
        if project_info is not None:
            api.app.workflow.add_output_project(project_info.id)
            sly.logger.debug(f"Workflow: Output project - {project_info.id}")
    except Exception as e:
        sly.logger.debug(f"Workflow: Failed to add output project to the workflow: {e!r}")
    try:
        if file_info is not None:
            relation_settings = sly.WorkflowSettings(
                title=f"Project Archive: {file_info.name}",
                icon="archive",
                icon_color="#ff4c9e",
                icon_bg_color="#ffe3ed",
                url=f"/files/{file_info.id}/true/?teamId={file_info.team_id}",
                url_title="Download",
            )
            meta = sly.WorkflowMeta(relation_settings=relation_settings)
            api.app.workflow.add_output_file(file_info, meta=meta)
            sly.logger.debug(f"Workflow: Output file - {file_info}")
    except Exception as e:
        sly.logger.debug(f"Workflow: Failed to add output file with project archive to the workflow: {e!r}")


# ---------------------------------------------------------------------------------------------------
# main.py
# ---------------------------------------------------------------------------------------------------


def main() -> None:
    api = sly.Api.from_env()
    team_id = sly.env.team_id()
    project_info = api.project.get_info_by_id(sly.env.project_id())

    workflow_input(api, project_info)

    # The app's work: download the project, write the result as a new project, archive it to Files.
    workdir = tempfile.mkdtemp()
    try:
        local = os.path.join(workdir, project_info.name)
        sly.download_project(api, project_info.id, local)
        res_project_id, res_project_name = sly.upload_project(
            local, api, project_info.workspace_id, project_name=f"{project_info.name} (converted)"
        )
        res_project_info = api.project.get_info_by_id(res_project_id)
        archive = shutil.make_archive(os.path.join(workdir, res_project_name), "gztar", local)
        remote = f"/exports/{res_project_id}/{os.path.basename(archive)}"
        file_info = api.file.upload(team_id, archive, remote)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    workflow_output(api, res_project_info, file_info)


if __name__ == "__main__":
    main()
