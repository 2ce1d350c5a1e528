"""The embedded AWS's speed-ups (vaultline_dev/embedded/speedups.py) skip work and change no answer."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto.iam import models as iam_models
from moto.kms.models import kms_backends
from moto.stepfunctions.parser.api import InvalidDefinition
from moto.stepfunctions.parser.models import StepFunctionsParserBackend

from vaultline_dev.embedded.speedups import _Deferred

PASS_ONLY = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})


def test_an_account_lookup_builds_no_iam_backend_for_partitions_nothing_uses(aws: None) -> None:
    boto3.client("iam").list_roles()

    assert iam_models.get_account_id_from("AKIANOBODYHASTHISKEY") == "123456789012"

    assert sorted(dict.keys(iam_models.iam_backends["123456789012"])) == ["aws"]


def test_an_access_key_still_names_its_account(aws: None) -> None:
    iam = boto3.client("iam")
    iam.create_user(UserName="operator")
    key = iam.create_access_key(UserName="operator")["AccessKey"]["AccessKeyId"]

    assert iam_models.get_account_id_from(key) == "123456789012"


def test_a_symmetric_key_generates_no_private_key_until_one_is_read(kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    key = kms_backends["123456789012"]["us-east-1"].keys[key_id]

    assert isinstance(key.__dict__["_private_key"], _Deferred)
    assert kms.decrypt(CiphertextBlob=kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"])["Plaintext"] == b"x"
    assert key.private_key is key.private_key and not isinstance(key.private_key, _Deferred)


def test_an_asymmetric_key_signs_and_verifies_with_the_key_generated_on_first_use(kms: Any) -> None:
    key_id = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="RSA_2048")["KeyMetadata"]["KeyId"]
    signature = kms.sign(KeyId=key_id, Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")["Signature"]

    verified = kms.verify(KeyId=key_id, Message=b"m", Signature=signature, SigningAlgorithm="RSASSA_PSS_SHA_256")

    assert verified["SignatureValid"]
    assert b"PUBLIC KEY" not in kms.get_public_key(KeyId=key_id)["PublicKey"]  # DER, as AWS returns it


def test_an_invalid_definition_is_refused_every_time_and_a_valid_one_accepted_every_time(aws: None) -> None:
    # The in-process moto creates state machines without its parser; the embedded server validates with it.
    for _ in range(2):
        with pytest.raises(InvalidDefinition):
            StepFunctionsParserBackend._validate_definition(definition='{"StartAt": "Nowhere", "States": {}}')
        StepFunctionsParserBackend._validate_definition(definition=PASS_ONLY)
