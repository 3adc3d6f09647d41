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
from cnnviz.core.analysis.shape_rules import ASK_TORCH, METHOD_RULES, MODULE_RULES, SHAPE_RULES
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
    rule = SHAPE_RULES[F.batch_norm]
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


def module_outcome(module, x):
    """torch's own result of ``module`` on meta tensors: the truth a module rule must equal."""
    return outcome(module.to("meta"), x)


def rule_outcome(module, x):
    """The module rule's result; None when it hands the call to torch."""
    out = MODULE_RULES[type(module)](module, (x,), {})
    return None if out is ASK_TORCH else outcome(lambda: out)


def meta_input(shape, dtype, layout):
    """A meta tensor laid out as ``layout`` says: plain (False), channels-last (True) or ``"slice"``, a slice
    along dim 1 of a larger tensor (as ``chunk`` gives ShuffleNet; contiguous but for dim 0 at batch one)."""
    if layout == "slice" and len(shape) > 1:
        whole = torch.empty((shape[0], shape[1] + 3, *shape[2:]), device="meta", dtype=dtype)
        return whole[:, 2 : 2 + shape[1]]
    x = torch.empty(shape, device="meta", dtype=dtype)
    if layout is True and x.dim() == 4:
        x = x.to(memory_format=torch.channels_last)
    return x


LAYOUTS = st.sampled_from([False, True, "slice"])


def check_module_rule(module, x) -> bool:
    """The rule equals torch, or leaves the call to torch; torch's refusals are always left to torch.

    Returns whether the rule answered (so a test can make sure the plain case is really exercised).
    """
    mine, truth = rule_outcome(module, x), module_outcome(module, x)
    if mine is None:
        return False
    assert truth[0] != "raises", (module, tuple(x.shape), truth)
    assert mine == truth, (module, tuple(x.shape))
    return True


SIZES = st.integers(1, 9)
answered: dict[str, int] = {}


@settings(max_examples=300, deadline=None)
@given(
    n=st.sampled_from([1, 2, 3]),
    c_in=st.integers(1, 4),
    c_out=st.integers(1, 4),
    groups=st.sampled_from([1, 2]),
    kernel=st.integers(1, 4),
    stride=st.integers(1, 3),
    padding=st.one_of(st.integers(0, 3), st.sampled_from(["same", "valid"])),
    dilation=st.integers(1, 2),
    bias=st.booleans(),
    sizes=st.lists(SIZES, min_size=3, max_size=3),
    extra_dim=st.sampled_from([0, 0, 0, -1]),
    dtype=st.sampled_from(DTYPES),
    channels_last=LAYOUTS,
    padding_mode=st.sampled_from(["zeros", "zeros", "reflect"]),
)
def test_conv_rule_is_torchs_meta_result(
    n, c_in, c_out, groups, kernel, stride, padding, dilation, bias, sizes, extra_dim, dtype,
    channels_last, padding_mode,
) -> None:  # fmt: skip
    conv_type = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}[n]
    if padding == "same":
        stride = 1
    try:
        module = conv_type(
            c_in * groups, c_out * groups, kernel, stride, padding, dilation, groups, bias,
            padding_mode,
        )  # fmt: skip
    except Exception:  # noqa: BLE001 - a configuration torch refuses to build is no case
        return
    # sometimes a wrong channel count or an unbatched input, which torch refuses or treats apart
    channels = c_in * groups + (1 if extra_dim and c_in > 1 else 0)
    shape = (1, channels, *sizes[:n]) if extra_dim == 0 else (channels, *sizes[:n])
    x = meta_input(shape, dtype, channels_last).to(dtype)
    module = module.to(dtype)
    if check_module_rule(module, x):
        answered["conv"] = answered.get("conv", 0) + 1
    # the functional form (timm's same-padding convolutions call F.conv2d with graph constants)
    weight = torch.empty_like(module.weight, device="meta")
    b = None if module.bias is None else torch.empty_like(module.bias, device="meta")
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[n]
    args = (x, weight, b, module.stride, module.padding, module.dilation, module.groups)
    if padding_mode == "zeros":
        assert outcome(SHAPE_RULES[fn], *args) == outcome(fn, *args)


@settings(max_examples=300, deadline=None)
@given(
    n=st.sampled_from([1, 2]),
    kind=st.sampled_from(["max", "avg"]),
    kernel=st.integers(1, 4),
    stride=st.one_of(st.none(), st.integers(1, 3)),
    padding=st.integers(0, 2),
    dilation=st.integers(1, 2),
    ceil_mode=st.booleans(),
    sizes=st.lists(SIZES, min_size=3, max_size=3),
    channels=st.integers(1, 3),
    dtype=st.sampled_from(DTYPES),
    channels_last=LAYOUTS,
)
def test_pool_rule_is_torchs_meta_result(
    n, kind, kernel, stride, padding, dilation, ceil_mode, sizes, channels, dtype, channels_last
) -> None:
    if kind == "max":
        pool_type = {1: torch.nn.MaxPool1d, 2: torch.nn.MaxPool2d}[n]
        module = pool_type(kernel, stride, padding, dilation, ceil_mode=ceil_mode)
    else:
        pool_type = {1: torch.nn.AvgPool1d, 2: torch.nn.AvgPool2d}[n]
        module = pool_type(kernel, stride, padding, ceil_mode=ceil_mode)
    x = meta_input((1, channels, *sizes[:n]), dtype, channels_last)
    if check_module_rule(module, x):
        answered["pool"] = answered.get("pool", 0) + 1


@settings(max_examples=200, deadline=None)
@given(
    n=st.sampled_from([1, 2, 3]),
    kind=st.sampled_from(["avg", "max"]),
    output=st.lists(st.one_of(st.none(), st.integers(1, 5)), min_size=3, max_size=3),
    as_int=st.booleans(),
    sizes=st.lists(SIZES, min_size=3, max_size=3),
    batched=st.booleans(),
    dtype=st.sampled_from(DTYPES),
    channels_last=LAYOUTS,
)
def test_adaptive_pool_rule_is_torchs_meta_result(
    n, kind, output, as_int, sizes, batched, dtype, channels_last
) -> None:
    names = {"avg": "AdaptiveAvgPool", "max": "AdaptiveMaxPool"}
    module = getattr(torch.nn, f"{names[kind]}{n}d")(
        (output[0] or 1) if as_int else tuple(output[:n])
    )
    shape = (1, 2, *sizes[:n]) if batched else (2, *sizes[:n])
    x = meta_input(shape, dtype, channels_last)
    if check_module_rule(module, x):
        answered["adaptive"] = answered.get("adaptive", 0) + 1
    if kind == "avg":
        fn = getattr(F, f"adaptive_avg_pool{n}d")
        assert outcome(SHAPE_RULES[fn], x, module.output_size) == outcome(fn, x, module.output_size)


@settings(max_examples=200, deadline=None)
@given(
    lead=st.lists(st.integers(1, 4), min_size=0, max_size=3),
    features=st.integers(1, 5),
    out=st.integers(1, 5),
    mismatch=st.booleans(),
    bias=st.booleans(),
    dtypes=st.tuples(st.sampled_from(DTYPES), st.sampled_from(DTYPES)),
    transposed=st.booleans(),
)
def test_linear_rule_is_torchs_meta_result(
    lead, features, out, mismatch, bias, dtypes, transposed
) -> None:
    module = torch.nn.Linear(features, out, bias=bias).to(dtypes[1])
    x = torch.empty((*lead, features + int(mismatch)), device="meta", dtype=dtypes[0])
    if transposed and x.dim() >= 2:
        x = x.transpose(-1, -2).contiguous().transpose(-1, -2)
    if check_module_rule(module, x):
        answered["linear"] = answered.get("linear", 0) + 1
    w = torch.empty_like(module.weight, device="meta")
    b = None if module.bias is None else torch.empty_like(module.bias, device="meta")
    assert outcome(SHAPE_RULES[F.linear], x, w, b) == outcome(F.linear, x, w, b)


REDUCTIONS = ["mean", "sum", "amax", "amin"]


@settings(max_examples=300, deadline=None)
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=4),
    dims=st.lists(st.integers(-5, 4), min_size=0, max_size=3),
    as_int=st.booleans(),
    keepdim=st.sampled_from([False, True, None]),
    by_keyword=st.booleans(),
    name=st.sampled_from(REDUCTIONS),
    method=st.booleans(),
    dtype=st.sampled_from([*DTYPES, torch.int64]),
    channels_last=LAYOUTS,
)
def test_reduction_rules_are_torchs_meta_result(
    shape, dims, as_int, keepdim, by_keyword, name, method, dtype, channels_last
) -> None:
    x = meta_input(tuple(shape), dtype, channels_last)
    dim = (dims[0] if dims else 0) if as_int else tuple(dims)
    args, kwargs = ((), {"dim": dim}) if by_keyword else ((dim,), {})
    if keepdim is not None:
        kwargs["keepdim"] = keepdim
    if method:
        rule, truth = METHOD_RULES[name], getattr(torch.Tensor, name)
    else:
        rule, truth = SHAPE_RULES[getattr(torch, name)], getattr(torch, name)
    assert outcome(rule, x, *args, **kwargs) == outcome(truth, x, *args, **kwargs)


def test_rules_answer_the_plain_cases() -> None:
    """The property tests above really exercise each rule (not only its hand-over to torch)."""
    x = torch.empty((1, 8, 14, 14), device="meta")
    for module in (
        torch.nn.Conv2d(8, 4, 3, 2, 1),
        torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True),
        torch.nn.AvgPool2d(2),
        torch.nn.AdaptiveAvgPool2d((1, None)),
    ):
        assert rule_outcome(module, x) is not None
        assert check_module_rule(module, x)
    assert check_module_rule(torch.nn.Linear(14, 3), x)
    # a channel slice of one picture (ShuffleNet's chunk) is laid out as a fresh tensor would be
    sliced = meta_input((1, 8, 14, 14), torch.float32, "slice")
    assert not sliced.is_contiguous() or sliced.stride() != x.stride()
    assert check_module_rule(torch.nn.Conv2d(8, 4, 3), sliced)
    assert check_module_rule(torch.nn.MaxPool2d(2), sliced)


@settings(max_examples=300, deadline=None)
@given(
    base=st.lists(st.integers(1, 4), min_size=1, max_size=4),
    parts=st.lists(
        st.tuples(st.integers(0, 3), st.sampled_from(DTYPES), st.booleans()), min_size=1, max_size=3
    ),
    dim=st.integers(-5, 4),
    odd_rank=st.booleans(),
    by_keyword=st.booleans(),
    as_tuple=st.booleans(),
    channels_last=LAYOUTS,
    concat=st.booleans(),
)
def test_cat_rule_is_torchs_meta_result(
    base, parts, dim, odd_rank, by_keyword, as_tuple, channels_last, concat
) -> None:
    tensors = []
    for i, (size, dtype, mismatch) in enumerate(parts):
        shape = list(base)
        axis = dim % len(shape) if -len(shape) <= dim < len(shape) else 0
        shape[axis] = size
        if mismatch and len(shape) > 1:
            shape[(axis + 1) % len(shape)] += 1  # a size that differs off the joined axis
        if odd_rank and i == len(parts) - 1:
            shape = [*shape, 1]
        tensors.append(meta_input(tuple(shape), dtype if i else parts[0][1], channels_last))
    seq = tuple(tensors) if as_tuple else tensors
    fn = torch.concat if concat else torch.cat
    args, kwargs = ((seq,), {"dim": dim}) if by_keyword else ((seq, dim), {})
    assert outcome(SHAPE_RULES[fn], *args, **kwargs) == outcome(fn, *args, **kwargs)


@settings(max_examples=300, deadline=None)
@given(
    shape=st.lists(st.integers(0, 4), min_size=0, max_size=4),
    order=st.randoms(use_true_random=False),
    step=st.integers(1, 2),
    dtype=st.sampled_from(DTYPES),
    memory_format=st.sampled_from([None, torch.contiguous_format, torch.channels_last]),
)
def test_contiguous_rule_is_torchs_meta_result(shape, order, step, dtype, memory_format) -> None:
    """Permuted and strided views (ShuffleNet's transposed shuffle) and plain tensors alike; the rule returns
    the tensor itself exactly when torch does."""
    x = torch.empty(shape, device="meta", dtype=dtype)
    dims = list(range(len(shape)))
    order.shuffle(dims)
    x = x.permute(dims)
    if x.dim():
        x = x[..., ::step]
    args = () if memory_format is None else (memory_format,)
    rule = METHOD_RULES["contiguous"]
    mine, truth = outcome(rule, x, *args), outcome(lambda t, *a: t.contiguous(*a), x, *args)
    assert mine == truth
    if mine[0] != "raises":
        assert (rule(x, *args) is x) == (x.contiguous(*args) is x)
