"""Where moto, given the deployed template, behaves unlike AWS: closed here, in one place, while it is open.

- EventBridge rules whose target is an SNS topic or a state machine: moto 5.2.5 delivers to log groups, SQS and
  event buses only and raises on any other target, which fails the ``events:putEvents`` task of every state machine.
  AWS publishes the event (or the target's ``Input``) to the topic, and starts the state machine as the target's
  role (trusting events.amazonaws.com, allowed ``states:StartExecution``) with its input; so does this.
- Bucket policies: moto evaluates a bucket policy without its conditions, so CDK's ``enforceSSL`` statement (Deny
  ``s3:*`` to ``*`` when ``aws:SecureTransport`` is false) denies every request. Clients reach AWS over TLS, so on
  AWS that statement denies nothing a Vaultline client sends; moto's condition-blind check is switched off, and
  resource policies are authorized by the embedded AWS's IAM evaluation (iam_deploy / the IAM layer), with
  their conditions.
- A Lambda task whose Invoke call itself fails (throttled with 429, denied, the service erring): Step Functions names
  the error after the Lambda service exception, ``Lambda.TooManyRequestsException``, ``Lambda.ServiceException``,
  and the rest ``Lambda.AWSLambdaException``, which is what our retriers match. moto names every one ``Exception``,
  so no retrier of ours would ever see a throttled invoke.
- DynamoDB export ARNs: moto names an export ``table/<the table's ARN>/import/<id>``; AWS names it
  ``table/<table name>/export/<id>``, which is what the export-status function's grant (``table/T/export/*``) names.
- KMS key states: moto encrypts and decrypts with a key in any state. AWS refuses Encrypt, Decrypt, ReEncrypt and
  GenerateDataKey* with a ``Disabled`` key (``DisabledException``, "<key ARN> is disabled.") and with a key in
  any other state but ``Enabled`` (``KMSInvalidStateException``, "<key ARN> is pending deletion."), which is what
  a vault whose key was disabled or scheduled for deletion meets. The in-process ``mock_aws`` of the tests installs
  this gap alone (``install_kms_key_states``), the embedded server with the rest. Also: moto's ciphertext header
  holds 36 bytes of key id, so a multi-Region key (``mrk-`` and 36 more) encrypts but can never decrypt; AWS
  decrypts it in every region that holds a replica. Decrypt finds the key the cut id names.
- Object Lock retention: moto lets PutObjectRetention shorten a retention in force; AWS refuses
  (``object_lock_rules.py``, installed with the KMS key states in the tests' ``mock_aws`` too).
- CloudWatch alarms: moto stores any Period and EvaluationPeriods. PutMetricAlarm refuses a period other than 10,
  20, 30 or a multiple of 60 (each metric's, in a metric-math alarm), an evaluation range (Period x
  EvaluationPeriods) over 7 days, or over 1 day for a period under an hour, and more DatapointsToAlarm than
  EvaluationPeriods (``ValidationError``). Installed alone (``install_alarm_limits``) for ``mock_aws`` too.
- Distributed Map failure thresholds: moto ends a map run SUCCEEDED however many items failed; AWS fails it with
  ``States.ExceedToleratedFailureThreshold`` past ``ToleratedFailureCount``/``Percentage`` (``map_tolerance.py``).
- Distributed Map child executions: moto keeps none, and ListExecutions with a ``mapRunArn`` answers 500; AWS
  lists each item's child execution and describes its error and cause (``map_run_children.py``).
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from typing import Any

from botocore.exceptions import ClientError
from moto.cloudwatch.exceptions import ValidationError as CloudWatchValidationError
from moto.cloudwatch.models import CloudWatchBackend
from moto.core.exceptions import JsonRESTError
from moto.dynamodb.models.table_export import TableExport
from moto.events.models import Rule
from moto.iam.access_control import PermissionResult
from moto.kms import utils as kms_utils
from moto.kms.exceptions import AccessDeniedException
from moto.kms.models import Key, KmsBackend
from moto.s3.models import FakeBucket
from moto.sns.models import sns_backends
from moto.stepfunctions.parser.api import HistoryEventType, LambdaFunctionFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent
from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_lambda import StateTaskLambda
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.utilities.arns import parse_arn

from vaultline_dev.embedded import map_run_children, map_tolerance, object_lock_rules

_original_send_to_targets = Rule.send_to_targets
_original_get_permission = FakeBucket.get_permission
_original_lambda_from_error = StateTaskLambda._from_error
_original_export_init = TableExport.__init__
_original_kms_encrypt = KmsBackend.encrypt
_original_kms_decrypt = KmsBackend.decrypt
_original_put_metric_alarm = CloudWatchBackend.put_metric_alarm
# How AWS words a key state in KMSInvalidStateException ("<arn> is pending deletion.").
_KEY_STATE_WORDS = {"PendingDeletion": "pending deletion", "PendingImport": "pending import"}

# The Lambda service exceptions Step Functions reports by their own name; any other failed Invoke is AWSLambdaException.
_NAMED_LAMBDA_ERRORS = frozenset(
    {
        "TooManyRequestsException",
        "ServiceException",
        "ResourceNotFoundException",
        "ResourceNotReadyException",
        "EC2ThrottledException",
        "KMSAccessDeniedException",
    }
)


def _send_to_targets(self: Rule, original_event: Any, transform_input: bool = True) -> None:
    topics = [t for t in self.targets if parse_arn(t["Arn"]).service == "sns"]
    machines = [t for t in self.targets if parse_arn(t["Arn"]).service == "states"]
    others = [t for t in self.targets if t not in topics and t not in machines]
    if others or not (topics or machines):
        rest = copy.copy(self)
        rest.targets = others
        _original_send_to_targets(rest, original_event, transform_input)
    if not (topics or machines) or not self.event_pattern.matches_event(original_event):
        return
    for target in topics:
        arn = parse_arn(target["Arn"])
        message = target.get("Input") or json.dumps(original_event)
        sns_backends[arn.account][arn.region].publish(message=message, arn=target["Arn"])
    for target in machines:
        # EventBridge delivers after PutEvents has answered, apart from its caller: so does this (started inside
        # the caller's request, the execution would share its interpreter's thread state).
        threading.Thread(
            target=_start_target_execution, args=(self, target, original_event), name="events-target", daemon=True
        ).start()


def _start_target_execution(rule: Rule, target: dict[str, Any], event: Any) -> None:
    """What EventBridge does for a state machine target: assume the target's role as events.amazonaws.com (its
    trust policy must admit that, for this rule, while IAM is enforced) and StartExecution as that role, whose
    policy must allow ``states:StartExecution`` on the machine. The input is the target's ``Input``, its
    ``InputTransformer`` applied to the event, or the event."""
    from moto.events.models import EventTemplateParser
    from moto.settings import moto_server_port

    from vaultline_dev.embedded.iam import assume_as_service

    transformer = target.get("InputTransformer")
    if target.get("Input"):
        payload = target["Input"]
    elif transformer:
        parsed = EventTemplateParser.parse(
            input_template=transformer.get("InputTemplate"),
            input_paths_map=transformer.get("InputPathsMap", {}),
            event=event,
        )
        payload = parsed if isinstance(parsed, str) else json.dumps(parsed)
    else:
        payload = json.dumps(event)
    arn = parse_arn(target["Arn"])
    role = assume_as_service(target["RoleArn"], "events.amazonaws.com", f"events-{rule.name}"[:64], rule.arn)
    machines = role.session(arn.region).client("stepfunctions", endpoint_url=f"http://localhost:{moto_server_port()}")
    # EventBridge names each execution with a fresh id (moto would name it "None").
    machines.start_execution(stateMachineArn=target["Arn"], input=payload, name=uuid.uuid4().hex)


def _get_permission(self: FakeBucket, action: str, resource: str) -> Any:
    return PermissionResult.NEUTRAL


def _lambda_from_error(self: StateTaskLambda, env: Any, ex: Exception) -> FailureEvent:
    if not isinstance(ex, ClientError):
        return _original_lambda_from_error(self, env, ex)
    code = str(ex.response.get("Error", {}).get("Code", ""))
    error = f"Lambda.{code if code in _NAMED_LAMBDA_ERRORS else 'AWSLambdaException'}"
    cause = str(ex.response.get("Error", {}).get("Message", "")) or str(ex)
    return FailureEvent(
        env=env,
        error_name=CustomErrorName(error),
        event_type=HistoryEventType.LambdaFunctionFailed,
        event_details=EventDetails(  # type: ignore[typeddict-item]
            lambdaFunctionFailedEventDetails=LambdaFunctionFailedEventDetails(error=error, cause=cause)
        ),
    )


def _export_init(self: TableExport, *args: Any, **kwargs: Any) -> None:
    _original_export_init(self, *args, **kwargs)
    export_id = self.arn.rsplit("/", 1)[-1]
    self.arn = f"{self.table.table_arn}/export/{export_id}"


class _DisabledException(JsonRESTError):
    code = 400

    def __init__(self, message: str) -> None:
        super().__init__("DisabledException", message)


class _KMSInvalidStateException(JsonRESTError):
    code = 400

    def __init__(self, message: str) -> None:
        super().__init__("KMSInvalidStateException", message)


def _require_enabled(key: Key) -> None:
    if key.key_state == "Enabled":
        return
    if key.key_state == "Disabled":
        raise _DisabledException(f"{key.arn} is disabled.")
    raise _KMSInvalidStateException(f"{key.arn} is {_KEY_STATE_WORDS.get(key.key_state, key.key_state)}.")


def _kms_encrypt(self: KmsBackend, key_id: str, plaintext: bytes, encryption_context: dict[str, str]) -> Any:
    # GenerateDataKey and ReEncrypt encrypt through this method too.
    resolved = self.any_id_to_key_id(key_id)
    if resolved in self.keys:
        _require_enabled(self.keys[resolved])
    return _original_kms_encrypt(self, key_id, plaintext, encryption_context)


def _kms_decrypt(
    self: KmsBackend, ciphertext_blob: bytes, encryption_context: dict[str, str], key_id: str | None = None
) -> Any:
    # The ciphertext names its key: decrypt (which checks the blob), then refuse if that key may not be used.
    multi_region = _multi_region_key(self, ciphertext_blob)
    if multi_region is not None:
        plaintext, _ = kms_utils.decrypt(
            {multi_region.id[: kms_utils.KEY_ID_LEN]: multi_region}, ciphertext_blob, encryption_context
        )
        if key_id is not None and self.any_id_to_key_id(key_id) != multi_region.id:
            raise AccessDeniedException(
                "The ciphertext refers to a customer master key that does not exist, "
                "does not exist in this region, or you are not allowed to access."
            )
        arn = multi_region.arn
    else:
        plaintext, arn = _original_kms_decrypt(self, ciphertext_blob, encryption_context, key_id)
    _require_enabled(self.keys[self.get_key_id(arn)])
    return plaintext, arn


def _multi_region_key(backend: KmsBackend, ciphertext_blob: bytes) -> Key | None:
    """The multi-Region key (``mrk-`` + 36 characters) whose id moto cut to 36 bytes in the blob's header."""
    named = ciphertext_blob[: kms_utils.KEY_ID_LEN].decode("utf-8", "replace")
    if not named.startswith("mrk-"):
        return None
    found = [key for key_id, key in backend.keys.items() if len(key_id) > len(named) and key_id.startswith(named)]
    return found[0] if len(found) == 1 else None


def install_kms_key_states() -> None:
    """Only the KMS key-state gap (idempotent): what the in-process ``mock_aws`` of the tests needs."""
    KmsBackend.encrypt = _kms_encrypt  # type: ignore[method-assign]
    KmsBackend.decrypt = _kms_decrypt  # type: ignore[method-assign]


def uninstall_kms_key_states() -> None:
    """Give moto its own KMS back."""
    KmsBackend.encrypt = _original_kms_encrypt  # type: ignore[method-assign]
    KmsBackend.decrypt = _original_kms_decrypt  # type: ignore[method-assign]


def _put_metric_alarm(self: CloudWatchBackend, *args: Any, **kwargs: Any) -> Any:
    names = ("name", "namespace", "metric_name", "comparison_operator", "evaluation_periods", "period")
    given = dict(zip(names, args, strict=False)) | kwargs
    evaluation_periods = int(given.get("evaluation_periods") or 0)
    periods = [int(given["period"])] if given.get("period") else []
    for query in given.get("metric_data_queries") or []:
        stat = query.metric_stat
        if stat is not None and stat.period:
            periods.append(int(stat.period))
        elif query.period:
            periods.append(int(query.period))
    if not given.get("rule"):  # a composite alarm has neither
        if evaluation_periods < 1:
            raise CloudWatchValidationError("EvaluationPeriods must be at least 1")
        for period in periods:
            if period not in (10, 20, 30) and (period < 60 or period % 60):
                raise CloudWatchValidationError(f"Period ({period}) must be 10, 20, 30 or a multiple of 60")
        for period in periods:
            limit = 86400 if period < 3600 else 604800
            if period * evaluation_periods > limit:
                raise CloudWatchValidationError(
                    f"The evaluation range Period x EvaluationPeriods ({period} x {evaluation_periods}) must not "
                    f"exceed {limit} seconds"
                )
        datapoints = given.get("datapoints_to_alarm")
        if datapoints is not None and int(datapoints) > evaluation_periods:
            raise CloudWatchValidationError("DatapointsToAlarm must be less than or equal to EvaluationPeriods")
    return _original_put_metric_alarm(self, *args, **kwargs)


def install_alarm_limits() -> None:
    """CloudWatch's alarm limits alone (what ``mock_aws`` tests need)."""
    CloudWatchBackend.put_metric_alarm = _put_metric_alarm  # type: ignore[method-assign]


def uninstall_alarm_limits() -> None:
    CloudWatchBackend.put_metric_alarm = _original_put_metric_alarm  # type: ignore[method-assign]


def install() -> None:
    """Close the gaps (idempotent)."""
    install_kms_key_states()
    object_lock_rules.install()
    install_alarm_limits()
    map_tolerance.install()
    map_run_children.install()
    Rule.send_to_targets = _send_to_targets  # type: ignore[method-assign]
    FakeBucket.get_permission = _get_permission  # type: ignore[method-assign]
    StateTaskLambda._from_error = _lambda_from_error  # type: ignore[method-assign]
    TableExport.__init__ = _export_init  # type: ignore[method-assign]


def uninstall() -> None:
    """Give moto its own behaviour back."""
    uninstall_kms_key_states()
    object_lock_rules.uninstall()
    uninstall_alarm_limits()
    map_tolerance.uninstall()
    map_run_children.uninstall()
    Rule.send_to_targets = _original_send_to_targets  # type: ignore[method-assign]
    FakeBucket.get_permission = _original_get_permission  # type: ignore[method-assign]
    StateTaskLambda._from_error = _original_lambda_from_error  # type: ignore[method-assign]
    TableExport.__init__ = _original_export_init  # type: ignore[method-assign]
