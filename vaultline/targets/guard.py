"""A restore never writes into the vault it reads, nor into the bucket that holds the vault's access logs.

Restore target patterns are bucket-name wildcards (``vaultline-*`` by default), and CloudFormation names the vault
and log buckets after the stack, so a pattern can match them. IAM denies those writes (infra/functions.py); this
check refuses before anything is written, with an error that says why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vaultline.errors import TargetError

if TYPE_CHECKING:
    from vaultline.repository.vault import Vault


def refuse_vault_buckets(target_url: str, vault: Vault, access_log_bucket: str | None = None) -> None:
    """Raise TargetError if the s3:// ``target_url`` is the vault's bucket or its access-log bucket (which only a
    deployed stack knows: its functions' settings name it)."""
    if not target_url.startswith("s3://"):
        return
    # Only an S3 target has a bucket to compare: a directory restore does not import the S3 modules (botocore).
    from vaultline.sources.s3 import parse_s3_url
    from vaultline.storage.s3 import S3Storage

    bucket, _ = parse_s3_url(target_url)
    if isinstance(vault.storage, S3Storage) and bucket == vault.storage.bucket:
        raise TargetError(f"restore target {target_url} is in the vault's own bucket {bucket}: choose another bucket")
    if access_log_bucket and bucket == access_log_bucket:
        raise TargetError(f"restore target {target_url} is the vault's access-log bucket {bucket}: choose another")
