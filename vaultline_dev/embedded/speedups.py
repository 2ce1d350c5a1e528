"""Where moto spends time on work no client can observe: skipped here, with the behaviour left exactly as it was.

Unlike ``service_gaps.py`` (moto behaving unlike AWS), nothing here changes an answer. Each e2e test deploys the
stack afresh, so what moto does per deploy is paid some eighty times per run (docs/embedded-aws.md, "Speed"):

- Every request's account is found by scanning the IAM backend of each partition of each account for the caller's
  access key. moto's backend dictionaries create a backend on first lookup, and an IAM backend loads AWS's 1,500
  managed policies (the embedded AWS needs them: the stack attaches ``AWSLambdaBasicExecutionRole``). So the scan
  built six IAM backends per account, five of them for partitions (``aws-cn``, ``aws-us-gov``, ...) that nothing
  here uses, and every reset rebuilt them all: about 2.5 s per deploy. A backend that does not exist yet holds no
  access keys, so the scan now skips it instead of creating it; the answer is the same.
- Every KMS key, symmetric ones included, generates an RSA-2048 private key at creation (20 to 60 ms each) that
  only the asymmetric operations (Sign, Verify, GetPublicKey) read. It is generated on first read instead.
- CreateStateMachine validates the definition with moto's ANTLR parser, about 0.3 s for each of our four
  definitions, and every deploy sends the same four. The parse depends on the text alone, so a text that
  validated once is not parsed again; a text that fails is parsed (and refused) every time.
"""

from __future__ import annotations

from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.iam import models as iam_models
from moto.kms import models as kms_models
from moto.kms.models import Key
from moto.stepfunctions.parser.models import StepFunctionsParserBackend
from moto.utilities.utils import PARTITION_NAMES

_original_account_id_from = iam_models.get_account_id_from
_original_generate_private_key = kms_models.generate_private_key
_original_validate_definition = StepFunctionsParserBackend.__dict__["_validate_definition"]
_valid_definitions: set[str] = set()


def _account_id_from(access_key: str) -> str:
    # list() as moto's own does: other request threads may add accounts while this one scans.
    for account_id, account in list(iam_models.iam_backends.items()):
        for partition in PARTITION_NAMES:
            backend = dict.get(account, partition)  # bypasses the creating __getitem__
            if backend is not None and access_key in backend.access_keys:
                return str(account_id)
    return DEFAULT_ACCOUNT_ID


class _Deferred:
    """A private key not generated yet: the key spec it will be generated for."""

    def __init__(self, key_spec: str) -> None:
        self.key_spec = key_spec


def _deferred_private_key(key_spec: str) -> _Deferred:
    return _Deferred(key_spec)


def _get_private_key(self: Key) -> Any:
    value = self.__dict__.get("_private_key")
    if isinstance(value, _Deferred):
        value = self.__dict__["_private_key"] = _original_generate_private_key(value.key_spec)
    return value


def _set_private_key(self: Key, value: Any) -> None:
    self.__dict__["_private_key"] = value


def _validate_definition(definition: str) -> None:
    if definition not in _valid_definitions:
        _original_validate_definition.__func__(definition=definition)
        _valid_definitions.add(definition)


def install() -> None:
    """Skip the unobservable work (idempotent)."""
    iam_models.get_account_id_from = _account_id_from
    kms_models.generate_private_key = _deferred_private_key  # type: ignore[assignment]
    Key.private_key = property(_get_private_key, _set_private_key)  # type: ignore[assignment]
    StepFunctionsParserBackend._validate_definition = staticmethod(_validate_definition)  # type: ignore[method-assign]


def uninstall() -> None:
    """Give moto its own code back. The ``private_key`` property stays: keys made meanwhile hold a deferred key,
    and with moto's generator back in place the property only stores and returns what ``__init__`` made."""
    iam_models.get_account_id_from = _original_account_id_from
    kms_models.generate_private_key = _original_generate_private_key
    StepFunctionsParserBackend._validate_definition = _original_validate_definition  # type: ignore[method-assign]
