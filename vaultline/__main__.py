import sys

from vaultline.cli.main import main

sys.exit(main())
