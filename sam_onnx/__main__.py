"""``python -m sam_onnx``: see :mod:`sam_onnx.cli`."""

import sys

from .cli import main

sys.exit(main())
