"""The seed app with workflow_trace: the same workflow as ``seed_app_workflow_py.py``, no workflow.py.

Side by side with the hand-written version: the input project and the output project are declared by
decorators; the archive card, whose title and link depend on the uploaded file, is added to the current
step. No try/except, and nothing waits for the network: the events are queued and sent by a background
worker (kept in a local spool if the instance cannot be reached, and sent later).

Run it inside a Supervisely task, or point it at an instance::

    SERVER_ADDRESS=https://app.supervisely.com API_TOKEN=... TASK_ID=12345 TEAM_ID=7 PROJECT_ID=42 \\
        python examples/seed_app_decorated.py

With the ``supervisely`` package installed the app does its real work (download, convert, upload).
Without it (or with ``SEED_APP_DEMO=1``) it runs in *demo mode*: the same calls, with stand-ins for
what the SDK would have returned (``RESULT_PROJECT_ID`` and ``ARCHIVE_FILE_ID`` from the environment,
or made-up ids), so that the workflow it records can be checked against any server. The request bodies
are those of the SDK's ``api.app.workflow.add_input_project`` / ``add_output_project`` /
``add_output_file``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from types import SimpleNamespace
from typing import Any

import workflow_trace as wt
from workflow_trace import WorkflowMeta, WorkflowSettings

# Nothing to configure: with SERVER_ADDRESS and API_TOKEN set, workflow_trace records to that instance
# (the Supervisely backend); TASK_ID / SUPERVISELY_TASK_ID gives the task, as for the SDK.


def archive_card(file_info: Any) -> WorkflowMeta:
    """The archive's card: a pink archive icon linking to the download (as in the guide)."""
    return WorkflowMeta(
        relation_settings=WorkflowSettings(
            title=f"Project Archive: {file_info.name}",
            icon="archive",
            icon_color="#ff4c9e",
            icon_bg_color="#ffe3ed",
            url=f"/files/{file_info.id}/true/?teamId={file_info.team_id}",
            url_title="Download",
        )
    )


@wt.consumes_project("project_info")
@wt.produces_project
def convert(api: Any, project_info: Any, workdir: str) -> Any:
    """Write a converted copy of the project as a new project; return the new ProjectInfo."""
    return api.convert_project(project_info, workdir)


def upload_archive(api: Any, project_info: Any, workdir: str) -> Any:
    """Archive the result to team Files and put the archive's card on the workflow."""
    file_info = api.upload_archive(project_info, workdir)
    step = wt.current_step()
    if step is not None:
        step.add_output(file_info, kind="file", meta=archive_card(file_info))
    return file_info


@wt.workflow_step("Export project")
def main() -> None:
    """Read the project, convert it, upload the archive: the guide's main()."""
    api = SdkWork() if _has_sdk() and not os.environ.get("SEED_APP_DEMO") else DemoWork()
    project_info = api.get_project(int(os.environ["PROJECT_ID"]))
    workdir = tempfile.mkdtemp()
    try:
        result = convert(api, project_info, workdir)
        upload_archive(api, result, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------
# The app's own work (no workflow code below this line)
# ---------------------------------------------------------------------------------------------------


def _has_sdk() -> bool:
    try:
        import supervisely  # noqa: F401
    except ImportError:
        return False
    return True


class SdkWork:
    """The real work, with the Supervisely SDK (as in seed_app_workflow_py.py)."""

    def __init__(self) -> None:
        import supervisely as sly

        self.sly = sly
        self.api = sly.Api.from_env()

    def get_project(self, project_id: int) -> Any:
        return self.api.project.get_info_by_id(project_id)

    def convert_project(self, project_info: Any, workdir: str) -> Any:
        local = os.path.join(workdir, project_info.name)
        self.sly.download_project(self.api, project_info.id, local)
        res_id, _ = self.sly.upload_project(
            local, self.api, project_info.workspace_id, project_name=f"{project_info.name} (converted)"
        )
        return self.api.project.get_info_by_id(res_id)

    def upload_archive(self, project_info: Any, workdir: str) -> Any:
        local = os.path.join(workdir, project_info.name)
        os.makedirs(local, exist_ok=True)
        archive = shutil.make_archive(os.path.join(workdir, project_info.name), "gztar", local)
        remote = f"/exports/{project_info.id}/{os.path.basename(archive)}"
        return self.api.file.upload(self.sly.env.team_id(), archive, remote)


class DemoWork:
    """Stand-ins for what the SDK returns, so the example runs (and records its workflow) without it."""

    def get_project(self, project_id: int) -> Any:
        return SimpleNamespace(id=project_id, name=f"project-{project_id}", workspace_id=1)

    def convert_project(self, project_info: Any, workdir: str) -> Any:
        new_id = int(os.environ.get("RESULT_PROJECT_ID", project_info.id + 1))
        return SimpleNamespace(id=new_id, name=f"{project_info.name} (converted)", workspace_id=1)

    def upload_archive(self, project_info: Any, workdir: str) -> Any:
        name = f"{project_info.name}.tar.gz"
        return SimpleNamespace(
            id=int(os.environ.get("ARCHIVE_FILE_ID", 1000 + project_info.id)),
            name=name,
            team_id=int(os.environ.get("TEAM_ID", "0") or 0),
            path=f"/exports/{project_info.id}/{name}",
        )


if __name__ == "__main__":
    missing = [name for name in ("SERVER_ADDRESS", "API_TOKEN", "PROJECT_ID") if not os.environ.get(name)]
    if missing:
        sys.exit(f"set {', '.join(missing)} (and TASK_ID, as inside a Supervisely task)")
    main()
    # Interpreter exit drains the queue too; an explicit flush lets the app say how it went.
    if not wt.flush(timeout=30):
        print("some workflow events are still pending; they are kept in the spool and sent later")
