"""DynamoDB tables as a source: ``dynamodb://`` URLs and descriptions, item encoding, scan and export reading.

The table backup and restore operations live in `vaultline.operations.table_backup` and
`vaultline.operations.table_restore`.
"""
