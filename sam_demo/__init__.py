"""The demo engine: what the Gradio app needs beyond the ``sam_onnx`` wrapper.

``sam_onnx`` is the reusable library (model files, sessions, prompts, pre- and
postprocessing, the stateless predictor, masks, exports, CLI). This package
holds what only the interactive demo uses, and depends on ``sam_onnx``, never
the other way round:

- :mod:`sam_demo.editor`: one user's objects, prompts and undo/redo (pure values).
- :mod:`sam_demo.service`: the shared, thread-safe engine (image intake, caches, decoding).
- :mod:`sam_demo.overlay`: drawing masks and markers on the display image.
- :mod:`sam_demo.cache`: the byte-bounded LRU cache.
"""
