import sys

from rez_cli.cli.app import main

sys.exit(main())
