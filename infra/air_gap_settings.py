"""The settings of the vault-account mode (cdk.json context ``vaultAccount``), validated on the way in.

Absent (null), Vaultline deploys as one stack in one account. Present, the app has two stacks: the vault account's
(``VaultlineVault``: the vault bucket, its key, the policies that let the protected account only add, and the
maintenance role) and the protected account's (``Vaultline``: the backup and restore machines, writing to that
vault). docs/deploy.md ("A vault in its own account") gives the steps; docs/security.md the threat model.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

ACCOUNT_ID = r"^[0-9]{12}$"
REGION = r"^[a-z]{2}(-[a-z]+)+-[0-9]$"
KEY_ARN = r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]{36}$"
DEFAULT_VAULT_STACK_NAME = "VaultlineVault"


class AirGapSettings(BaseModel):
    """Where the vault lives and who may add to it."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    vault_account_id: str = Field(pattern=ACCOUNT_ID)
    protected_account_id: str = Field(pattern=ACCOUNT_ID)
    region: str = Field(pattern=REGION)
    vault_stack_name: str = DEFAULT_VAULT_STACK_NAME
    # The vault key's ARN (the vault stack's VaultKeyArn output), to grant the protected roles that key alone. KMS
    # chooses key ids, so it is unknown before the vault stack is deployed; without it they are granted the vault
    # account's keys (key/*), of which only the vault key's policy admits them.
    vault_key_arn: str | None = Field(default=None, pattern=KEY_ARN)

    @model_validator(mode="after")
    def _two_accounts(self) -> AirGapSettings:
        if self.vault_account_id == self.protected_account_id:
            raise ValueError("vaultAccountId and protectedAccountId must differ: the point is a second account")
        if self.vault_key_arn and self.vault_key_arn.split(":")[4] != self.vault_account_id:
            raise ValueError(f"vaultKeyArn {self.vault_key_arn} is not a key of the vault account")
        return self

    @property
    def bucket_name(self) -> str:
        """The vault bucket's name, fixed so that the protected stack can name it before it exists."""
        return f"vaultline-vault-{self.vault_account_id}-{self.region}"

    @property
    def access_log_bucket_name(self) -> str:
        return f"vaultline-vault-logs-{self.vault_account_id}-{self.region}"

    @property
    def bucket_arn(self) -> str:
        return f"arn:aws:s3:::{self.bucket_name}"

    @property
    def key_arn(self) -> str:
        """The vault key's ARN, or the pattern of the vault account's keys when it is not known yet."""
        return self.vault_key_arn or f"arn:aws:kms:{self.region}:{self.vault_account_id}:key/*"

    def protected_roles(self, stack_name: str) -> str:
        """The ARN pattern of the protected stack's roles (CloudFormation names them ``<stack>-<id>-<hash>``)."""
        return f"arn:aws:iam::{self.protected_account_id}:role/{stack_name}-*"
