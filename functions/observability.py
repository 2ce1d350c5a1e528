"""Powertools Logger, Tracer and Metrics shared by every handler, and the one rule for naming errors.

Lambda reports an unhandled exception's class name as the error that Step Functions matches in Retry and Catch:
engine errors keep their names (IntegrityError, SourceError, ...); transient AWS and network failures are
renamed VaultlineRetryable so the state machine retries them with backoff.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer, single_metric
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError, ConnectionError, EndpointConnectionError, ReadTimeoutError

from vaultline.aws import error_code, retry_counts
from vaultline.errors import VaultlineRetryable
from vaultline.runs.settings import FunctionSettings

# The function's environment, validated once per cold start (vaultline/runs/settings.py); the steps read it.
settings = FunctionSettings.from_environment()
logger = Logger(service=settings.service_name)
# botocore is all the engine calls out through: the default patches every library the X-Ray SDK knows that is
# importable (sqlite3, requests, ...), importing each at every cold start to trace calls the engine never makes.
tracer = Tracer(patch_modules=("botocore",))
metrics = Metrics(namespace=settings.metrics_namespace)

_TRANSIENT_CODES = {
    "Throttling",
    "ThrottlingException",
    "SlowDown",
    "RequestTimeout",
    "ServiceUnavailable",
    "InternalError",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
}


@contextmanager
def transient_errors_retryable() -> Iterator[None]:
    """Re-raise transient AWS/network failures as VaultlineRetryable; let every other error keep its name."""
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        if code in _TRANSIENT_CODES:
            raise VaultlineRetryable(f"transient AWS error {code}: {exc}") from exc
        raise
    except (ConnectionError, EndpointConnectionError, ReadTimeoutError, TimeoutError) as exc:
        raise VaultlineRetryable(f"transient network error: {exc}") from exc


def publish_count(name: str, dimensions: dict[str, str], value: float = 1) -> None:
    """Publish one count with exactly ``dimensions`` (vaultline/runs/metrics.py builds them, as the alarms do):
    Powertools' ``metrics`` share one dimension set per invocation, so a metric with its own goes out alone."""
    with single_metric(
        name=name,
        unit=MetricUnit.Count,
        value=value,
        namespace=settings.metrics_namespace,
        default_dimensions=dimensions,
    ):
        pass


def lambda_handler(
    step: Callable[[dict[str, Any]], Any] | Callable[[dict[str, Any], Any], Any], *, with_context: bool = False
) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """Wrap a step (event dict -> pydantic result) with logging, tracing, metrics and error naming.

    ``with_context=True`` hands the step the Lambda context too (``step(event, context)``), for steps that budget
    their own time with ``context.get_remaining_time_in_millis``.
    """

    @logger.inject_lambda_context(log_event=False)
    @tracer.capture_lambda_handler(capture_response=False)
    @metrics.log_metrics(raise_on_empty_metrics=False)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        before = sum(retry_counts().values())
        try:
            with transient_errors_retryable():
                outcome = step(event, context) if with_context else step(event)  # type: ignore[call-arg]
                result: dict[str, Any] = outcome.model_dump(mode="json")
        finally:
            # Throttling and 5xx the SDK retried through: invisible in the result, the first sign of a hot source.
            retried = sum(retry_counts().values()) - before
            if retried:
                metrics.add_metric(name="AwsRetries", unit=MetricUnit.Count, value=retried)
                logger.info("AWS requests retried", extra={"aws_retries": retried})
        metrics.add_metric(name="StepsCompleted", unit=MetricUnit.Count, value=1)
        return result

    handler.__doc__ = step.__doc__
    return handler
