"""The child executions of a Distributed Map run, which moto 5.2 runs and never records.

On AWS every item (or batch) of a Distributed Map runs as a child execution of its own, named
``arn:aws:states:<region>:<account>:execution:<state machine>/<map run label>:<id>``. ``ListExecutions`` with a
``mapRunArn`` lists them (newest first, filtered by ``statusFilter``, paginated), and ``DescribeExecution`` gives each
one's input, output, error and cause: the only place where a failed item's own error is kept, since the parent's
history holds only the map run's ``States.ExceedToleratedFailureThreshold``. moto evaluates the items in worker
threads and keeps nothing but counters, and its ListExecutions with a ``mapRunArn`` answers 500.

Here each item's evaluation is recorded as it starts and when it ends, on its map run's record, and the two calls
answer from those records as AWS does. What is not here: a child's own ``GetExecutionHistory`` (moto shares one
history among all the children), redrive, and ``itemCount`` (moto does not tell a batch from an item).
"""

from __future__ import annotations

import base64
import datetime
import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from moto.core.responses import ActionResult
from moto.stepfunctions.exceptions import InvalidToken, ResourceNotFound, ValidationException
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEventException
from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import EvalTimeoutError
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor.distributed_item_processor_worker import (  # noqa: E501
    DistributedItemProcessorWorker,
)
from moto.stepfunctions.parser.asl.eval.program_state import ProgramError, ProgramStopped, ProgramTimedOut
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str
from moto.stepfunctions.responses import StepFunctionResponse

_original_eval_job = DistributedItemProcessorWorker._eval_job
_original_list_executions = StepFunctionResponse.list_executions
_original_describe_execution = StepFunctionResponse.describe_execution

STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE")
DEFAULT_PAGE, MAX_PAGE = 100, 1000
# An attribute of moto's MapRunRecord that holds its children, so they live and die with their map run.
_CHILDREN = "_vaultline_children"
# Reentrant: a listing holds it while it reads a record's children, which may create the list.
_records_lock = threading.RLock()


@dataclass
class ChildExecution:
    """One item's child execution, as ListExecutions and DescribeExecution show it."""

    arn: str
    state_machine_arn: str
    map_run_arn: str
    input: str
    start_date: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(tz=datetime.UTC))
    status: str = "RUNNING"
    stop_date: datetime.datetime | None = None
    output: str | None = None
    error: str | None = None
    cause: str | None = None

    @property
    def name(self) -> str:
        """The execution's name: the last part of its ARN."""
        return self.arn.rsplit(":", 1)[1]

    def finish(
        self, status: str, *, output: str | None = None, error: str | None = None, cause: str | None = None
    ) -> None:
        """End the child with its outcome."""
        self.status, self.output, self.error, self.cause = status, output, error, cause
        self.stop_date = datetime.datetime.now(tz=datetime.UTC)

    def list_item(self) -> dict[str, Any]:
        """The child as an ``ExecutionListItem``."""
        item: dict[str, Any] = {
            "executionArn": self.arn,
            "stateMachineArn": self.state_machine_arn,
            "name": self.name,
            "status": self.status,
            "startDate": self.start_date,
            "mapRunArn": self.map_run_arn,
        }
        if self.stop_date is not None:
            item["stopDate"] = self.stop_date
        return item

    def description(self) -> dict[str, Any]:
        """The child as a ``DescribeExecution`` answer."""
        answer = self.list_item() | {"input": self.input, "inputDetails": {"included": True}}
        if self.status == "SUCCEEDED":
            answer |= {"output": self.output, "outputDetails": {"included": True}}
        if self.error is not None:
            answer["error"] = self.error
        if self.cause is not None:
            answer["cause"] = self.cause
        return answer


def children_of(record: Any) -> list[ChildExecution]:
    """The child executions recorded on a moto ``MapRunRecord`` (the list itself; append under its lock)."""
    with _records_lock:
        children: list[ChildExecution] | None = getattr(record, _CHILDREN, None)
        if children is None:
            children = []
            setattr(record, _CHILDREN, children)
        return children


class _Recorder:
    """Sees the exception that moto's worker swallows without a word, from the item's input or its program."""

    def __init__(self, program: Any) -> None:
        self.program = program
        self.exception: BaseException | None = None

    def watch(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except BaseException as exception:
            self.exception = exception
            raise

    def eval(self, env: Any) -> None:
        """Stand in for the job's program."""
        self.watch(self.program.eval, env)


def _eval_job(self: DistributedItemProcessorWorker, env: Any, job: Any) -> None:
    record = self._map_run_record
    child = ChildExecution(
        arn=f"{record.map_state_machine_arn.replace(':stateMachine:', ':execution:')}:{uuid.uuid4()}",
        state_machine_arn=record.map_state_machine_arn,
        map_run_arn=record.map_run_arn,
        input=to_json_str(job.job_input),
    )
    children = children_of(record)
    with _records_lock:
        children.append(child)
    recorder = _Recorder(job.job_program)
    # A worker runs one job at a time on its own thread, so its input step can be watched on the instance.
    eval_input = self._eval_input
    self._eval_input = lambda **kwargs: recorder.watch(eval_input, **kwargs)  # type: ignore[method-assign]
    job.job_program = recorder
    try:
        _original_eval_job(self, env, job)
    finally:
        job.job_program = recorder.program
        del self._eval_input
        _classify(child, env, job, recorder.exception)


def _classify(child: ChildExecution, env: Any, job: Any, exception: BaseException | None) -> None:
    # moto's worker counts these same outcomes; the child takes the error and cause AWS would give it.
    if isinstance(exception, EvalTimeoutError):
        child.finish("TIMED_OUT", error="States.Timeout", cause=str(exception) or None)
    elif isinstance(exception, FailureEventException):
        details = exception.get_execution_failed_event_details() or {}
        child.finish("FAILED", error=details.get("error"), cause=details.get("cause"))
    elif exception is not None:
        child.finish("FAILED", error="States.Runtime", cause=f"{type(exception).__name__}({exception})")
    else:
        state = env.program_state()
        if isinstance(state, ProgramError):
            details = state.error or {}
            child.finish("FAILED", error=details.get("error"), cause=details.get("cause"))
        elif isinstance(state, ProgramTimedOut):
            child.finish("TIMED_OUT", error="States.Timeout")
        elif isinstance(state, ProgramStopped):
            child.finish("ABORTED", error=state.error, cause=state.cause)
        else:
            child.finish("SUCCEEDED", output=to_json_str(job.job_output))


def _map_run_record(backend: Any, map_run_arn: str) -> Any:
    for execution in backend._get_executions():
        record = execution.exec_worker.env.map_run_record_pool_manager.get(map_run_arn)
        if record is not None:
            return record
    raise ResourceNotFound(map_run_arn)


def _find_child(backend: Any, execution_arn: str) -> ChildExecution | None:
    # A child's ARN names its map run's state machine and label; only map runs of that prefix are searched.
    prefix = execution_arn.rsplit(":", 1)[0].replace(":execution:", ":stateMachine:")
    for execution in backend._get_executions():
        for record in execution.exec_worker.env.map_run_record_pool_manager.get_all():
            if record.map_state_machine_arn != prefix:
                continue
            with _records_lock:
                found = [child for child in children_of(record) if child.arn == execution_arn]
            if found:
                return found[0]
    return None


def _page(max_results: int | None, next_token: str | None, total: int) -> tuple[int, int]:
    if max_results is not None and not 0 <= max_results <= MAX_PAGE:
        raise ValidationException(
            f"1 validation error detected: Value '{max_results}' at 'maxResults' failed to satisfy constraint: "
            f"Member must have value less than or equal to {MAX_PAGE}"
        )
    start = 0
    if next_token:
        try:
            start = int(json.loads(base64.b64decode(next_token, validate=True))["offset"])
        except (ValueError, KeyError, TypeError) as error:
            raise InvalidToken(f"{next_token!r} is not a token this listing gave") from error
        if not 0 <= start <= total:
            raise InvalidToken(f"{next_token!r} is past the end of the listing")
    return start, max_results or DEFAULT_PAGE


def _token(offset: int) -> str:
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


def _list_executions(self: StepFunctionResponse) -> ActionResult:
    map_run_arn = self._get_param("mapRunArn")
    if not map_run_arn:
        return _original_list_executions(self)
    if self._get_param("stateMachineArn"):
        raise ValidationException("Specify either a stateMachineArn or a mapRunArn, not both")
    status_filter = self._get_param("statusFilter")
    if status_filter is not None and status_filter not in STATUSES:
        raise ValidationException(
            f"1 validation error detected: Value '{status_filter}' at 'statusFilter' failed to satisfy constraint: "
            f"Member must satisfy enum value set: [{', '.join(STATUSES)}]"
        )
    record = _map_run_record(self.stepfunction_backend, map_run_arn)
    with _records_lock:
        children = list(children_of(record))
    chosen = [child for child in children if status_filter in (None, child.status)]
    chosen.sort(key=lambda child: child.start_date, reverse=True)
    start, size = _page(self._get_int_param("maxResults"), self._get_param("nextToken"), len(chosen))
    page = chosen[start : start + size]
    answer: dict[str, Any] = {"executions": [child.list_item() for child in page]}
    if start + size < len(chosen):
        answer["nextToken"] = _token(start + size)
    return ActionResult(answer)


def _describe_execution(self: StepFunctionResponse) -> ActionResult:
    arn = self._get_param("executionArn") or ""
    child = _find_child(self.stepfunction_backend, arn) if ":execution:" in arn and "/" in arn else None
    if child is None:
        return _original_describe_execution(self)
    return ActionResult(child.description())


def install() -> None:
    """Record and serve the child executions (idempotent)."""
    DistributedItemProcessorWorker._eval_job = _eval_job  # type: ignore[method-assign]
    StepFunctionResponse.list_executions = _list_executions  # type: ignore[method-assign]
    StepFunctionResponse.describe_execution = _describe_execution  # type: ignore[method-assign]


def uninstall() -> None:
    """Give moto its own map runs back."""
    DistributedItemProcessorWorker._eval_job = _original_eval_job  # type: ignore[method-assign]
    StepFunctionResponse.list_executions = _original_list_executions  # type: ignore[method-assign]
    StepFunctionResponse.describe_execution = _original_describe_execution  # type: ignore[method-assign]
