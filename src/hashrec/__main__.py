import sys

from hashrec.cli import main

sys.exit(main())
