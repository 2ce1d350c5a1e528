"""Vaultline's AWS CDK infrastructure: one construct per concern, composed by :class:`infra.stack.VaultlineStack`.

Build the app with :func:`infra.app.build_app` (what `app.py` and the infrastructure tests use).
"""
