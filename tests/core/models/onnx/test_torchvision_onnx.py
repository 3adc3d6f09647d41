"""torchvision networks exported to ONNX: the converted module reproduces onnxruntime, the table speaks the file."""

from __future__ import annotations

import pytest
import torch
import torchvision
from onnx_oracles import export, file_weight_count, onnx, randomize_norms, run_onnxruntime

from cnnviz.core.analysis.summary import summarize
from cnnviz.core.models import load_model


def _check(tmp_path, name: str, opset: int, fold: bool, randomize: bool = True):
    torch.manual_seed(0)
    net = getattr(torchvision.models, name)(weights=None)
    net = (randomize_norms(net) if randomize else net).eval()
    path = export(net, tmp_path / f"{name}.onnx", opset, fold)
    loaded = load_model(path)
    assert loaded.source == "onnx" and loaded.input_shape == (3, 224, 224)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ours = loaded.module(x).numpy()
    truth = run_onnxruntime(path, x)
    assert ours.shape == truth.shape
    assert abs(truth).max() > 1e-2  # a real signal, not a vanishing one
    assert abs(ours - truth).max() < 1e-4

    summary = summarize(loaded)
    assert summary.total_params == file_weight_count(path)
    torch_total = sum(p.numel() for p in net.parameters())
    graph = onnx.load(str(path)).graph
    initializers = {t.name for t in graph.initializer}
    shared = any(n.op_type == "Identity" and n.input[0] in initializers for n in graph.node)
    if not fold and not shared:
        assert summary.total_params == torch_total
    else:  # folded batch norms, or equal tensors (fresh zero biases) stored once by the exporter
        assert summary.total_params <= torch_total

    # every layer row is named after a node of the file
    names = loaded.metadata["onnx_names"]
    graph_names = {n.name for n in onnx.load(str(path)).graph.node}
    module_rows = [r for r in summary.rows if r.kind == "module"]
    assert module_rows and all(names[r.name] in graph_names for r in module_rows)
    convs = {n.name for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"}
    assert convs == {names[r.name] for r in module_rows if r.type == "Conv2d"}

    # the table's shapes are those of a real forward
    seen: dict[str, tuple[int, ...]] = {}

    def record(key: str, out: torch.Tensor) -> None:
        seen[key] = tuple(out.shape)

    modules = dict(loaded.module.named_modules())
    handles = [
        modules[r.name].register_forward_hook(lambda _m, _i, out, key=r.name: record(key, out))
        for r in module_rows
    ]
    try:
        with torch.no_grad():
            loaded.module(x)
    finally:
        for h in handles:
            h.remove()
    assert seen == {r.name: r.output_shape for r in module_rows}
    return path


def test_resnet18_opset19_folded(tmp_path):
    # Fresh batch norms fold into equal biases, which the exporter shares through Identity nodes: the file
    # onnx2torch stops on ("Converter is not implemented (Identity, version=19)").
    path = _check(tmp_path, "resnet18", 19, True, randomize=False)
    assert any(n.op_type == "Identity" for n in onnx.load(str(path)).graph.node)


@pytest.mark.slow
@pytest.mark.parametrize("opset", [13, 17, 19])
@pytest.mark.parametrize("fold", [True, False])
@pytest.mark.parametrize(
    "name", ["resnet18", "mobilenet_v2", "mobilenet_v3_small", "squeezenet1_0", "densenet121"]
)
def test_torchvision_exports(tmp_path, name, opset, fold):
    _check(tmp_path, name, opset, fold)
