import sys

from hf_spatial.cli import main

sys.exit(main())
