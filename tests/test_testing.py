"""The shipped testing helpers: record() and the workflow_events pytest fixture."""

from __future__ import annotations

import workflow_trace as wt
from workflow_trace import Dataset, Project
from workflow_trace.testing import Recording, record


@wt.consumes_project
@wt.produces_dataset
def convert(project: int) -> int:
    return 7


def test_record_captures_events_and_restores_the_backend() -> None:
    """record() captures what is emitted inside it and puts the configured backend back."""
    wt.configure("null")
    before = wt.get_backend()
    with record() as rec:
        convert(1)
    assert ([Project(id=1)], [Dataset(id=7)]) == (rec.inputs, rec.outputs)
    assert [e.step.name for e in rec.steps] == ["convert"]
    assert wt.get_backend() is before


def test_workflow_events_fixture(workflow_events: Recording) -> None:
    """The pytest plugin's fixture records the test's events."""
    convert(3)
    assert [Project(id=3)] == workflow_events.inputs
    assert len(workflow_events.of_step("convert")) == 4
