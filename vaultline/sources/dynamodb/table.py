"""Tables: ``dynamodb://`` URLs, clients (optionally through a role in another account), the full description
a recovery point keeps, and creating or checking a table from it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError
from pydantic import Field

from vaultline.aws import client, error_code, role_client
from vaultline.errors import SourceError, TargetError
from vaultline.model import VaultlineModel
from vaultline.sources.dynamodb.urls import TableRef


def table_client(ref: TableRef) -> Any:
    """A DynamoDB client for the table's region, acting as the table's role when one is named."""
    if not ref.role:
        return client("dynamodb", ref.region)
    try:
        return role_client("dynamodb", ref.role, ref.region)
    except SourceError as exc:
        raise SourceError(f"{ref.url}: {exc}") from None


def _code(exc: ClientError) -> str:
    return error_code(exc) or str(exc)


def _jsonable(value: Any) -> Any:
    # Descriptions carry datetimes; the manifest keeps them as ISO strings.
    return json.loads(json.dumps(value, default=str))


class TableSnapshot(VaultlineModel):
    """Everything about a table but its items, as the DynamoDB APIs returned it (JSON-safe)."""

    description: dict[str, Any]
    time_to_live: dict[str, Any] = Field(default_factory=dict)
    tags: list[dict[str, str]] = Field(default_factory=list)
    continuous_backups: dict[str, Any] = Field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.description["TableName"])

    @property
    def key_types(self) -> dict[str, str]:
        """Key attribute name -> S/N/B, partition key first."""
        types = {a["AttributeName"]: a["AttributeType"] for a in self.description["AttributeDefinitions"]}
        ordered = sorted(self.description["KeySchema"], key=lambda k: k["KeyType"] != "HASH")
        return {k["AttributeName"]: types[k["AttributeName"]] for k in ordered}

    @property
    def pitr_enabled(self) -> bool:
        pitr = self.continuous_backups.get("PointInTimeRecoveryDescription", {})
        return bool(pitr.get("PointInTimeRecoveryStatus") == "ENABLED")

    @property
    def provisioned_read_units(self) -> int:
        """The table's provisioned RCU; 0 for an on-demand table, which has none to take a share of."""
        if self.description.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST":
            return 0
        return int(self.description.get("ProvisionedThroughput", {}).get("ReadCapacityUnits") or 0)

    @property
    def size_bytes(self) -> int:
        return int(self.description.get("TableSizeBytes") or 0)


def describe_table(ddb: Any, name: str) -> TableSnapshot:
    """The full description of a table: schema, indexes, billing, TTL, streams, SSE, tags, PITR, protection."""
    try:
        description = ddb.describe_table(TableName=name)["Table"]
        ttl = ddb.describe_time_to_live(TableName=name).get("TimeToLiveDescription", {})
        backups = ddb.describe_continuous_backups(TableName=name).get("ContinuousBackupsDescription", {})
        tags: list[dict[str, str]] = []
        pages = ddb.get_paginator("list_tags_of_resource").paginate(ResourceArn=description["TableArn"])
        for page in pages:
            tags.extend(page.get("Tags", []))
    except ClientError as exc:
        if _code(exc) == "ResourceNotFoundException":
            raise SourceError(f"table {name} does not exist") from None
        raise SourceError(f"table {name}: {_code(exc)}") from None
    return TableSnapshot(
        description=_jsonable(description),
        time_to_live=_jsonable(ttl),
        tags=tags,
        continuous_backups=_jsonable(backups),
    )


def find_table(ddb: Any, name: str) -> dict[str, Any] | None:
    """DescribeTable's ``Table``, or None if there is no such table."""
    try:
        table: dict[str, Any] = ddb.describe_table(TableName=name)["Table"]
        return table
    except ClientError as exc:
        if _code(exc) == "ResourceNotFoundException":
            return None
        raise TargetError(f"table {name}: {_code(exc)}") from None


def key_signature(description: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(name, HASH/RANGE, S/N/B) of each key attribute: what must agree for items to fit a table."""
    types = {a["AttributeName"]: a["AttributeType"] for a in description["AttributeDefinitions"]}
    return sorted((k["AttributeName"], k["KeyType"], types[k["AttributeName"]]) for k in description["KeySchema"])


def check_key_schema(existing: dict[str, Any], snapshot: TableSnapshot) -> None:
    """Refuse (before anything is written) a target whose key schema differs from the backed-up table's."""
    have, want = key_signature(existing), key_signature(snapshot.description)
    if have != want:
        show = lambda sig: ", ".join(f"{n} {k} {t}" for n, k, t in sig)  # noqa: E731
        raise TargetError(
            f"table {existing['TableName']} has key schema [{show(have)}] but the recovery point of "
            f"{snapshot.name} has [{show(want)}]; nothing was written"
        )


def _throughput(description: dict[str, Any]) -> dict[str, int]:
    given = description.get("ProvisionedThroughput", {})
    return {
        "ReadCapacityUnits": max(1, int(given.get("ReadCapacityUnits") or 1)),
        "WriteCapacityUnits": max(1, int(given.get("WriteCapacityUnits") or 1)),
    }


def create_table_args(name: str, snapshot: TableSnapshot) -> dict[str, Any]:
    """CreateTable arguments that rebuild the saved table's schema, indexes, billing, stream, SSE, class and tags."""
    desc = snapshot.description
    # Tables created as provisioned often carry no BillingModeSummary: capacity units then tell the mode.
    provisioned = int(desc.get("ProvisionedThroughput", {}).get("ReadCapacityUnits") or 0) > 0
    mode = desc.get("BillingModeSummary", {}).get("BillingMode") or (
        "PROVISIONED" if provisioned else "PAY_PER_REQUEST"
    )
    args: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": desc["AttributeDefinitions"],
        "KeySchema": desc["KeySchema"],
        "BillingMode": mode,
    }
    if mode == "PROVISIONED":
        args["ProvisionedThroughput"] = _throughput(desc)
    gsis = []
    for index in desc.get("GlobalSecondaryIndexes", []):
        gsi: dict[str, Any] = {k: index[k] for k in ("IndexName", "KeySchema", "Projection")}
        if mode == "PROVISIONED":
            gsi["ProvisionedThroughput"] = _throughput(index)
        gsis.append(gsi)
    if gsis:
        args["GlobalSecondaryIndexes"] = gsis
    lsis = [{k: i[k] for k in ("IndexName", "KeySchema", "Projection")} for i in desc.get("LocalSecondaryIndexes", [])]
    if lsis:
        args["LocalSecondaryIndexes"] = lsis
    stream = desc.get("StreamSpecification")
    if stream and stream.get("StreamEnabled"):
        args["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    sse = desc.get("SSEDescription")
    if sse and sse.get("Status") in ("ENABLED", "ENABLING") and sse.get("SSEType") == "KMS":
        args["SSESpecification"] = {"Enabled": True, "SSEType": "KMS"}
        if sse.get("KMSMasterKeyArn"):
            args["SSESpecification"]["KMSMasterKeyId"] = sse["KMSMasterKeyArn"]
    table_class = desc.get("TableClassSummary", {}).get("TableClass")
    if table_class:
        args["TableClass"] = table_class
    if desc.get("DeletionProtectionEnabled"):
        args["DeletionProtectionEnabled"] = True
    tags = [t for t in snapshot.tags if not t["Key"].startswith("aws:")]  # aws: tags are reserved
    if tags:
        args["Tags"] = tags
    return args


def create_table(
    ddb: Any, name: str, snapshot: TableSnapshot, sleep: Callable[[float], None] = time.sleep, timeout: float = 900
) -> None:
    """Create ``name`` from the saved description, wait until it is ACTIVE, then restore TTL and PITR settings."""
    try:
        ddb.create_table(**create_table_args(name, snapshot))
    except ClientError as exc:
        raise TargetError(f"cannot create table {name}: {_code(exc)}: {exc.response['Error'].get('Message')}") from None
    waited = 0.0
    while (find_table(ddb, name) or {}).get("TableStatus") != "ACTIVE":
        if waited > timeout:
            raise TargetError(f"table {name} did not become ACTIVE within {timeout:.0f} s")
        sleep(5)
        waited += 5
    ttl = snapshot.time_to_live
    if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") and ttl.get("AttributeName"):
        ddb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]}
        )
    if snapshot.pitr_enabled:
        ddb.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
