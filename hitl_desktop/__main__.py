import sys

from hitl_desktop.cli import main

sys.exit(main())
