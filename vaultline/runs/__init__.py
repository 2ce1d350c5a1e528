"""The steps of the backup and restore state machines, as plain functions the Lambda handlers call.

Large work never rides in a state-machine payload: work lists, batches and partial results live in the vault's
staging area (``staging/<run id>/``), and each step returns a small typed summary.
"""
