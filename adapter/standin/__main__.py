import sys

from adapter.standin.cli import main

sys.exit(main())
