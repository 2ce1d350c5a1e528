"""The repository core: the vault format (config, keys, chunks, packs, index, manifests, locks, Object Lock).

Everything here knows the vault and its layout; nothing here knows where data comes from or goes to. Sources,
targets, operations and runs are built on it; it imports only `vaultline.storage`, `vaultline.errors` and
`vaultline.aws`.
"""
