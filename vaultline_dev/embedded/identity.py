"""Who makes a call in the embedded AWS: the harness (the deploying administrator) or a role of the template.

On AWS a Lambda function, a state machine and a schedule each act with temporary credentials of the role the
template gives them; the embedded AWS hands out the same kind, by ``sts:AssumeRole`` against the embedded endpoint,
so that every call they make is authorized against that role. The harness itself (the deploy, the tests' setup,
the CLI a user runs) acts as the account's administrator with the long-lived fake credentials of ``server.py``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import boto3


@dataclass(frozen=True)
class RoleCredentials:
    """Temporary credentials of one role session, as Lambda puts them in a function's environment."""

    access_key_id: str
    secret_access_key: str
    session_token: str

    def session(self, region_name: str | None = None) -> boto3.session.Session:
        """A boto3 session acting as this role session (what a service's own calls are signed with)."""
        return boto3.session.Session(
            self.access_key_id, self.secret_access_key, self.session_token, region_name=region_name
        )

    def as_environment(self) -> dict[str, str]:
        """The variables Lambda sets for the execution role's credentials."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
        }


def role_credentials(role_arn: str, session_name: str, endpoint: str | None = None) -> RoleCredentials:
    """Assume ``role_arn`` in the embedded AWS (as the harness) and return the session's credentials.

    ``endpoint`` defaults to ``AWS_ENDPOINT_URL``, which the embedded AWS sets while it is open.
    """
    sts = boto3.session.Session().client(
        "sts", endpoint_url=endpoint or os.environ["AWS_ENDPOINT_URL"], region_name=os.environ.get("AWS_REGION")
    )
    issued = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name[:64])["Credentials"]
    return RoleCredentials(issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"])
