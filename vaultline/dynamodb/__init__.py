"""DynamoDB tables as sources and restore targets: scan and export backups, table and item restores.

Usage::

    from vaultline.dynamodb import BackupOptions, run_table_backup, restore_table
    rp = run_table_backup(vault, "dynamodb://orders", BackupOptions(read_rate=100))
    restore_table(vault, rp, "dynamodb://orders-restored")
"""

from vaultline.dynamodb.backup import run_table_backup, segments_for
from vaultline.dynamodb.items import decode_item, encode_item, parse_key
from vaultline.dynamodb.model import BackupOptions, TableBackupInfo, table_info
from vaultline.dynamodb.restore import find_items, iter_table_items, restore_table
from vaultline.dynamodb.table import TableSnapshot, describe_table, is_table_url, parse_table_url

__all__ = [
    "BackupOptions",
    "TableBackupInfo",
    "TableSnapshot",
    "decode_item",
    "describe_table",
    "encode_item",
    "find_items",
    "is_table_url",
    "iter_table_items",
    "parse_key",
    "parse_table_url",
    "restore_table",
    "run_table_backup",
    "segments_for",
    "table_info",
]
