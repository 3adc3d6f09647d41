"""Oracles for the ONNX tests: onnxruntime's output and the file's own weight count, computed from the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def run_onnxruntime(path: Path, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def file_weight_count(path: Path) -> int:
    """Elements of the distinct initialisers used as weights and biases (Conv, Gemm, BatchNorm, MatMul)."""
    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    used: set[str] = set()
    alias = {}  # exporters share an initialiser through Identity nodes
    for node in model.graph.node:
        if node.op_type == "Identity":
            alias[node.output[0]] = alias.get(node.input[0], node.input[0])
    for node in model.graph.node:
        slots = {"Conv": [1, 2], "Gemm": [1, 2], "BatchNormalization": [1, 2], "MatMul": [0, 1]}
        for i in slots.get(node.op_type, []):
            name = alias.get(node.input[i], node.input[i]) if i < len(node.input) else ""
            if name in inits:
                used.add(name)
    return sum(int(np.prod(inits[n].dims)) for n in used)


def export(
    module: torch.nn.Module, path: Path, opset: int, fold: bool = True, size: int = 224
) -> Path:
    x = torch.randn(1, 3, size, size)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (x,),
            str(path),
            dynamo=False,
            opset_version=opset,
            do_constant_folding=fold,
        )
    return path
