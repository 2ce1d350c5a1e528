"""Sample DynamoDB tables for the demo, the tests and the benches: one way to create a keyed table and fill it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

BATCH_WRITE_LIMIT = 25  # BatchWriteItem's limit of put requests per call


def create_keyed_table(
    ddb: Any,
    name: str,
    hash_key: tuple[str, str] = ("pk", "S"),
    range_key: tuple[str, str] = ("sk", "N"),
    tags: Mapping[str, str] | None = None,
    pitr: bool = False,
) -> None:
    """An on-demand table keyed by ``hash_key`` and ``range_key`` (attribute name, type), with point-in-time
    recovery when ``pitr`` (the export mode needs it)."""
    ddb.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": hash_key[0], "KeyType": "HASH"},
            {"AttributeName": range_key[0], "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": hash_key[0], "AttributeType": hash_key[1]},
            {"AttributeName": range_key[0], "AttributeType": range_key[1]},
        ],
        BillingMode="PAY_PER_REQUEST",
        **({"Tags": [{"Key": k, "Value": v} for k, v in tags.items()]} if tags else {}),
    )
    if pitr:
        ddb.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )


def put_items(ddb: Any, name: str, items: Sequence[Mapping[str, Any]]) -> None:
    """Write ``items`` (DynamoDB JSON) in BatchWriteItem calls of the largest size it takes."""
    for start in range(0, len(items), BATCH_WRITE_LIMIT):
        batch = [{"PutRequest": {"Item": item}} for item in items[start : start + BATCH_WRITE_LIMIT]]
        ddb.batch_write_item(RequestItems={name: batch})
