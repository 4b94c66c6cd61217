import sys

from tinyllm.cli.main import main

sys.exit(main())
