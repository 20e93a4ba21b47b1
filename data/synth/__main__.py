"""``python -m data.synth``: build the synthetic corpus (see :mod:`data.synth.corpus`)."""

import sys

from data.synth.corpus import main

if __name__ == "__main__":
    sys.exit(main())
