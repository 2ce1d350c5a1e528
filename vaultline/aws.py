"""boto3 clients configured once: standard credential chain and AWS_ENDPOINT_URL, adaptive retries; and clients
that read through a role in another account.

boto3 and botocore (its session, and even its exceptions) are imported by the first client made, not with this
module: they are a fifth of a second and about 20 MiB of memory, which a command on a local vault (and
``vaultline --help``) never needs, and the KMS key slots import this module whether or not the vault uses KMS.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from vaultline.errors import SourceError

if TYPE_CHECKING:
    import botocore.session
    from botocore.config import Config
    from botocore.credentials import DeferredRefreshableCredentials
    from botocore.exceptions import ClientError

_config: Config | None = None
SESSION_NAME = "vaultline"
_lock = threading.Lock()
_loader_lock = threading.Lock()
_clients: dict[tuple[str, str | None, str | None], Any] = {}
_retries: dict[str, int] = {}


def error_code(exc: ClientError) -> str:
    """The AWS error code of a failed call (``NoSuchKey``, ``AccessDenied``, ``404``...), or "" when it has none."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def _count_retries(parsed: dict[str, Any] | None = None, model: Any = None, **_: Any) -> None:
    """botocore's after-call hook: add the attempts the SDK retried (throttling, 5xx) to this process's count."""
    attempts = int(((parsed or {}).get("ResponseMetadata") or {}).get("RetryAttempts") or 0)
    if attempts:
        service = getattr(getattr(model, "service_model", None), "service_name", "aws")
        with _lock:
            _retries[service] = _retries.get(service, 0) + attempts


def retry_counts() -> dict[str, int]:
    """How many times this process's clients retried a request, by service: the cost of throttling and 5xx."""
    with _lock:
        return dict(_retries)


_loader: Any = None


def _botocore_session() -> botocore.session.Session:
    """A new botocore session sharing this process's one data loader: each session would otherwise parse the SDK's
    JSON data (endpoints, partitions, retry rules, service models) again, about 0.1 s per client made."""
    import botocore.session

    global _loader
    session = botocore.session.Session()
    with _loader_lock:
        if _loader is None:
            _loader = session.get_component("data_loader")
        else:
            session.register_component("data_loader", _loader)
    return session


def _counted(made: Any) -> Any:
    made.meta.events.register("after-call", _count_retries)
    return made


def _client_config() -> Config:
    from botocore.config import Config

    global _config
    if _config is None:
        _config = Config(retries={"mode": "adaptive", "max_attempts": 10}, max_pool_connections=32)
    return _config


def client(service: str, region: str | None = None) -> Any:
    """A shared, thread-safe boto3 client for ``service`` (boto3 clients are thread-safe, sessions are not)."""
    import boto3.session

    key = (service, region, None)
    with _lock:
        if key not in _clients:
            session = boto3.session.Session(botocore_session=_botocore_session())
            _clients[key] = _counted(session.client(service, region_name=region, config=_client_config()))  # type: ignore[call-overload]
        return _clients[key]


def role_client(service: str, role_arn: str, region: str | None = None) -> Any:
    """A shared client for ``service`` acting as ``role_arn`` (a source in another account).

    The role is assumed once up front, so a role we may not assume fails here with a clear error rather than on
    the first read. Credentials refresh themselves before they expire: a CLI backup of a large bucket outlives
    the one-hour session an AssumeRole grants.
    """
    import boto3.session
    from botocore.credentials import DeferredRefreshableCredentials

    key = (service, region, role_arn)
    with _lock:
        cached = _clients.get(key)
    if cached is not None:
        return cached
    credentials = DeferredRefreshableCredentials(
        refresh_using=lambda: _assume(role_arn, region), method="sts-assume-role"
    )
    credentials.get_frozen_credentials()  # fail now, naming the role, if it cannot be assumed
    botocore_session = _botocore_session()
    # Put the role first in the session's own resolver chain, so nothing (environment, profile) shadows it.
    botocore_session.get_component("credential_provider").insert_before("env", _provided(credentials))
    made = _counted(
        boto3.session.Session(botocore_session=botocore_session).client(  # type: ignore[call-overload]
            service, region_name=region, config=_client_config()
        )
    )
    with _lock:
        return _clients.setdefault(key, made)


def _provided(credentials: DeferredRefreshableCredentials) -> Any:
    """A credential provider that hands the resolver credentials made elsewhere (the refreshing role credentials
    above); its class is made here, as botocore's base class is imported only once a role is used."""
    from botocore.credentials import CredentialProvider

    class Provided(CredentialProvider):
        METHOD = "vaultline-assume-role"

        def load(self) -> DeferredRefreshableCredentials:
            return credentials

    return Provided()


def _assume(role_arn: str, region: str | None) -> dict[str, str]:
    from botocore.exceptions import ClientError  # with the client, as the module's docstring says

    try:
        creds = client("sts", region).assume_role(RoleArn=role_arn, RoleSessionName=SESSION_NAME)["Credentials"]
    except ClientError as exc:
        code = error_code(exc) or str(exc)
        raise SourceError(f"cannot assume role {role_arn} ({code})") from None
    return {
        "access_key": creds["AccessKeyId"],
        "secret_key": creds["SecretAccessKey"],
        "token": creds["SessionToken"],
        "expiry_time": creds["Expiration"].isoformat(),
    }


def reset_clients() -> None:
    """Forget cached clients (tests that switch endpoints or mocks call this)."""
    with _lock:
        _clients.clear()
