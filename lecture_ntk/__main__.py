"""``python -m lecture_ntk run|build``: the same commands as ``python -m lecture_ntk.course``."""
import sys

from lecture_ntk.course import main

sys.exit(main())
