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


def randomize_norms(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random batch-norm statistics and affine weights, so that outputs are far from zero and differences show."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return module


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
