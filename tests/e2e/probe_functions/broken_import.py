"""A handler module whose import fails, as every handler's did with a layer missing aws_xray_sdk."""

import a_package_no_layer_ships  # noqa: F401


def handler(event: object, context: object) -> None:
    return None
