"""The embedded AWS answers a share of requests with AWS's own overload errors, in each service's protocol, and only
to the template's roles: the harness is never faulted, and a state machine's own S3 reads are not either."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from vaultline_dev.embedded import EmbeddedAws
from vaultline_dev.embedded.identity import RoleCredentials, role_credentials

pytestmark = pytest.mark.e2e

NO_RETRIES = Config(retries={"total_max_attempts": 1})
STANDARD_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 10})


def _role(aws: EmbeddedAws, name: str, service: str) -> RoleCredentials:
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }
    iam = boto3.client("iam", endpoint_url=aws.endpoint)
    try:
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    except ClientError:
        arn = iam.get_role(RoleName=name)["Role"]["Arn"]
    # IAM is enforced: these stand-ins for a function's and a state machine's roles may do what the tests ask.
    anything = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_role_policy(RoleName=name, PolicyName="anything", PolicyDocument=json.dumps(anything))
    return role_credentials(arn, name)


def _client(aws: EmbeddedAws, service: str, who: RoleCredentials | None, config: Config = NO_RETRIES) -> Any:
    session = boto3.session.Session(region_name="us-east-1") if who is None else who.session("us-east-1")
    return session.client(service, endpoint_url=aws.endpoint, config=config)


@pytest.fixture
def faulty(embedded: EmbeddedAws) -> Iterator[EmbeddedAws]:
    boto3.client("s3", endpoint_url=embedded.endpoint).create_bucket(Bucket="fault-bucket")
    yield embedded
    embedded.faults.clear()


def test_function_roles_get_s3_slowdown_and_the_sdk_retries_through_it(faulty: EmbeddedAws) -> None:
    worker = _role(faulty, "fault-worker", "lambda.amazonaws.com")
    faulty.faults.set_rates({"s3-slowdown": 0.15}, seed=7)
    s3 = _client(faulty, "s3", worker, STANDARD_RETRIES)
    retries = 0
    for n in range(20):
        response = s3.put_object(Bucket="fault-bucket", Key=f"k{n}", Body=b"x" * 1000)
        retries += response["ResponseMetadata"]["RetryAttempts"]
    injected = faulty.faults.injected["s3-slowdown"]
    assert injected > 0
    assert retries == injected  # every injected fault cost the SDK exactly one retry, and nothing was lost
    assert len(s3.list_objects_v2(Bucket="fault-bucket")["Contents"]) == 20


def test_a_fault_has_the_status_and_error_code_aws_sends(faulty: EmbeddedAws) -> None:
    worker = _role(faulty, "fault-worker", "lambda.amazonaws.com")
    s3, ddb, kms = (_client(faulty, name, worker) for name in ("s3", "dynamodb", "kms"))
    expected = [
        ("s3-slowdown", lambda: s3.get_object(Bucket="fault-bucket", Key="nothing"), 503, "SlowDown"),
        ("s3-internal-error", lambda: s3.head_bucket(Bucket="fault-bucket"), 500, None),
        ("dynamodb-throughput", lambda: ddb.list_tables(), 400, "ProvisionedThroughputExceededException"),
        ("dynamodb-throttling", lambda: ddb.list_tables(), 400, "ThrottlingException"),
        ("kms-throttling", lambda: kms.list_keys(), 400, "ThrottlingException"),
    ]
    for name, call, status, code in expected:
        faulty.faults.set_rates({name: 0.999999})
        with pytest.raises(ClientError) as raised:
            call()
        error = raised.value.response
        assert error["ResponseMetadata"]["HTTPStatusCode"] == status, name
        if code is not None:  # HEAD answers carry no body, so botocore names the error by its status
            assert error["Error"]["Code"] == code, name


def test_lambda_throttles_state_machine_invokes_but_not_its_s3_reads(faulty: EmbeddedAws) -> None:
    machine = _role(faulty, "fault-machine", "states.amazonaws.com")
    faulty.faults.set_rates({"lambda-too-many-requests": 0.999999, "s3-slowdown": 0.999999})
    with pytest.raises(ClientError) as raised:
        _client(faulty, "lambda", machine).invoke(FunctionName="missing", Payload=b"{}")
    assert raised.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    # Step Functions retries its own ItemReader/ResultWriter reads inside the service: none reach our definitions.
    _client(faulty, "s3", machine).head_bucket(Bucket="fault-bucket")


def test_the_harness_is_never_faulted(faulty: EmbeddedAws) -> None:
    faulty.faults.set_rates({"s3-slowdown": 0.999999, "s3-internal-error": 0.999999})
    s3 = _client(faulty, "s3", None)
    for n in range(10):
        s3.put_object(Bucket="fault-bucket", Key=f"h{n}", Body=b"y")
    assert sum(faulty.faults.injected.values()) == 0


def test_unknown_fault_names_and_rates_are_refused(faulty: EmbeddedAws) -> None:
    with pytest.raises(ValueError, match="unknown fault s3-gremlins"):
        faulty.faults.set_rates({"s3-gremlins": 0.1})
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        faulty.faults.set_rates({"s3-slowdown": 1.5})


def test_the_engine_counts_the_retries_its_clients_made(faulty: EmbeddedAws, monkeypatch: pytest.MonkeyPatch) -> None:
    from vaultline import aws

    worker = _role(faulty, "fault-worker", "lambda.amazonaws.com")
    for name, value in worker.as_environment().items():
        monkeypatch.setenv(name, value)
    aws.reset_clients()
    before = aws.retry_counts().get("s3", 0)
    faulty.faults.set_rates({"s3-internal-error": 0.2}, seed=3)
    try:
        for n in range(15):
            aws.client("s3").put_object(Bucket="fault-bucket", Key=f"e{n}", Body=b"z")
    finally:
        faulty.faults.clear()
        aws.reset_clients()
    assert faulty.faults.injected["s3-internal-error"] > 0
    assert aws.retry_counts()["s3"] - before == faulty.faults.injected["s3-internal-error"]
