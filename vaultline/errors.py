"""Error types. The CLI turns each into one clear line and an exit code; handlers raise them by name
so that a state machine can Retry or Catch them."""


class VaultlineError(Exception):
    """Base of every error Vaultline raises on purpose."""

    exit_code = 1


class UsageError(VaultlineError):
    """The command line or an argument is malformed."""

    exit_code = 2


class VaultError(VaultlineError):
    """The vault is missing, unreadable or not a Vaultline vault."""


class VaultNotFound(VaultError):
    """No vault config exists at the given location."""


class VaultExists(VaultError):
    """`init` was asked to create a vault where one already exists."""


class FormatVersionError(VaultError):
    """The vault was written by a format version this build cannot read."""


class WrongKeyError(VaultError):
    """The key material does not open this vault."""


class KeyUnavailable(WrongKeyError):
    """A KMS key that wraps the vault key cannot be used now: disabled, pending deletion, denied or gone."""


class IntegrityError(VaultError):
    """Stored bytes do not match what the vault says they are (tampered, truncated or corrupt)."""


class ObjectMissing(VaultError):
    """An object the vault refers to does not exist in storage."""


class RecoveryPointNotFound(VaultlineError):
    """No recovery point matches the given id."""


class SourceError(VaultlineError):
    """A source (bucket, table, directory) cannot be read."""


class TargetError(VaultlineError):
    """A restore target cannot be written."""


class VaultlineRetryable(VaultlineError):
    """A transient failure (throttling, a dropped connection): the state machine retries the step by this name."""


class ObjectLockRefused(UsageError):
    """A change of the vault's Object Lock settings would lower its protection (its mode, or below its bounds)."""
