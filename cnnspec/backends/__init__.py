"""Backends that walk the resolved graph: PyTorch (module and source) and ONNX.

Each imports its framework lazily, so `import cnnspec` and `cnnspec check` stay light.
"""
