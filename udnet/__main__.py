import sys

from udnet.cli import main

sys.exit(main())
