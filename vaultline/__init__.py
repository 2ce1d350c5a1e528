"""Vaultline: deduplicated, compressed, encrypted backups of S3 buckets and DynamoDB tables."""

__version__ = "0.1.0"
FORMAT_VERSION = 2
