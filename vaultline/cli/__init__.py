"""The `vaultline` command line, as a package: the parser and commands, their output helpers, the stack client."""
