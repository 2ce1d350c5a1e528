"""The embedded AWS: moto's server on 127.0.0.1 running the synthesized stack with our real handlers.

Used by `make demo` and the e2e tests. It is a test harness, not a code path of the product: the CLI and the
handlers talk to it through plain boto3 configuration (``AWS_ENDPOINT_URL``), exactly as they talk to AWS.
"""

from vaultline_dev.embedded.deploy import DeployedStack, deploy_template
from vaultline_dev.embedded.server import EmbeddedAws

__all__ = ["DeployedStack", "EmbeddedAws", "deploy_template"]
