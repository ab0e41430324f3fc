"""`python -m demo` (`make demo`) and `python -m demo live` (`make demo-up`); see demo/."""

from __future__ import annotations

import sys

from demo import story

if __name__ == "__main__":
    if sys.argv[1:]:
        sys.exit(f"usage: python -m demo (no arguments); got {' '.join(sys.argv[1:])}")
    sys.exit(story.main())
