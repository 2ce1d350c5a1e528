"""S3 Object Lock as AWS enforces it on PutObjectRetention, where moto 5.2.5 forgives.

moto applies any retention it is sent: a GOVERNANCE retain-until date moved earlier, a COMPLIANCE one shortened or
switched to GOVERNANCE, with or without ``x-amz-bypass-governance-retention``. AWS refuses (403 ``AccessDenied``)
every change that weakens a retention still in force: in COMPLIANCE mode always, in GOVERNANCE mode unless the
request carries the bypass header (and then IAM also requires ``s3:BypassGovernanceRetention``, which
``iam_requests.py`` checks). Extending a retention, or setting one where none is in force, is allowed to anyone with
``s3:PutObjectRetention``. Installed with the other gaps (``service_gaps.install``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from moto.s3.exceptions import S3ClientError
from moto.s3.responses import S3Response

_original_put_object_retention = S3Response.put_object_retention


class RetentionLocked(S3ClientError):
    """AWS's answer to a retention change that Object Lock forbids."""

    def __init__(self, why: str) -> None:
        super().__init__("AccessDenied", f"Access Denied because object protected by object lock ({why})")


def _instant(value: Any) -> datetime | None:
    if not value:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def weakening(current_mode: str | None, current_until: Any, mode: str | None, until: Any, now: datetime) -> str | None:
    """Why setting (``mode``, ``until``) over the retention in force weakens it, or None if it does not."""
    in_force = _instant(current_until)
    if not current_mode or in_force is None or in_force <= now:
        return None
    wanted = _instant(until)
    if wanted is None or wanted < in_force:
        return f"retain-until {in_force:%Y-%m-%dT%H:%M:%SZ} may not move earlier"
    if current_mode == "COMPLIANCE" and mode != "COMPLIANCE":
        return "a COMPLIANCE retention may not change mode"
    return None


def _put_object_retention(self: S3Response) -> Any:
    bucket = self.backend.get_bucket(self.bucket_name)
    if bucket.object_lock_enabled:
        key = self.backend.get_object(self.bucket_name, self.parse_key_name(), version_id=self._get_param("versionId"))
        if key is not None:
            mode, until = self._mode_until_from_body()
            why = weakening(key.lock_mode, key.lock_until, mode, until, datetime.now(UTC))
            bypass = self.headers.get("x-amz-bypass-governance-retention", "").lower() == "true"
            if why and (key.lock_mode == "COMPLIANCE" or not bypass):
                raise RetentionLocked(why)
    return _original_put_object_retention(self)


def install() -> None:
    """Refuse retention changes that weaken a retention in force (idempotent)."""
    S3Response.put_object_retention = _put_object_retention  # type: ignore[method-assign]


def uninstall() -> None:
    """Give moto its own behaviour back."""
    S3Response.put_object_retention = _original_put_object_retention  # type: ignore[method-assign]
