import sys

from tuneloom.cli import main

sys.exit(main())
