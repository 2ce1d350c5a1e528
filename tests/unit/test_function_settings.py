"""The functions' environment: one model that infra writes and the handlers read back."""

from __future__ import annotations

import pytest

from vaultline.errors import VaultError
from vaultline.repository.object_lock import ObjectLockSettings
from vaultline.runs.settings import FunctionSettings


def test_what_infra_sets_is_what_a_handler_reads_back() -> None:
    sent = FunctionSettings(
        vault_url="s3://vault-bucket",
        vault_encryption="none",
        vault_create=False,
        access_log_bucket="logs-bucket",
        object_lock_mode="COMPLIANCE",
        object_lock_days=30,
    )
    environment = sent.environment()
    assert environment == {
        "VAULT_URL": "s3://vault-bucket",
        "VAULT_ENCRYPTION": "none",
        "VAULT_CREATE": "false",
        "VAULT_ACCESS_LOG_BUCKET": "logs-bucket",
        "VAULT_OBJECT_LOCK_MODE": "COMPLIANCE",
        "VAULT_OBJECT_LOCK_DAYS": "30",
    }
    assert FunctionSettings.from_environment(environment) == sent
    assert sorted(environment) == sorted(set(environment) & set(FunctionSettings.variable_names()))


def test_outside_the_stack_the_defaults_apply_and_the_vault_url_is_required_when_used() -> None:
    settings = FunctionSettings.from_environment({"UNRELATED": "x"})
    assert (settings.service_name, settings.metrics_namespace, settings.vault_create) == (
        "vaultline",
        "Vaultline",
        True,
    )
    with pytest.raises(VaultError, match="VAULT_URL must be set"):
        settings.require_vault_url()


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, (False, None)),
        ({"VAULT_OBJECT_LOCK_DAYS": ""}, (False, None)),
        ({"VAULT_OBJECT_LOCK_DAYS": "0", "VAULT_OBJECT_LOCK_MODE": "COMPLIANCE"}, (True, None)),
        (
            {"VAULT_OBJECT_LOCK_DAYS": "7", "VAULT_OBJECT_LOCK_MODE": ""},
            (True, ObjectLockSettings.bounded("GOVERNANCE", 7)),
        ),
        (
            {"VAULT_OBJECT_LOCK_DAYS": "7", "VAULT_OBJECT_LOCK_MIN_DAYS": "3", "VAULT_OBJECT_LOCK_MAX_DAYS": "60"},
            (True, ObjectLockSettings(version=2, mode="GOVERNANCE", days=7, min_days=3, max_days=60)),
        ),
    ],
)
def test_object_lock_from_the_environment(
    environment: dict[str, str], expected: tuple[bool, ObjectLockSettings | None]
) -> None:
    assert FunctionSettings.from_environment(environment).object_lock() == expected


def test_lock_bounds_that_exclude_the_days_are_an_error_that_names_them() -> None:
    settings = FunctionSettings.from_environment({"VAULT_OBJECT_LOCK_DAYS": "7", "VAULT_OBJECT_LOCK_MIN_DAYS": "10"})
    with pytest.raises(VaultError, match=r"VAULT_OBJECT_LOCK_MIN_DAYS.*outside"):
        settings.object_lock()


def test_a_malformed_variable_is_an_error_that_names_it() -> None:
    with pytest.raises(VaultError, match="VAULT_OBJECT_LOCK_DAYS"):
        FunctionSettings.from_environment({"VAULT_OBJECT_LOCK_DAYS": "thirty"})
    with pytest.raises(VaultError, match="VAULT_ENCRYPTION"):
        FunctionSettings.from_environment({"VAULT_ENCRYPTION": "rot13"})
