import sys

from vaultline.cli import main

sys.exit(main())
