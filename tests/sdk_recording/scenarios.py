"""The recorded scenarios, as data: what the fake instance holds and which calls each scenario makes.

``record.py`` runs every scenario with the real Supervisely SDK and writes this module's data to
``tests/data/sdk_scenarios.json`` next to the requests the SDK sent (``tests/data/sdk_requests.jsonl``), so
that a test can replay the same calls through ``workflow_trace.workflow`` without the SDK.

A call is ``{"method": ..., "args": {...}}``:

- ``add_*`` (and ``enable``): ``api.app.workflow.<method>(**args)``; with ``"positional": n`` the first ``n``
  entries of ``args`` are passed positionally, as the app does.
- ``version.create``: ``api.project.version.create(**args)``; ``result`` is what it returned in the recording.
- ``sdk.<attribute path>``: another SDK call an app makes on the way (``sdk.file.get_info_by_path`` is
  ``api.file.get_info_by_path``); only the recording runs these, a replay skips them.

An argument object is ``{"__type__": NAME, field: value, ...}`` with the SDK's field names: ``FileInfo``,
``ProjectInfo``, ``DatasetInfo`` (the SDK's NamedTuples; absent fields are ``None``), ``WorkflowSettings``
and ``WorkflowMeta`` (the SDK's dataclasses). ``"__positional__": n`` says the app passed the first ``n``
fields positionally; ``"__set_after__": {...}`` holds attributes the app assigned after construction.
"""

from __future__ import annotations

import os
from typing import Any

SDK_VERSION = "6.74.51"
CURRENT = "6.12.44"  # the instance version answered unless a scenario says otherwise
TEAM = 7
WORKSPACE = 3

#: The environment every scenario starts from (besides SERVER_ADDRESS and API_TOKEN). ``ENV=production``:
#: outside it the SDK's workflow object starts disabled (see ``sdk_development_mode``).
BASE_ENV = {"ENV": "production", "TEAM_ID": str(TEAM)}


# -- argument objects ------------------------------------------------------------------------------------


def file_info(id: int, path: str) -> dict[str, Any]:
    return {"__type__": "FileInfo", "team_id": TEAM, "id": id, "name": os.path.basename(path), "path": path}


def project_info(id: int, name: str, *, version: dict[str, Any] | None = None,
                 type: str = "images") -> dict[str, Any]:
    return {"__type__": "ProjectInfo", "id": id, "name": name, "workspace_id": WORKSPACE, "team_id": TEAM,
            "type": type, "updated_at": "2024-06-01T10:00:00.000Z", "version": version}


def dataset_info(id: int, project_id: int) -> dict[str, Any]:
    return {"__type__": "DatasetInfo", "id": id, "name": f"ds{id}", "project_id": project_id, "team_id": TEAM,
            "workspace_id": WORKSPACE}


def settings(**fields: Any) -> dict[str, Any]:
    return {"__type__": "WorkflowSettings", **fields}


def meta(relation: dict[str, Any] | None = None, node: dict[str, Any] | None = None, *,
         positional: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {"__type__": "WorkflowMeta"}
    if positional:
        out["__positional__"] = positional
    if relation is not None or positional >= 1:
        out["relation_settings"] = relation
    if node is not None or positional >= 2:
        out["node_settings"] = node
    return out


def call(method: str, *, positional: int = 0, result: Any = None, **args: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"method": method, "args": args}
    if positional:
        out["positional"] = positional
    if result is not None:
        out["result"] = result
    return out


# -- what the fake instance holds ------------------------------------------------------------------------


def _file(id: int, path: str, mime: str = "application/octet-stream", size: int = 1024) -> dict[str, Any]:
    """A team file as ``file-storage.list`` / ``file-storage.info`` answer it."""
    name = os.path.basename(path)
    return {"teamId": TEAM, "id": id, "userId": 1, "name": name, "hash": f"hash-{id}", "path": path,
            "storagePath": f"/teams_storage/{TEAM}/{id}", "meta": {"mime": mime, "ext": name.rpartition(".")[2],
                                                                    "size": size},
            "createdAt": "2024-06-01T10:00:00.000Z", "updatedAt": "2024-06-01T10:00:00.000Z",
            # Relative on purpose: the SDK's direct read of a JSON file fails without a request and it falls
            # back to file-storage.download, so no answer depends on the fake instance's port.
            "fullStorageUrl": f"/storage-files/{id}", "isDir": False}


def _version(id: int, project_id: int, number: int) -> dict[str, Any]:
    return {"id": id, "projectId": project_id, "createdBy": 1, "teamFileId": 900 + number, "version": number,
            "description": f"v{number}", "status": "ready", "createdAt": "2024-06-01T10:00:00.000Z",
            "updatedAt": "2024-06-01T10:00:00.000Z", "projectUpdatedAt": "2024-06-01T10:00:00.000Z",
            "teamId": TEAM, "name": f"v{number}", "previewProjectId": None}


def _project(id: int, name: str, type: str = "images", version: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": id, "name": name, "description": "", "size": "0", "readme": "", "workspaceId": WORKSPACE,
            "imagesCount": 10, "itemsCount": 10, "datasetsCount": 1, "createdAt": "2024-06-01T10:00:00.000Z",
            "updatedAt": "2024-06-01T10:00:00.000Z", "type": type, "referenceImageUrl": None, "customData": {},
            "backupArchive": {}, "teamId": TEAM, "settings": {}, "importSettings": {}, "version": version,
            "createdBy": 1}


YOLO_BEST = "/yolov8_train/object detection/Cars/99/weights/best.pt"
YOLO_CUSTOM = "/experiments/Cars/42_YOLOv8/checkpoints/yolov8s-custom-v8.pt"
MMDET_BEST = "/mmdetection-3/101_Fruits/checkpoints/best_coco_bbox_mAP_epoch_20.pth"
MMDET_REPORT = "/model-benchmark/101_Fruits/Model Evaluation Report.lnk"
BENCH_REPORT = "/model-benchmark/102_Fruits/visualizations/template.vue"
BENCH_REPORT_2 = "/model-benchmark/98_Fruits/visualizations/template.vue"
BENCH_COMPARISON = "/model-comparison/102/visualizations/template.vue"
ACTIVITY_CSV = "/activity/Cars_activity.csv"
YOLO_EXPORT = "/tmp/supervisely/export/export-to-YOLOv8/106/123_Cars.tar"
DTL_PRESET = "/data-nodes/108/workflow_preset_1.json"
DTL_ARCHIVES = ["/data-nodes/108/archives/Cars.tar", "/data-nodes/108/archives/Fruits.tar"]
TRAIN_APP_BEST = "/experiments/Cars/109_YOLO/checkpoints/best.pt"
TRAIN_APP_REPORT = "/model-benchmark/109_Cars/Model Evaluation Report.lnk"
SERVE_CKPT = "/experiments/Cars/109_YOLO/checkpoints/best.pt"

_VERSION_MAPS = {  # project id -> (latest version id, its number): the versions.json the SDK keeps per project
    123: (77, 3),
    150: (95, 2),
    160: (88, 1),
}

INSTANCE: dict[str, Any] = {
    "team_id": TEAM,
    "workspace_id": WORKSPACE,
    # task id -> the task's "meta" in tasks.info (an app task knows its app module under meta.app.id)
    "tasks": {str(t): {} for t in (5, 6, 42, 43, 44, 99, 100, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111)}
    | {"101": {"app": {"id": 412}}},
    "projects": {
        str(p["id"]): p for p in (
            _project(123, "Cars", version={"id": 77, "version": 3}),
            _project(124, "Cars (copy)"),
            _project(130, "Traffic videos", type="videos"),
            _project(150, "Fruits", version={"id": 95, "version": 2}),
            _project(160, "Fruits train", version={"id": 88, "version": 1}),
        )
    },
    "versions": {str(pid): [_version(vid, pid, num)] for pid, (vid, num) in _VERSION_MAPS.items()},
    "files": [
        _file(789, "/models/run0/last.pt"),
        _file(790, "/models/run0/weights.pt"),
        _file(791, "/models/run0/report.html", "text/html"),
        _file(950, YOLO_CUSTOM),
        _file(999, YOLO_BEST),
        _file(1101, MMDET_BEST),
        _file(1150, MMDET_REPORT),
        _file(1201, BENCH_REPORT),
        _file(1202, BENCH_REPORT_2),
        _file(1210, BENCH_COMPARISON),
        _file(1301, TRAIN_APP_BEST),
        _file(1350, TRAIN_APP_REPORT),
        _file(2001, ACTIVITY_CSV, "text/csv"),
        _file(2101, YOLO_EXPORT, "application/x-tar"),
        _file(2201, DTL_PRESET, "application/json"),
        _file(2210, DTL_ARCHIVES[0], "application/x-tar"),
        _file(2211, DTL_ARCHIVES[1], "application/x-tar"),
    ] + [
        _file(3000 + pid, f"/system/versions/{pid}/versions.json", "application/json", 200)
        for pid in _VERSION_MAPS
    ],
    # the content of each versions.json (what api.project.version.create reads before reserving a version)
    "file_contents": {
        str(3000 + pid): {"format": "v1.0.0", "latest": vid,
                          str(vid): {"path": f"/system/versions/{pid}/20240601100000.tar.zst",
                                     "updated_at": "2024-06-01T10:00:00.000Z", "previous": None,
                                     "number": num, "format": "v1.0.0"}}
        for pid, (vid, num) in _VERSION_MAPS.items()
    },
    "labeling_jobs": {"11": {"id": 11, "name": "Annotate cars", "teamId": TEAM, "workspaceId": WORKSPACE,
                             "projectId": 123, "datasetId": 456, "status": "completed",
                             "meta": {"classes": [], "projectTags": [], "range": {"start": 0, "end": 9},
                                      "imageTags": []}}},
    # projects.versions.reserve answers "nothing changed since the latest version": version.create returns
    # that version's id (creating a new version would download and archive the whole project)
    "reserve": "use_existing_version",
}


# -- the scenarios -------------------------------------------------------------------------------------

_T = {"task_id": 5}  # the explicit task of the issue-item scenarios

_META_33 = meta(
    settings(title="Train", description="epoch 10", icon="folder", icon_color="#333333", icon_bg_color="#FFFFFF",
             url="/files/789", url_title="Open file"),
    settings(title="Node only"),
)

_CHECKPOINTS_999 = settings(title="Checkpoints", icon="folder", icon_color="#FFA500", icon_bg_color="#FFE8BE",
                            url="/files/999/true", url_title="Open Folder")


def _scenario(name: str, description: str, calls: list[dict[str, Any]], *, env: dict[str, str] | None = None,
              instance_version: str | None = CURRENT, source: dict[str, str] | None = None,
              base_env: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "description": description,
                           "env": {**(BASE_ENV if base_env else {}), **(env or {})},
                           "instance_version": instance_version}
    if source:
        out["source"] = source
    out["calls"] = calls
    return out


def _app(repo: str, path: str, commit: str) -> dict[str, str]:
    return {"repo": repo, "path": path, "commit": commit}


SCENARIOS: list[dict[str, Any]] = [
    # --- the shared golden file's two scenarios, reproduced ------------------------------------------------
    _scenario("explicit_task_id", "Every add_* method with an explicit task_id=5 (the first recording).", [
        call("add_input_project", positional=1, project=123, **_T),
        call("add_input_project", positional=1, project=123, version_id=77, **_T),
        call("add_input_project", positional=1, project=123, version_num=3, **_T),
        call("add_input_project", positional=1, project=None, version_id=77, **_T),
        call("add_input_project", positional=1, project=project_info(124, "Cars (copy)"), **_T),
        call("add_input_dataset", positional=1, dataset=456, **_T),
        call("add_input_dataset", positional=1, dataset=dataset_info(457, 123), **_T),
        call("add_input_file", positional=1, file=789, **_T),
        call("add_input_file", positional=1, file=789, model_weight=True, **_T),
        call("add_input_file", positional=1, file=file_info(790, "/models/run0/weights.pt"), **_T),
        call("add_input_folder", positional=1, path="experiments/run1", **_T),
        call("add_input_task", positional=1, input_task_id=42, **_T),
        call("add_input_job", positional=1, id=11, **_T),
        call("add_output_project", positional=1, project=125, **_T),
        call("add_output_project", positional=1, project=125, version_id=78, **_T),
        call("add_output_dataset", positional=1, dataset=458, **_T),
        call("add_output_file", positional=1, file=791, **_T),
        call("add_output_file", positional=1, file=790, model_weight=True, **_T),
        call("add_output_folder", positional=1, path="/experiments/run1/", **_T),
        call("add_output_app", **_T),
        call("add_output_task", positional=1, output_task_id=43, **_T),
        call("add_output_job", positional=1, id=12, **_T),
        call("add_output_task", positional=1, output_task_id=44, task_id=6),
        call("add_input_dataset", positional=1, dataset=None, **_T),
    ]),
    _scenario("meta", "Card customisation: an SDK WorkflowMeta, dicts, an empty dict, an empty WorkflowMeta.", [
        call("add_output_file", positional=1, file=791, meta=_META_33, **_T),
        call("add_input_dataset", positional=1, dataset=456, meta={"customNodeSettings": {"title": "<h4>raw</h4>"}},
             **_T),
        call("add_input_dataset", positional=1, dataset=456, meta={}, **_T),
        call("add_input_dataset", positional=1, dataset=456, meta=meta(), **_T),
        call("add_output_app", meta={"customNodeSettings": {
            "title": "<h4>Serve</h4>", "mainLink": {"url": "/apps/sessions/5", "title": "open"}}}, **_T),
    ]),
    # --- issue #12, items 1-6 -------------------------------------------------------------------------------
    _scenario("sdk_workflow_meta", "Item 1: the SDK's own WorkflowMeta/WorkflowSettings in every shape apps use.", [
        call("add_output_file", positional=1, file=791, meta=meta(
            settings(title="Checkpoints", description="best of 10 epochs", icon="folder", icon_color="#FFA500",
                     icon_bg_color="#FFE8BE", url="/files/791/true", url_title="Open Folder"),
            settings(title="Train YOLOv8", icon="rocket", icon_color="#fff", icon_bg_color="#000",
                     url="/apps/412/sessions/5", url_title="Show Results"),
        ), **_T),
        # sly.WorkflowMeta(relation_settings, node_settings), positionally (train-mmdetection-v3)
        call("add_input_file", positional=1, file=789, model_weight=True, meta=meta(
            settings(title="Pretrained", icon="folder", icon_color="#FFA500", icon_bg_color="#FFE8BE"),
            settings(title="Train MMDetection"), positional=2), **_T),
        # only a relation card, only a node card
        call("add_output_file", positional=1, file=791, meta=meta(settings(
            title="Model Benchmark", icon="assignment", icon_color="#dcb0ff", icon_bg_color="#faebff",
            url="/model-benchmark?id=791", url_title="Open Benchmark Report")), **_T),
        call("add_input_file", positional=1, file=789, model_weight=True,
             meta=meta(node=settings(title="Serve YOLOv8")), **_T),
        # a node card with a link but no title (train-mmdetection-v3 with a pretrained model)
        call("add_output_app", meta=meta(node=settings(title=None, url="/apps/412/sessions/5",
                                                       url_title="Show Results")), **_T),
        # a description only
        call("add_input_dataset", positional=1, dataset=456,
             meta=meta(settings(description="only a description")), **_T),
        # an empty card: the SDK sends {"customRelationSettings": {}}
        call("add_input_dataset", positional=1, dataset=456, meta=meta(settings()), **_T),
        # incomplete icon / link: the SDK's WorkflowSettings clears them at construction
        call("add_input_dataset", positional=1, dataset=456,
             meta=meta(node=settings(title="partial icon", icon="folder")), **_T),
        call("add_input_dataset", positional=1, dataset=456,
             meta=meta(node=settings(title="url only", url="/files/1")), **_T),
        # values the SDK does not check
        call("add_input_dataset", positional=1, dataset=456, meta=meta(node=settings(
            title="prefixed icon", icon="zmdi-folder", icon_color="#FFA500", icon_bg_color="#FFE8BE")), **_T),
        call("add_input_dataset", positional=1, dataset=456, meta=meta(node=settings(
            title="named colours", icon="folder", icon_color="orange", icon_bg_color="white")), **_T),
        call("add_input_dataset", positional=1, dataset=456, meta=meta(node=settings(title="<b>bold</b> & co")),
             **_T),
        # a project output with a relation card (the SDK's docs say it is ignored; the SDK sends it)
        call("add_output_project", positional=1, project=125,
             meta=meta(settings(title="Out"), settings(title="Node")), **_T),
        # dicts: key order kept as given; an unknown key fails the SDK's schema (the edge goes without meta)
        call("add_input_dataset", positional=1, dataset=456, meta={
            "customNodeSettings": {"title": "<h4>node first</h4>"},
            "customRelationSettings": {"mainLink": {"title": "Open", "url": "/files/1"}, "title": "<h4>r</h4>"}},
            **_T),
        call("add_input_dataset", positional=1, dataset=456,
             meta={"customRelationSettings": {"title": "<h4>x</h4>", "bogus": 1}}, **_T),
        # attributes assigned after construction (the SDK's predict app does this)
        call("add_output_project", positional=1, project=125, meta=meta(
            {**settings(title="Predictions", icon="image", icon_color="#13A2A8", icon_bg_color="#DDF7F8",
                        url="/projects/125/datasets", url_title="Open Project"),
             "__set_after__": {"title": "Predictions (2)"}}), **_T),
    ]),
    _scenario("sdk_meta_relative_link",
              "Item 2: yolov8 train's node link apps/sessions/99 (no leading slash) when the task has no app id.", [
                  call("add_output_file", positional=1, file=file_info(999, YOLO_BEST), model_weight=True,
                       meta=meta(_CHECKPOINTS_999, settings(title="Train YOLOv8", url="apps/sessions/99",
                                                           url_title="Show Results"))),
                  call("add_output_file", positional=1, file=file_info(999, YOLO_BEST), model_weight=True, meta={
                      "customNodeSettings": {"title": "<h4>Train YOLOv8</h4>",
                                             "mainLink": {"url": "apps/sessions/99", "title": "Show Results"}},
                      "customRelationSettings": {
                          "icon": {"icon": "zmdi-folder", "color": "#FFA500", "backgroundColor": "#FFE8BE"},
                          "title": "<h4>Checkpoints</h4>",
                          "mainLink": {"url": "/files/999/true", "title": "Open Folder"}}}),
                  call("add_output_app", meta=meta(node=settings(url="apps/sessions/99", url_title="Open"))),
              ], env={"SUPERVISELY_TASK_ID": "99"}),
    _scenario("sdk_meta_unsafe_url", "Item 2: javascript:, absolute and protocol-relative links (the SDK sends "
              "them).", [
        call("add_output_file", positional=1, file=791, meta=meta(
            settings(title="Report", url="javascript:alert(1)", url_title="Open"), settings(title="Node ok")), **_T),
        call("add_output_file", positional=1, file=791, meta={
            "customRelationSettings": {"title": "<h4>Report</h4>",
                                       "mainLink": {"url": "javascript:alert(1)", "title": "Open"}},
            "customNodeSettings": {"title": "<h4>Node ok</h4>"}}, **_T),
        call("add_output_file", positional=1, file=791,
             meta=meta(settings(title="External", url="https://example.com/report", url_title="Open")), **_T),
        call("add_output_file", positional=1, file=791,
             meta=meta(settings(title="Protocol-relative", url="//example.com/report", url_title="Open")), **_T),
    ]),
    _scenario("version_alone", "Item 3: a project version named without its project.", [
        call("add_input_project", positional=1, project=None, version_id=77, **_T),
        call("add_input_project", version_id=77, **_T),
        call("add_output_project", positional=1, project=None, version_id=78, **_T),
        call("add_input_project", positional=1, project=project_info(123, "Cars"), version_id=77, **_T),
        # refused by the SDK (ValueError, logged): a version number needs its project; not both version kinds
        call("add_input_project", positional=1, project=None, version_num=3, **_T),
        call("add_input_project", positional=1, project=123, version_id=77, version_num=3, **_T),
        # add_output_project's project has no default: the TypeError reaches the app
        call("add_output_project", version_id=78, **_T),
    ]),
    _scenario("old_instance_6_11_10",
              "Items 4-5: instance 6.11.10 (workflows yes, labeling jobs no): jobs are skipped, projects sent.", [
                  call("add_input_job", positional=1, id=11, **_T),
                  call("add_input_project", positional=1, project=123, **_T),
                  call("add_output_job", positional=1, id=12, **_T),
                  call("add_input_job", positional=1, id=13, **_T),
                  call("add_output_project", positional=1, project=125, **_T),
              ], instance_version="6.11.10"),
    _scenario("old_instance_6_9_30", "Item 5: instance 6.9.30 (no workflows): nothing is sent; what is logged.", [
        call("add_input_project", positional=1, project=123, **_T),
        call("add_input_job", positional=1, id=11, **_T),
        call("add_output_file", positional=1, file=791, **_T),
        call("add_output_job", positional=1, id=12, **_T),
        call("add_output_project", positional=1, project=125, **_T),
    ], instance_version="6.9.30"),
    _scenario("instance_version_unknown", "Item 5: instance.version answers 404: nothing is sent; what is logged.", [
        call("add_input_project", positional=1, project=123, **_T),
        call("add_output_project", positional=1, project=125, **_T),
    ], instance_version=None),
    _scenario("task_id_from_env", "Item 6: SUPERVISELY_TASK_ID=99 and no task_id.", [
        call("add_input_project", positional=1, project=123),
        call("add_output_app"),
        call("add_output_file", positional=1, file=791, model_weight=True),
        call("add_input_project", positional=1, project=124, task_id=5),
    ], env={"SUPERVISELY_TASK_ID": "99"}),
    _scenario("task_id_env_TASK_ID_only", "Item 6: TASK_ID=99 alone (the SDK's Api does not read it).", [
        call("add_input_project", positional=1, project=123),
    ], env={"TASK_ID": "99"}),
    _scenario("task_id_env_both", "Item 6: SUPERVISELY_TASK_ID=99 and TASK_ID=100.", [
        call("add_input_project", positional=1, project=123),
    ], env={"SUPERVISELY_TASK_ID": "99", "TASK_ID": "100"}),
    _scenario("sdk_development_mode", "ENV unset (development): the SDK's workflow starts disabled until enable().", [
        call("add_input_project", positional=1, project=123, **_T),
        call("enable"),
        call("add_input_project", positional=1, project=123, **_T),
    ], env={"TEAM_ID": str(TEAM)}, base_env=False),
    # --- reduced ecosystem apps: the same workflow calls with the same argument shapes ----------------------
    _scenario("app_yolov8_train", "yolov8 train (function version): version, input project + custom checkpoint, "
              "output best checkpoint with a Checkpoints card and a relative session link.", [
                  call("version.create", positional=3, result=77, project_info=project_info(
                      123, "Cars", version={"id": 77, "version": 3}), version_title="Train YOLOv8",
                      version_description="This backup was created automatically by Supervisely before the "
                                          "Train YOLOv8 task with ID: 99"),
                  call("add_input_project", positional=1, project=123, version_id=77),
                  call("add_input_file", positional=1, file=file_info(950, YOLO_CUSTOM), model_weight=True),
                  call("sdk.file.get_info_by_path", positional=2, team_id=TEAM, remote_path=YOLO_BEST),
                  call("sdk.task.get_info_by_id", positional=1, id="99"),
                  call("add_output_file", positional=1, file=file_info(999, YOLO_BEST), model_weight=True,
                       meta=meta(relation=_CHECKPOINTS_999, node=settings(
                           title="Train YOLOv8", url="apps/sessions/99", url_title="Show Results"))),
              ], env={"SUPERVISELY_TASK_ID": "99"},
              source=_app("supervisely-ecosystem/yolov8", "train/src/workflow.py",
                          "07b22e8b6032b260d83151302d3e52c318651b0a")),
    _scenario("app_yolov8_train_dict_meta", "yolov8 train (Workflow class version): the same with a dict meta.", [
        call("sdk.instance_version"),
        call("version.create", positional=3, result=77, project_info=project_info(
            123, "Cars", version={"id": 77, "version": 3}), version_title="Train YOLO (v8, v9)",
            version_description="This backup was created automatically by Supervisely before the Train YOLO "
                                "task with ID: 99"),
        call("add_input_project", positional=1, project=123, version_id=77),
        call("sdk.file.get_info_by_path", positional=2, team_id=TEAM, remote_path=YOLO_BEST),
        call("sdk.task.get_info_by_id", positional=1, id="99"),
        call("add_output_file", positional=1, file=file_info(999, YOLO_BEST), model_weight=True, meta={
            "customNodeSettings": {"title": "<h4>Train YOLOv8</h4>",
                                   "mainLink": {"url": "apps/sessions/99", "title": "Show Results"}},
            "customRelationSettings": {
                "icon": {"icon": "zmdi-folder", "color": "#FFA500", "backgroundColor": "#FFE8BE"},
                "title": "<h4>Checkpoints</h4>", "mainLink": {"url": "/files/999/true", "title": "Open Folder"}}}),
    ], env={"SUPERVISELY_TASK_ID": "99"},
        source=_app("supervisely-ecosystem/yolov8", "train/src/workflow.py",
                    "e48cb1bed165b34cd7d77dfb3424552279958a22")),
    _scenario("app_yolov8_serve", "yolov8 serve: the checkpoint path (a str) as a model-weight input with a node "
              "title.", [
        call("sdk.is_version_supported", positional=1, version="6.9.31"),
        call("sdk.file.exists", positional=2, team_id=TEAM, remote_path=YOLO_BEST),
        call("add_input_file", positional=1, file=YOLO_BEST, model_weight=True,
             meta={"customNodeSettings": {"title": "<h4>Serve YOLOv8</h4>"}}),
    ], env={"SUPERVISELY_TASK_ID": "100"},
        source=_app("supervisely-ecosystem/yolov8", "serve/src/workflow.py",
                    "43b67a65e76621bc91bf73e5f88e4986f5157ce7")),
    _scenario("app_train_mmdetection_v3", "train-mmdetection-v3 (pretrained model): version, input project; output "
              "best checkpoint (WorkflowMeta positional, node card without title) and the benchmark report.", [
                  call("sdk.project.get_info_by_id", positional=1, id=160),
                  call("version.create", positional=3, result=88, project_info=project_info(
                      160, "Fruits train", version={"id": 88, "version": 1}), version_title="Train MMDetection 3.0",
                      version_description="This backup was created automatically by Supervisely before the Train "
                                          "MMDetection 3.0 task with ID: 101"),
                  call("add_input_project", positional=1, project=160, version_id=88),
                  call("sdk.task.get_info_by_id", positional=1, id="101"),
                  call("add_output_file", positional=1, file=file_info(1101, MMDET_BEST), model_weight=True,
                       meta=meta(settings(title="Checkpoints", icon="folder", icon_color="#FFA500",
                                          icon_bg_color="#FFE8BE", url="/files/1101/true", url_title="Open Folder"),
                                 settings(title=None, url="/apps/412/sessions/101", url_title="Show Results"),
                                 positional=2)),
                  call("add_output_file", positional=1, file=file_info(1150, MMDET_REPORT), meta=meta(
                      settings(title="Model Evaluation", icon="assignment", icon_color="#dcb0ff",
                               icon_bg_color="#faebff", url="/model-benchmark?id=1150",
                               url_title="Open Benchmark Report"),
                      settings(title=None, url="/apps/412/sessions/101", url_title="Show Results"))),
              ], env={"SUPERVISELY_TASK_ID": "101"},
              source=_app("supervisely-ecosystem/train-mmdetection-v3", "src/workflow.py",
                          "d8e0b7e39c951431e8d3172e04eb4b94656562e5")),
    _scenario("app_model_benchmark", "model-benchmark evaluation: version of the GT project, the serving session, "
              "the report as an output file with a relation link.", [
                  call("version.create", positional=3, result=95, project_info=project_info(
                      150, "Fruits", version={"id": 95, "version": 2}), version_title="Evaluator for Model Benchmark",
                      version_description="This backup was created automatically by Supervisely before the "
                                          "Evaluator for Model Benchmark task with ID: 102"),
                  call("add_input_project", positional=1, project=150, version_id=95),
                  call("add_input_task", positional=1, input_task_id=43),
                  call("add_output_file", positional=1, file=file_info(1201, BENCH_REPORT), meta=meta(settings(
                      title="Model Benchmark", icon="assignment", icon_color="#dcb0ff", icon_bg_color="#faebff",
                      url="/model-benchmark?id=1201", url_title="Open Benchmark Report"))),
              ], env={"SUPERVISELY_TASK_ID": "102"},
              source=_app("supervisely-ecosystem/model-benchmark", "src/workflow.py",
                          "f22aa55cef63c091b2b373a1821a844ca60bfc1f")),
    _scenario("app_model_benchmark_comparison", "model-benchmark comparison: evaluation folders and reports in, "
              "the comparison report out.", [
                  call("add_input_folder", positional=1, path="/model-benchmark/102_Fruits/"),
                  call("add_input_file", positional=1, file=file_info(1201, BENCH_REPORT)),
                  call("add_input_file", positional=1, file=file_info(1202, BENCH_REPORT_2)),
                  call("add_output_file", positional=1, file=file_info(1210, BENCH_COMPARISON), meta=meta(settings(
                      title="Model Comparison", icon="assignment", icon_color="#ffc084", icon_bg_color="#fff2e6",
                      url="/model-benchmark?id=1210", url_title="Open Comparison Report"))),
              ], env={"SUPERVISELY_TASK_ID": "102"},
              source=_app("supervisely-ecosystem/model-benchmark", "src/workflow.py",
                          "05e63b61124ee27225814066e856defc75f25599")),
    _scenario("app_sys_clone_project", "sys-clone-project: source project in, the clone out with a node title.", [
        call("sdk.instance_version"),
        call("add_input_project", positional=1, project=123),
        call("add_output_project", positional=1, project=124,
             meta={"customNodeSettings": {"title": "<h4>Clone Project</h4>"}}),
    ], env={"SUPERVISELY_TASK_ID": "103"},
        source=_app("supervisely-ecosystem/sys-clone-project", "src/workflow.py",
                    "0c0378e53ddff678af3a80abb416da20c4cb0837")),
    _scenario("app_export_activity_as_csv", "export-activity-as-csv: a labeling job then its project in; the CSV out "
              "with a link-only relation card.", [
                  call("sdk.labeling_job.get_info_by_id", positional=1, id=11),
                  call("add_input_job", positional=1, id=11),
                  call("add_input_project", positional=1, project=123),
                  call("sdk.file.get_info_by_id", positional=1, id=2001),
                  call("add_output_file", positional=1, file=file_info(2001, ACTIVITY_CSV), meta=meta(settings(
                      url="/files/2001/true/?teamId=7", url_title="Download"))),
              ], env={"SUPERVISELY_TASK_ID": "104"},
              source=_app("supervisely-ecosystem/export-activity-as-csv", "src/workflow.py",
                          "b79b2b66327b82f30d8356a3145c68a33c52d346")),
    _scenario("app_export_activity_as_csv_6_11_10", "Item 4: export-activity-as-csv's input on instance 6.11.10.", [
        call("sdk.labeling_job.get_info_by_id", positional=1, id=11),
        call("add_input_job", positional=1, id=11),
        call("add_input_project", positional=1, project=123),
    ], env={"SUPERVISELY_TASK_ID": "104"}, instance_version="6.11.10",
        source=_app("supervisely-ecosystem/export-activity-as-csv", "src/workflow.py",
                    "b79b2b66327b82f30d8356a3145c68a33c52d346")),
    _scenario("app_import_images", "import-images: the created project out.", [
        call("sdk.instance_version"),
        call("add_output_project", positional=1, project=124),
    ], env={"SUPERVISELY_TASK_ID": "105"},
        source=_app("supervisely-ecosystem/import-images", "src/workflow.py",
                    "fbf083f470746b95035ebcb4ee94dd40bddb64c7")),
    _scenario("app_export_to_yolov8", "export-to-yolov8: the project in; the archive out with an archive card.", [
        call("add_input_project", positional=1, project=123),
        call("sdk.file.get_info_by_id", positional=1, id=2101),
        call("add_output_file", positional=1, file=file_info(2101, YOLO_EXPORT), meta=meta(settings(
            title="123_Cars.tar", icon="archive", icon_color="#33c94c", icon_bg_color="#d9f7e4",
            url="/files/2101/true/?teamId=7", url_title="Download"))),
    ], env={"SUPERVISELY_TASK_ID": "106"},
        source=_app("supervisely-ecosystem/export-to-yolov8", "src/workflow.py",
                    "3e010b5416caba12ee98e9fff42299b540e0344c")),
    _scenario("app_apply_nn_to_videos_project", "apply-nn-to-videos-project: the serving task and the project in, "
              "the result project out.", [
                  call("add_input_task", positional=1, input_task_id=43),
                  call("add_input_project", positional=1, project=130),
                  call("add_output_project", positional=1, project=131),
              ], env={"SUPERVISELY_TASK_ID": "107"},
              source=_app("supervisely-ecosystem/apply-nn-to-videos-project", "src/workflow.py",
                          "fd8d1bb2405d418b4eec45bf4ec3bbd684deffdc")),
    _scenario("app_dtl_v2", "dtl-v2: one input per source project; output project, one job per created job, the "
              "archives folder (icon, no link) and the preset file.", [
                  call("sdk.project.get_list", positional=1, workspace_id=WORKSPACE, filters=[
                      {"field": "name", "operator": "in", "value": ["Cars", "Fruits"]}]),
                  call("add_input_project", positional=1, project=123),
                  call("add_input_project", positional=1, project=150),
                  call("add_output_project", positional=1, project=190),
                  call("add_output_job", positional=1, id=21),
                  call("add_output_job", positional=1, id=22),
                  call("add_output_folder", positional=1, path=os.path.dirname(DTL_ARCHIVES[0]), meta=meta(settings(
                      title="Project Archives (2)", icon="archive", icon_color="#ff4c9e", icon_bg_color="#ffe3ed"))),
                  call("add_output_file", positional=1, file=file_info(2201, DTL_PRESET), meta=meta(settings(
                      title="Workflow Preset #1", icon="view-dashboard", icon_color="#ffffff", icon_bg_color="#cdcce3",
                      url="/files/2201/true/?teamId=7", url_title="Show Preset"))),
              ], env={"SUPERVISELY_TASK_ID": "108"},
              source=_app("supervisely-ecosystem/dtl-v2", "src/workflow.py",
                          "83c6f706e57db565763453602417bc7c627339ee")),
    # --- what the SDK's own app frameworks record (reduced from the installed SDK's code) -------------------
    _scenario("sdk_nn_training_train_app", "sly.nn.training.TrainApp: version + input project (+ custom checkpoint); "
              "output the checkpoint FOLDER and the benchmark report.", [
                  call("version.create", positional=3, result=77, project_info=project_info(
                      123, "Cars", version={"id": 77, "version": 3}), version_title="Train YOLO",
                      version_description="This backup was created automatically by Supervisely before the Train "
                                          "YOLO task with ID: 109"),
                  call("add_input_project", positional=1, project=123, version_id=77),
                  call("add_input_file", positional=1, file=file_info(950, YOLO_CUSTOM), model_weight=True),
                  call("sdk.task.get_info_by_id", positional=1, id="109"),
                  call("add_output_folder", positional=1, path=os.path.dirname(TRAIN_APP_BEST), meta=meta(
                      settings(title="Checkpoints", icon="folder", icon_color="#FFA500", icon_bg_color="#FFE8BE",
                               url="/files/1301/true", url_title="Open Folder"),
                      settings(title="Train YOLO", url="apps/sessions/109", url_title="Show Results"))),
                  call("add_output_file", positional=1, file=file_info(1350, TRAIN_APP_REPORT), meta=meta(
                      settings(title="Model Benchmark", icon="assignment", icon_color="#674EA7",
                               icon_bg_color="#CCCCFF", url="/model-benchmark?id=1351", url_title="Open Report"),
                      settings(title="Train YOLO", url="apps/sessions/109", url_title="Show Results"))),
              ], env={"SUPERVISELY_TASK_ID": "109"},
              source={"repo": "supervisely/supervisely", "path": "supervisely/nn/training/train_app.py",
                      "version": SDK_VERSION}),
    _scenario("sdk_nn_inference_serving", "sly.nn.inference.Inference (custom model): the checkpoint FOLDER as input "
              "with the app name as node title.", [
                  call("sdk.file.exists", positional=2, team_id=TEAM, remote_path=SERVE_CKPT),
                  call("add_input_folder", positional=1, path=os.path.dirname(SERVE_CKPT),
                       meta=meta(node=settings(title="Serve YOLO"))),
              ], env={"SUPERVISELY_TASK_ID": "110"},
              source={"repo": "supervisely/supervisely", "path": "supervisely/nn/inference/inference.py",
                      "version": SDK_VERSION}),
    _scenario("sdk_nn_predict_app", "sly.nn.inference predict app: input project at its current version and the "
              "serving task; output project with a card whose url is assigned after construction.", [
                  call("sdk.project.get_info_by_id", positional=1, id=123),
                  call("add_input_project", positional=1, project=123, version_id=77),
                  call("add_input_task", positional=1, input_task_id=43),
                  call("add_output_project", positional=1, project=project_info(124, "Cars (copy)"), meta=meta(
                      {**settings(title="Predictions", icon="image", icon_color="#13A2A8", icon_bg_color="#DDF7F8",
                                  url_title="Open Project"),
                       "__set_after__": {"url": "/projects/124/datasets"}},
                      settings(title="Predict App", url="/apps/sessions/111", url_title="Show Results"))),
              ], env={"SUPERVISELY_TASK_ID": "111"},
              source={"repo": "supervisely/supervisely", "path": "supervisely/nn/inference/predict_app/gui/gui.py",
                      "version": SDK_VERSION}),
]
