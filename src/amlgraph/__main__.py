import sys

from amlgraph.cli import main

sys.exit(main())
