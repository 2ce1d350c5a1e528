"""What a user does with a vault, one module per operation: backup, restore, check, prune, forget, drill, stats.

Each operation runs in one process (the CLI's path); the runs in `vaultline.runs` call the same pieces per step.
"""
