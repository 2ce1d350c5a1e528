"""The `vaultline` command line, as a package.

``main`` is the entry point; ``parser`` assembles every command's arguments; the command modules (``vault``,
``backup``, ``restore``, ``plans``, ``maintenance``, and ``tables`` for DynamoDB) run them through the operations;
``output`` prints (consoles, sizes, progress, JSON), ``context`` finds the vault and stack a command names, and
``stack`` drives a deployed stack's state machines. No module imports ``main``.
"""
