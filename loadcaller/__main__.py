import sys

from loadcaller.cli import main

sys.exit(main())
