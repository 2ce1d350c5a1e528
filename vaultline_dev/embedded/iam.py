"""IAM as AWS evaluates it, in the embedded AWS: every request is authorized before moto runs it.

moto has a hook before each request (``ActionAuthenticatorMixin``, on when ``INITIAL_NO_AUTH_ACTION_COUNT`` is
reached) and a decision that knows identity policies only, without resources or conditions. :func:`enforce`
keeps the hook and moto's resolution of the caller (access key -> IAM user or assumed role and its
policies) and replaces the decision:

1. the request becomes the checks AWS makes (``iam_requests.py``: action, resource ARN, context keys);
2. each check goes to ``@cloud-copilot/iam-simulate`` (``iam_simulator.py``) with the caller's identity policies,
   its role's permissions boundary, and the resource's policy (S3 bucket, KMS key, SNS topic or SQS queue policy,
   as deployed);
3. a denial fails the request as AWS fails it: 403 ``AccessDenied`` (JSON services: ``AccessDeniedException``)
   naming the principal, the action and the resource; S3 answers 403 instead of 404 for a missing key when the
   caller may not ``s3:ListBucket`` the bucket.

Who calls: the harness (deploy, test setup, the CLI a user runs) signs with the account administrator's fake key
of ``server.py`` and is allowed everything (:data:`Enforcer.harness_key`, the one place). State machines call
through moto's interpreter (``boto_client_for``), which this module makes sign with the executing state machine's
role (:func:`_state_machine_client`); functions and schedules sign with their roles' session credentials
(``identity.role_credentials``). Any other key fails as AWS fails an unknown key (``InvalidClientTokenId``).
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from botocore.config import Config
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.exceptions import AccessDeniedError, JsonRESTError
from moto.iam.access_control import AssumedRoleAccessKey, IAMRequest, PermissionResult, S3IAMRequest
from moto.iam.models import Policy, iam_backends
from moto.kms.models import kms_backends
from moto.kms.utils import _deserialize_ciphertext_blob
from moto.s3.exceptions import S3ClientError
from moto.s3.models import FakeBucket, s3_backends
from moto.settings import moto_server_port
from moto.sns.models import sns_backends
from moto.sqs.models import sqs_backends
from moto.sts.models import sts_backends

from vaultline.errors import VaultlineError
from vaultline_dev.embedded.iam_requests import Call, Check, KmsLookup, checks_for, parse_params
from vaultline_dev.embedded.iam_simulator import Simulator, Verdict
from vaultline_dev.embedded.identity import RoleCredentials, role_credentials

log = logging.getLogger(__name__)

# Services whose errors are JSON (awsJson / restJson protocols) and the status AWS gives their AccessDenied.
_JSON_SERVICES = {"dynamodb": 400, "kms": 400, "states": 400, "events": 400, "logs": 400, "lambda": 403}
_JSON_SERVICES |= {"scheduler": 403, "sqs": 400}
_STATE_MACHINE_SESSION = "vaultline-states"


@dataclass(frozen=True)
class Caller:
    """A signed caller other than the harness: its ARN and its identity policies (documents)."""

    arn: str
    policies: list[dict[str, Any]]
    boundary: dict[str, Any] | None = None
    """The permissions boundary of a role session's role: what it allows caps what the policies allow."""

    @property
    def principal_arn(self) -> str:
        """``aws:PrincipalArn``: a role session's role, else the caller itself."""
        if ":assumed-role/" in self.arn:
            account = self.arn.split(":")[4]
            return f"arn:aws:iam::{account}:role/{self.arn.split('/')[1]}"
        return self.arn


class Enforcer:
    """The decision moto's hook calls: the simulator, the harness's key, and the state machines' credentials."""

    def __init__(self, harness_key: str, simulator: Simulator, endpoint: str) -> None:
        self.harness_key = harness_key
        """The administrator's access key id: requests it signs are allowed without evaluation (AWS has no such
        key; the harness stands for the account's administrator deploying and operating the stack)."""
        self.simulator = simulator
        self.endpoint = endpoint
        self._credentials: dict[str, RoleCredentials] = {}
        self._lock = threading.Lock()

    # --- the hook ---------------------------------------------------------------------------------------------

    def authorize(
        self,
        response: Any,
        iam_request_cls: type,
        moto_resource: str,
        bucket: str | None = None,
        key: str | None = None,
    ) -> None:
        """Authorize the request ``response`` (a moto response object) or raise the service's AccessDenied."""
        headers = response.headers
        authorization = headers.get("Authorization", "")
        scope = authorization.partition("Credential=")[2].partition(",")[0].split("/")
        if len(scope) < 4:
            raise _denied(_service_of(response), "anonymous", "*", "*", "because the request is not signed")
        access_key, region, service = scope[0], scope[2], scope[3]
        if access_key == self.harness_key:
            return
        caller = _resolve_caller(response, iam_request_cls)
        call = _call_of(response, service, region, moto_resource, bucket, key)
        if call.operation == "GetCallerIdentity":
            return  # AWS answers it whatever the policies say
        kms = self._kms_lookup(region)
        checks = checks_for(call, kms)
        if service == "s3" and bucket and key:
            checks += _sse_kms_checks(call, checks, kms, caller.arn.split(":")[4])
        for check in checks:
            self._require(caller, service, check)
        if service == "s3" and bucket and key:
            self._hide_missing_key(caller, call)

    def _require(self, caller: Caller, service: str, check: Check) -> Verdict:
        verdict = self.decide(caller, check)
        if not verdict.allowed:
            raise _denied(service, caller.arn, check.action, check.resource, reason(verdict, check.action))
        return verdict

    def decide(self, caller: Caller, check: Check) -> Verdict:
        """The simulator's verdict on ``check`` for ``caller``, with the resource's policy as deployed."""
        return decide(self.simulator, caller, check, resource_policy(check.resource), resource_owner(check.resource))

    def _hide_missing_key(self, caller: Caller, call: Call) -> None:
        # S3 answers a read of a missing key with 404 only to a caller who may list the bucket, else with 403.
        if call.method not in ("GET", "HEAD") or set(call.query) - {"versionId", "partNumber"}:
            return
        assert call.bucket is not None and call.key is not None
        backend = s3_backends[call.account]["aws"]
        try:
            exists = backend.get_object(call.bucket, call.key) is not None
        except S3ClientError:
            return  # no such bucket: S3 says so (NoSuchBucket) whoever asks
        if not exists:
            self._require(caller, "s3", Check("s3:ListBucket", f"arn:aws:s3:::{call.bucket}"))

    def _kms_lookup(self, region: str) -> KmsLookup:
        backend = kms_backends[_account()][region]

        def key_arn(reference: str) -> str:
            try:
                return str(backend.keys[backend.any_id_to_key_id(reference)].arn)
            except Exception:  # an unknown key: authorize on the name given, moto then answers NotFound
                if reference.startswith("arn:"):
                    return reference
                kind = reference if reference.startswith("alias/") else f"key/{reference}"
                return f"arn:aws:kms:{region}:{_account()}:{kind}"

        def key_of_ciphertext(blob: bytes) -> str:
            try:
                return key_arn(_deserialize_ciphertext_blob(blob).key_id)
            except Exception:
                return f"arn:aws:kms:{region}:{_account()}:key/unknown"

        return KmsLookup(key_arn=key_arn, key_of_ciphertext=key_of_ciphertext)

    # --- state machines ---------------------------------------------------------------------------------------

    def role_session(self, role_arn: str, region: str) -> RoleCredentials:
        """Session credentials of ``role_arn`` for a state machine, assumed once and reused while moto has them."""
        with self._lock:
            cached = self._credentials.get(role_arn)
            if cached is not None and _session_exists(cached.access_key_id):
                return cached
        self.require_trust(role_arn, "states.amazonaws.com", _state_machine_of(role_arn, region))
        fresh = role_credentials(role_arn, _STATE_MACHINE_SESSION, endpoint=self.endpoint)
        with self._lock:
            self._credentials[role_arn] = fresh
        return fresh

    def require_trust(self, role_arn: str, service_principal: str, source_arn: str | None = None) -> None:
        """Raise :class:`RoleNotAssumable` unless ``role_arn``'s trust policy lets ``service_principal`` assume it
        on behalf of ``source_arn`` (the state machine or schedule: ``aws:SourceArn``) in this account."""
        try:
            role = iam_backends[_account()]["global"].get_role_by_arn(role_arn)
        except Exception as exc:
            raise RoleNotAssumable(f"{service_principal} cannot assume {role_arn}: no such role") from exc
        trust = role.assume_role_policy_document
        simulation = {
            "request": {
                "principal": service_principal,
                "action": "sts:AssumeRole",
                "resource": {"resource": role_arn, "accountId": _account()},
                "contextVariables": {
                    "aws:SecureTransport": "true",
                    "aws:SourceAccount": _account(),
                    **({"aws:SourceArn": source_arn} if source_arn else {}),
                },
            },
            "identityPolicies": [],
            "serviceControlPolicies": [],
            "resourceControlPolicies": [],
            "resourcePolicy": json.loads(trust) if isinstance(trust, str) else trust,
        }
        if not self.simulator.decide(simulation).allowed:
            raise RoleNotAssumable(f"{service_principal} may not assume {role_arn}: its trust policy does not allow it")


def decide(
    simulator: Simulator,
    caller: Caller,
    check: Check,
    resource_policy: dict[str, Any] | None,
    resource_account: str | None = None,
) -> Verdict:
    """The verdict on ``check`` for ``caller`` (its identity policies and boundary) under ``resource_policy``, the
    one decision the embedded AWS makes per check; infra tests ask it of a synthesized template's policies.
    ``resource_account`` owns the resource (the caller's account when unknown): across accounts both the caller's
    policies and the resource's policy must allow, as on AWS."""
    account = caller.arn.split(":")[4]
    now = datetime.now(UTC)
    context: dict[str, str | list[str]] = {
        # Plain HTTP on loopback stands in for AWS's TLS endpoints (docs/embedded-aws.md, "IAM").
        "aws:SecureTransport": "true",
        "aws:PrincipalArn": caller.principal_arn,
        "aws:PrincipalAccount": account,
        "aws:CurrentTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "aws:EpochTime": str(int(now.timestamp())),
        **check.context,
    }
    boundary = [{"name": "boundary", "policy": caller.boundary}] if caller.boundary else None
    simulation = {
        "request": {
            "principal": caller.arn,
            "action": check.action,
            "resource": {"resource": check.resource, "accountId": resource_account or account},
            "contextVariables": context,
        },
        "identityPolicies": [{"name": f"policy{i}", "policy": p} for i, p in enumerate(caller.policies)],
        **({"permissionBoundaryPolicies": boundary} if boundary else {}),
        "serviceControlPolicies": [],
        "resourceControlPolicies": [],
        "resourcePolicy": resource_policy,
    }
    verdict = simulator.decide(simulation)
    if verdict.result == "ExplicitlyDenied" and not verdict.denials:
        # Across accounts the simulator names no reason: ask again without the resource policy to tell whose
        # deny it was (a denial costs a second decision; an allowed request never does).
        alone = simulator.decide({**simulation, "resourcePolicy": None})
        whose = "identity" if alone.result == "ExplicitlyDenied" else "resource"
        verdict = verdict.model_copy(update={"denials": [f"Explicit:{whose}"]})
    if verdict.result == "Error":
        log.warning("IAM simulator rejected %s on %s: %s", check.action, check.resource, verdict.error)
    return verdict


class RoleNotAssumable(VaultlineError):
    """A service was to act as a role whose trust policy does not admit that service."""


def assume_as_service(
    role_arn: str, service_principal: str, session_name: str, source_arn: str | None = None
) -> RoleCredentials:
    """What a service (``scheduler.amazonaws.com``, ``lambda.amazonaws.com``) does to act as ``role_arn`` for
    ``source_arn``: check that the role's trust policy admits it (while IAM is enforced), then assume the role."""
    if _active is not None:
        _active.require_trust(role_arn, service_principal, source_arn)
    return role_credentials(role_arn, session_name)


_active: Enforcer | None = None


def _account() -> str:
    # moto files every request signed with a key it did not issue (the harness's) under its default account.
    return str(DEFAULT_ACCOUNT_ID)


def _service_of(response: Any) -> str:
    return str(getattr(response, "service_name", "") or "")


def _resolve_caller(response: Any, iam_request_cls: type) -> Caller:
    # moto's request class resolves the access key to a user or role session, or raises the service's
    # InvalidClientTokenId. The signature is not checked: the key alone names the caller on this loopback
    # endpoint, and moto's check misreads requests without a body (a Lambda Invoke with no payload fails it).
    parsed = urlparse(response.uri)
    path = response.raw_path + (f"?{parsed.query}" if parsed.query else "")
    request = iam_request_cls(
        account_id=response.current_account,
        method=response.method,
        path=path,
        data=response.data,
        body=response.raw_body,
        headers=response.headers,
        action=response._get_action(),
    )
    access_key = request._access_key
    policies = [_document(p) for p in access_key.collect_policies()]
    return Caller(arn=access_key.arn, policies=policies, boundary=_boundary_of(access_key))


def _boundary_of(access_key: Any) -> dict[str, Any] | None:
    """The document of the permissions boundary of a role session's role, if it has one (users have none here)."""
    if not isinstance(access_key, AssumedRoleAccessKey):
        return None
    backend = access_key.backend
    arn = backend.get_role(access_key._owner_role_name).permissions_boundary_arn
    return _document(backend.get_policy(arn)) if arn else None


def _document(policy: Any) -> dict[str, Any]:
    text: Any
    if isinstance(policy, Policy):
        text = next(version.document for version in policy.versions if version.is_default)
    elif isinstance(policy, str | dict):
        text = policy
    else:
        text = policy["policy_document"]
    document: dict[str, Any] = json.loads(text) if isinstance(text, str) else text
    return document


def _call_of(response: Any, service: str, region: str, moto_resource: str, bucket: str | None, key: str | None) -> Call:
    parsed = urlparse(response.uri)
    body = response.raw_body if isinstance(response.raw_body, bytes) else str(response.raw_body or "").encode()
    query: dict[str, list[str]] = {k: list(v) for k, v in (response.querystring or {}).items()}
    if service == "s3":  # the URL's own query, blank sub-resources (?uploads, ?retention) kept
        query = parse_qs(parsed.query, keep_blank_values=True)
    return Call(
        service=service,
        operation=str(response._get_action()) if service != "s3" else "",
        method=response.method,
        path=parsed.path,
        query=query,
        headers=dict(response.headers),
        params=parse_params(body, query) if service != "s3" else {},
        body=body,
        region=region,
        # S3 requests are served by the bucket owner's account, whoever calls (a bucket shared across accounts).
        account=(resource_owner(f"arn:aws:s3:::{bucket}") if service == "s3" and bucket else "") or _account(),
        moto_resource=moto_resource,
        bucket=bucket,
        key=key,
    )


def _sse_kms_checks(call: Call, checks: list[Check], kms: KmsLookup, caller_account: str) -> list[Check]:
    """What S3 asks KMS for the caller on an SSE-KMS bucket or object: writes need ``kms:GenerateDataKey``, reads
    ``kms:Decrypt``, on the key (moto's S3 encrypts nothing; AWS's does, as the caller)."""
    assert call.bucket is not None and call.key is not None
    backend = s3_backends[call.account]["aws"]
    bucket = backend.buckets.get(call.bucket)
    if bucket is None:
        return []
    object_arn = f"arn:aws:s3:::{call.bucket}/{call.key}"
    actions = {c.action for c in checks if c.resource == object_arn}
    key_id: str | None = None
    kms_actions: list[str] = []
    if "s3:PutObject" in actions and not (set(call.query) - {"uploads", "uploadId", "partNumber"}):
        headers = {k.lower(): v for k, v in call.headers.items()}
        if headers.get("x-amz-server-side-encryption") == "aws:kms":
            key_id = headers.get("x-amz-server-side-encryption-aws-kms-key-id")
        else:
            default = ((bucket.encryption or {}).get("Rule") or {}).get("ApplyServerSideEncryptionByDefault") or {}
            key_id = default.get("KMSMasterKeyID") if default.get("SSEAlgorithm") == "aws:kms" else None
        # A multipart upload's parts are encrypted under the data key its start generated: it decrypts it.
        kms_actions = ["kms:GenerateDataKey", "kms:Decrypt"] if "uploads" in call.query else ["kms:GenerateDataKey"]
    elif actions & {"s3:GetObject", "s3:GetObjectVersion"} and call.method in ("GET", "HEAD"):
        version = call.query.get("versionId", [None])[0]
        try:
            stored = backend.get_object(call.bucket, call.key, version_id=version)
        except S3ClientError:
            stored = None
        if stored is not None and stored.encryption == "aws:kms":
            key_id = stored.kms_key_id
        kms_actions = ["kms:Decrypt"]
    if not key_id:
        return []  # SSE-S3, or the AWS-managed aws/s3 key, which every principal of the account may use via S3
    context: dict[str, str | list[str]] = {
        "kms:ViaService": f"s3.{call.region}.amazonaws.com",
        "kms:CallerAccount": caller_account,
        "kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::{call.bucket}"
        if bucket.encryption and str((bucket.encryption.get("Rule") or {}).get("BucketKeyEnabled")).lower() == "true"
        else object_arn,
    }
    return [Check(action, kms.key_arn(key_id), context) for action in kms_actions]


def resource_owner(resource: str) -> str:
    """The account that owns ``resource``: the one its ARN names, or for S3 (whose ARNs name none) the bucket's
    owner; "" when unknown. A caller of another account needs both its identity policy and the resource's policy
    to allow (cross-account), as on AWS."""
    parts = resource.split(":", 5)
    if len(parts) < 6:
        return ""
    if parts[2] == "s3" and not parts[4]:
        owner = s3_backends.bucket_accounts.get(parts[5].split("/", 1)[0])
        return str(owner[1]) if owner else ""
    return parts[4]


def resource_policy(resource: str) -> dict[str, Any] | None:
    """The deployed resource-based policy of ``resource`` (bucket, key, topic, queue), if it has one."""
    parts = resource.split(":", 5)
    if len(parts) < 6:
        return None
    service, region, account, rest = parts[2], parts[3], parts[4] or _account(), parts[5]
    text: Any = None
    try:
        if service == "s3":
            bucket = s3_backends[resource_owner(resource) or _account()]["aws"].buckets.get(rest.split("/", 1)[0])
            text = bucket.policy if bucket is not None else None
        elif service == "kms" and rest.startswith("key/"):
            key = kms_backends[account][region].keys.get(rest.removeprefix("key/"))
            text = key.policy if key is not None else None
        elif service == "sns":
            topic = sns_backends[account][region].topics.get(resource)
            text = topic.policy if topic is not None else None
        elif service == "sqs":
            queue = sqs_backends[account][region].queues.get(rest)
            text = queue.policy if queue is not None else None
    except KeyError:
        return None
    if not text:
        return None
    document: dict[str, Any] = json.loads(text)
    return document


def reason(verdict: Verdict, action: str) -> str:
    """Why AWS says a request was denied, in its words (the end of an AccessDenied message)."""
    if verdict.result == "Error":
        return f"because the embedded AWS's IAM simulator rejected the request ({verdict.error})"
    if "Explicit:resource" in verdict.denials:
        return "with an explicit deny in a resource-based policy"
    if "Explicit:identity" in verdict.denials:
        return "with an explicit deny in an identity-based policy"
    # iam-simulate names the permissions boundary "pb".
    if "Implicit:pb" in verdict.denials and "Implicit:identity" not in verdict.denials:
        return f"because no permissions boundary allows the {action} action"
    if "Implicit:identity" not in verdict.denials and "Implicit:resource" in verdict.denials:
        return f"because no resource-based policy allows the {action} action"
    return f"because no identity-based policy allows the {action} action"


def _denied(service: str, principal: str, action: str, resource: str, reason: str) -> Exception:
    message = f"User: {principal} is not authorized to perform: {action} on resource: {resource} {reason}"
    if service == "s3":
        return S3ClientError("AccessDenied", message)
    if service in _JSON_SERVICES:
        error = JsonRESTError("AccessDeniedException", message)
        error.code = _JSON_SERVICES[service]
        return error
    return _XmlAccessDenied("AuthorizationError" if service == "sns" else "AccessDenied", message)


class _XmlAccessDenied(AccessDeniedError):
    """moto's XML AccessDenied (query protocols), with AWS's full message instead of moto's short one."""

    def __init__(self, code: str, message: str) -> None:
        super(AccessDeniedError, self).__init__(code, message)


def _state_machine_of(role_arn: str, region: str) -> str | None:
    # The interpreter hands over the execution's role, not its state machine: the one deployed with that role.
    from moto.stepfunctions.responses import get_backend

    machines = [m.arn for m in get_backend(_account(), region).state_machines if m.roleArn == role_arn]
    return machines[0] if len(machines) == 1 else None


def _session_exists(access_key_id: str) -> bool:
    # A reset of the embedded AWS forgets every session; a cached one is then re-assumed.
    return any(r.access_key_id == access_key_id for r in sts_backends[_account()]["aws"].assumed_roles)


# --- installing the hooks ------------------------------------------------------------------------------------


def _authorize_normal(self: Any, resource: str = "*") -> None:
    assert _active is not None, "installed by enforce() only"
    _active.authorize(self, IAMRequest, resource)


def _authorize_s3(self: Any, bucket_name: str | None = None, key_name: str | None = None) -> None:
    assert _active is not None, "installed by enforce() only"
    _active.authorize(self, S3IAMRequest, "*", bucket_name, key_name)


def _no_bucket_policy_decision(self: Any, action: str, resource: str) -> PermissionResult:
    # moto's own bucket-policy check (before object requests) would decide again, without conditions: the
    # simulator has already decided with the bucket policy.
    return PermissionResult.NEUTRAL


def _state_machine_client(region: str, service: str, state_credentials: Any = None) -> Any:
    """moto's ``boto_client_for``, signing with the executing state machine's role instead of fake keys.

    moto passes every call an interpreter makes (Lambda invokes, ItemReader, ResultWriter, child executions,
    PutEvents) the execution's role (``StateCredentials(role_arn=env.aws_execution_details.role_arn)``); a
    Distributed Map's iterations inherit the parent environment's execution details, so they carry it too,
    whatever thread they run in.
    """
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds

    role_arn = getattr(state_credentials, "role_arn", None)
    if _active is None or not role_arn:
        raise RuntimeError(f"a state machine called {service} without a role while IAM is enforced")
    session = _active.role_session(str(role_arn), region)
    return session.session(region).client(  # type: ignore[call-overload]
        service,
        endpoint_url=f"http://localhost:{moto_server_port()}",
        config=Config(
            parameter_validation=False,
            retries={"max_attempts": 0, "total_max_attempts": 1},
            connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
            read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
        ),
    )


def _interpreter_modules() -> list[Any]:
    # Every module of moto's ASL interpreter that imports boto_client_for by name (found by its source, since
    # some modules of the package do not import on their own).
    import moto.stepfunctions.parser as parser
    from moto.stepfunctions.parser.asl.utils import boto_client

    root = Path(parser.__file__).parent
    modules: list[Any] = [boto_client]
    for source in sorted(root.rglob("*.py")):
        if "import boto_client_for" in source.read_text():
            relative = source.relative_to(root).with_suffix("")
            modules.append(importlib.import_module(".".join((parser.__name__, *relative.parts))))
    return modules


def _hooks() -> list[tuple[Any, str, Any]]:
    return [
        (ActionAuthenticatorMixin, "_authenticate_and_authorize_normal_action", _authorize_normal),
        (ActionAuthenticatorMixin, "_authenticate_and_authorize_s3_action", _authorize_s3),
        (FakeBucket, "get_permission", _no_bucket_policy_decision),
        *((module, "boto_client_for", _state_machine_client) for module in _interpreter_modules()),
    ]


_saved: list[tuple[Any, str, Any]] = []


def enforce(harness_key: str, endpoint: str) -> Enforcer:
    """Authorize every request of this process's moto server from now on (until :func:`stop_enforcing`)."""
    global _active
    stop_enforcing()
    enforcer = Enforcer(harness_key, Simulator(), endpoint)
    for target, name, hook in _hooks():
        _saved.append((target, name, getattr(target, name)))
        setattr(target, name, hook)
    _active = enforcer
    return enforcer


def stop_enforcing() -> None:
    """Give moto back its own (permissive) authorization and stop the simulator."""
    global _active
    enforcer, _active = _active, None
    for target, name, original in reversed(_saved):
        setattr(target, name, original)
    _saved.clear()
    if enforcer is not None:
        enforcer.simulator.close()


def active() -> Enforcer | None:
    """The enforcer of the running embedded AWS, if IAM is enforced."""
    return _active
