"""sam_serve: programs that serve parts of SAM 2.1 to other machines (beside the wrapper, not inside it).

- :mod:`sam_serve.ray_serve`: the image encoder as an autoscaling Ray Serve
  deployment (``python -m sam_serve.ray_serve``; needs ``requirements-serve.txt``).
  The app reaches it over HTTP with :class:`sam_onnx.encoders.remote.RemoteEncoder`;
  both sides speak :mod:`sam_onnx.encoders.wire`.

It builds on :mod:`sam_onnx` (an encoder loaded alone, :func:`sam_onnx.encoders.from_pretrained`);
``sam_onnx`` never imports it (tests/test_layering.py).
"""
