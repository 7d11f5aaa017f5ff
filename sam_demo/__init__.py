"""The demo engine: what the Gradio app needs beyond the ``sam_onnx`` wrapper.

``sam_onnx`` is the reusable library (model files, onnxruntime sessions,
prompts, pre- and postprocessing, the stateless predictor, masks, exports,
CLI). This package holds what only the interactive demo uses, and depends on
``sam_onnx``, never the other way round (``tests/test_layering.py``):

- :mod:`sam_demo.editor`: one user's objects, prompts and undo/redo (pure values).
- :mod:`sam_demo.service`: the shared, thread-safe engine: image intake, caches,
  decoding, the stateless ``/segment`` API, segment everything.
- :mod:`sam_demo.view`: what the UI draws after an edit (overlay, object rows, thumbnails).
- :mod:`sam_demo.bundle`: the export bundle and the prompts file.
- :mod:`sam_demo.jobs`: long jobs: estimates, measured speeds, cancel flags.
- :mod:`sam_demo.fair`: fair turns on the CPU between users (one user's job never holds another's click).
- :mod:`sam_demo.limits`: bounds on what callers send, checked on the raw value before anything is built.
- :mod:`sam_demo.overlay`: drawing masks and markers (pure numpy).
- :mod:`sam_demo.cache`: the byte-bounded LRU cache.
- :mod:`sam_demo.gradio_guard`, :mod:`sam_demo.page`: Gradio hardening (bounded requests, edits in
  order per tab, a message for every failed event); the page's CSS, script and help.
"""
