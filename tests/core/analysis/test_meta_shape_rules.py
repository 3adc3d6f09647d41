"""Shape rules of the table's meta pass against torch's own meta kernels, on random configurations.

Truth: the same call through torch on meta tensors (``nn.functional`` itself); a rule must give the same shape,
dtype and strides, and refuse (by handing the call to torch) whatever torch refuses.
"""

from __future__ import annotations

import timm
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnviz.core.analysis.graph import layer_graph
from cnnviz.core.analysis.shapes import _SHAPE_RULES
from cnnviz.core.analysis.summary import summarize


def outcome(fn, *args, **kwargs):
    try:
        out = fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the refusal is the result compared
        return ("raises", type(exc))
    return (tuple(out.shape), out.dtype, out.stride(), out.device.type)


DTYPES = [torch.float32, torch.float16, torch.float64]


@settings(max_examples=150, deadline=None)
@given(
    c=st.integers(1, 6),
    spatial=st.lists(st.integers(1, 5), min_size=0, max_size=3),
    batch=st.integers(1, 3),
    channels_last=st.booleans(),
    dtypes=st.tuples(*[st.sampled_from(DTYPES) for _ in range(5)]),
    sizes=st.tuples(*[st.integers(-1, 1) for _ in range(4)]),
    optional=st.tuples(st.booleans(), st.booleans()),
    training=st.sampled_from([False, True, 0]),
    keywords=st.booleans(),
)
def test_batch_norm_rule_is_torchs_meta_result(
    c, spatial, batch, channels_last, dtypes, sizes, optional, training, keywords
) -> None:
    x = torch.empty((batch, c, *spatial), device="meta", dtype=dtypes[0])
    if channels_last and x.dim() == 4:
        x = x.to(memory_format=torch.channels_last)
    # mostly per-channel tensors of the input's dtype, sometimes the wrong length or type
    common = [d if i % 2 else dtypes[0] for i, d in enumerate(dtypes[1:])]
    stats = [
        torch.empty(max(c + s, 0), device="meta", dtype=d)
        for s, d in zip(sizes, common, strict=True)
    ]
    mean, var, weight, bias = stats
    weight = weight if optional[0] else None
    bias = bias if optional[1] else None
    rule = _SHAPE_RULES[F.batch_norm]
    if keywords:
        args, kwargs = (x, mean, var), {"weight": weight, "bias": bias, "training": training}
    else:
        args, kwargs = (x, mean, var, weight, bias, training), {}
    assert outcome(rule, *args, **kwargs) == outcome(F.batch_norm, *args, **kwargs)


def test_timm_batch_norm_act_table_matches_a_real_forward() -> None:
    torch.manual_seed(0)
    model = timm.create_model("mobilenetv3_small_050", pretrained=False).eval()
    graph = layer_graph(model)
    assert any(
        n.fx_node is not None and n.fx_node.target is F.batch_norm for n in graph.nodes
    )  # the rule is exercised: timm's BatchNormAct calls F.batch_norm
    rows = {r.name: r.output_shape for r in summarize(model, (3, 96, 80)).rows}
    seen: dict[str, tuple[int, ...]] = {}
    handles = [
        m.register_forward_hook(
            lambda _m, _a, out, n=n: seen.__setitem__(n, tuple(out.shape)) or None
        )
        for n, m in model.named_modules()
        if n
    ]
    with torch.no_grad():
        model(torch.randn(1, 3, 96, 80))
    for h in handles:
        h.remove()
    bn = [n for n in seen if n.endswith("bn1") and n in rows]
    assert bn and all(rows[n] == seen[n] for n in bn)
