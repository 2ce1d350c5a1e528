"""Step Functions' hard limits, enforced in moto's interpreter as AWS enforces them.

- **256 KiB per state input and output** (262,144 bytes of UTF-8 JSON). Every state's input is checked as the state
  is entered (that covers the execution input, the output of a Catch, each Map iteration's item and batch, and each
  Distributed Map child's input) and its output as it leaves (moto already checks a state's output and a task's
  raw result; its quota check is replaced by this one, which allows exactly 256 KiB). Over the limit the state fails
  with ``States.DataLimitExceeded``.
- **25,000 events per execution history.** Event 24,999 is the last one the machine produces; event 25,000 is
  ``ExecutionFailed`` with ``States.Runtime`` and AWS's cause "The execution reached the maximum number of history
  events (25000)." Inline Map and Parallel branches count in their execution's history, as on AWS. moto records a
  Distributed Map's child executions in one shared history; AWS gives each child its own, so that shared history is
  not counted (each child is far below the limit in our workflows; a child's own loop is not caught).
- **Terminal errors stay terminal.** AWS: "States.ALL can't catch States.DataLimitExceeded and States.Runtime";
  moto's States.ALL catches everything, so a payload over the limit would run into our Abort branches instead of
  failing the execution. Named explicitly in ErrorEquals, they are still caught, as on AWS. A Map iteration or a
  Parallel branch that fails with a ``States.*`` error passes that error on to its state, as on AWS (moto 5.2.5
  re-raises it as a custom error name, refuses the ``States.`` prefix and fails the execution with a ValueError).

:func:`install` is called when the embedded AWS opens (``server.py``).
"""

from __future__ import annotations

import threading
from typing import Any, Final, cast

from moto.stepfunctions.parser import quotas
from moto.stepfunctions.parser.api import ExecutionFailedEventDetails, HistoryEventType
from moto.stepfunctions.parser.asl.component.common.error_name import error_equals_decl
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.error_name import ErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
from moto.stepfunctions.parser.asl.component.state import state as state_module
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import iteration_worker
from moto.stepfunctions.parser.asl.component.state.exec.state_parallel import branches_decl
from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_lambda
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service
from moto.stepfunctions.parser.asl.eval import environment as environment_module
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

MAX_PAYLOAD_BYTES: Final = 256 * 1024
MAX_HISTORY_EVENTS: Final = 25_000
HISTORY_LIMIT_CAUSE: Final = f"The execution reached the maximum number of history events ({MAX_HISTORY_EVENTS})."
_TERMINAL_EVENTS: Final = {
    HistoryEventType.ExecutionFailed,
    HistoryEventType.ExecutionSucceeded,
    HistoryEventType.ExecutionAborted,
    HistoryEventType.ExecutionTimedOut,
}
_UNCATCHABLE_BY_ALL: Final = {
    StatesErrorNameType.StatesStatesDataLimitExceeded.to_name(),
    StatesErrorNameType.StatesRuntime.to_name(),
}

_lock = threading.Lock()
_originals: dict[str, Any] = {}


def payload_bytes(value: Any) -> int:
    """The size Step Functions counts for a state's input or output: the UTF-8 bytes of the value as compact JSON."""
    return len(to_json_str(value, separators=(",", ":")).encode("utf-8"))


def within_payload_limit(value: Any) -> bool:
    """True if ``value`` (a state's input or output) may pass between states."""
    return payload_bytes(value) <= MAX_PAYLOAD_BYTES


def _within_task_result_limit(value: Any) -> bool:
    # Tasks hand moto their raw result: a string there is the serialized payload itself.
    raw = value if isinstance(value, str) else to_json_str(value)
    return len(raw.encode("utf-8")) <= MAX_PAYLOAD_BYTES


def _failure(env: Any, error: StatesErrorNameType, cause: str) -> FailureEventException:
    return FailureEventException(
        failure_event=FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=error),
            event_type=HistoryEventType.ExecutionFailed,
            event_details=cast(
                EventDetails,
                {"executionFailedEventDetails": ExecutionFailedEventDetails(error=error.to_name(), cause=cause)},
            ),
        )
    )


# --- history ------------------------------------------------------------------------------------------------


def _limited(manager: EventManager) -> bool:
    return bool(getattr(manager, "_vaultline_limited", False))


def _exceeded(manager: EventManager) -> bool:
    return bool(getattr(manager, "_vaultline_exceeded", False))


def _add_event(self: EventManager, context: Any, event_type: HistoryEventType, *args: Any, **kwargs: Any) -> int:
    if _limited(self) and event_type not in _TERMINAL_EVENTS:
        with _lock:
            count = getattr(self, "_vaultline_count", 0)
            if count >= MAX_HISTORY_EVENTS - 1 or _exceeded(self):
                # The event that would have been number 25,000: the execution fails instead (see _eval_body).
                self._vaultline_exceeded = True  # type: ignore[attr-defined]
                return count
            self._vaultline_count = count + 1  # type: ignore[attr-defined]
    event_id: int = _originals["add_event"](self, context, event_type, *args, **kwargs)
    return event_id


def _environment_init(self: Any, *args: Any, **kwargs: Any) -> None:
    _originals["environment_init"](self, *args, **kwargs)
    # An execution's own history; a Distributed Map's shared child history is made elsewhere and left uncounted.
    self.event_manager._vaultline_limited = True


# --- payloads and terminal errors ---------------------------------------------------------------------------


def _stop_at_history_limit(env: Any) -> bool:
    """End the execution if its history is full; True if it was."""
    if not _exceeded(env.event_manager):
        return False
    if env.is_frame():
        # Inside a Parallel branch or an inline Map iteration: fail the branch; States.ALL cannot catch it.
        raise _failure(env, StatesErrorNameType.StatesRuntime, HISTORY_LIMIT_CAUSE)
    # The top-level loop writes ExecutionFailed (event 25,000) with exactly this error and cause.
    error = StatesErrorNameType.StatesRuntime.to_name()
    env.set_error(ExecutionFailedEventDetails(error=error, cause=HISTORY_LIMIT_CAUSE))
    return True


def _state_eval_body(self: Any, env: Any) -> None:
    if _stop_at_history_limit(env):
        return
    state_input = env.states.get_input()
    if not within_payload_limit(state_input):
        raise _failure(
            env,
            StatesErrorNameType.StatesStatesDataLimitExceeded,
            f"The state '{self.name}' received an input of {payload_bytes(state_input)} bytes, over the"
            f" {MAX_PAYLOAD_BYTES}-byte limit for a state's input.",
        )
    _originals["state_eval_body"](self, env)
    _stop_at_history_limit(env)


def _error_equals_eval_body(self: Any, env: Any) -> None:
    error_name = env.stack[-1]
    name = getattr(error_name, "error_name", None)
    explicit = any(getattr(n, "error_name", None) == name for n in self.error_names)
    if name in _UNCATCHABLE_BY_ALL and not explicit:
        env.stack.pop()
        env.stack.append(False)
        return
    _originals["error_equals_eval_body"](self, env)


def _propagated_error_name(error_name: str | None) -> ErrorName:
    """The name a failed iteration or branch hands its Map or Parallel state: a States.* name stays one."""
    if error_name is not None and error_name.startswith("States."):
        try:
            return StatesErrorName.from_name(error_name)
        except (KeyError, ValueError):
            pass
    return CustomErrorName(error_name)


def install() -> None:
    """Enforce the limits in moto's interpreter (idempotent)."""
    with _lock:
        if _originals:
            return
        _originals["add_event"] = EventManager.add_event
        _originals["environment_init"] = environment_module.Environment.__init__
        _originals["state_eval_body"] = state_module.CommonStateField._eval_body
        _originals["error_equals_eval_body"] = error_equals_decl.ErrorEqualsDecl._eval_body
        _originals["quota"] = quotas.is_within_size_quota
        EventManager.add_event = _add_event  # type: ignore[method-assign]
        environment_module.Environment.__init__ = _environment_init  # type: ignore[method-assign]
        state_module.CommonStateField._eval_body = _state_eval_body  # type: ignore[method-assign]
        error_equals_decl.ErrorEqualsDecl._eval_body = _error_equals_eval_body  # type: ignore[method-assign]
        state_module.is_within_size_quota = within_payload_limit
        for module in (iteration_worker, branches_decl):
            module.CustomErrorName = _propagated_error_name  # type: ignore[attr-defined]
        for module in (quotas, state_task_lambda, state_task_service):
            module.is_within_size_quota = _within_task_result_limit  # type: ignore[attr-defined]


def uninstall() -> None:
    """Give moto its own behaviour back."""
    with _lock:
        if not _originals:
            return
        EventManager.add_event = _originals["add_event"]  # type: ignore[method-assign]
        environment_module.Environment.__init__ = _originals["environment_init"]  # type: ignore[method-assign]
        state_module.CommonStateField._eval_body = _originals["state_eval_body"]  # type: ignore[method-assign]
        error_equals_decl.ErrorEqualsDecl._eval_body = _originals["error_equals_eval_body"]  # type: ignore[method-assign]
        for module in (quotas, state_module, state_task_lambda, state_task_service):
            module.is_within_size_quota = _originals["quota"]  # type: ignore[attr-defined]
        for module in (iteration_worker, branches_decl):
            module.CustomErrorName = CustomErrorName  # type: ignore[attr-defined]
        _originals.clear()
