"""Each definition of ocp.metrics against hand-computed values, the degenerate cases, and the pitfalls of
../shared/notes/metric-pitfalls.md (each test names the pitfall it pins down)."""

import math

import pytest
import torch

from ocp import metrics as M
from ocp.dispatch_count import count_dispatch


def t(values, device, dtype):
    return torch.tensor(values, device=device, dtype=dtype)


# ---------------------------------------------------------------------------------------------------------------
# Dormancy
# ---------------------------------------------------------------------------------------------------------------


def test_dormancy_scores_hand_computed(device, dtype):
    # per-unit E|a| = [2, 0, 1]; layer mean = 1
    s = M.dormancy_scores(t([[1.0, 0.0, -2.0], [-3.0, 0.0, 0.0]], device, dtype))
    assert s.dtype == dtype and s.device.type == device.type
    assert s.tolist() == [2.0, 0.0, 1.0]


def test_dormancy_scores_non_integer(device, dtype):
    # per-unit E|a| = [2, 4], layer mean 3 -> [2/3, 4/3]
    s = M.dormancy_scores(t([[1.0, 2.0], [3.0, 6.0]], device, dtype))
    torch.testing.assert_close(s, t([2 / 3, 4 / 3], device, dtype))


def test_dormancy_scores_conv_mean_over_batch_and_space(device, dtype):
    # (N=2, C=2, L=2): unit 0 values 1,1,1,1 -> E|a| = 1; unit 1 values 0,0,0,12 -> E|a| = 3; layer mean 2
    acts = t([[[1.0, -1.0], [0.0, 0.0]], [[1.0, 1.0], [0.0, 12.0]]], device, dtype)
    assert M.dormancy_scores(acts).tolist() == [0.5, 1.5]


def test_dormancy_uses_absolute_value_of_what_it_is_given():
    # Pitfall "pre- or post-activation": the score is over the tensor passed in. Passing the pre-activation of a ReLU
    # unit (negative everywhere) would call a dead unit live; the post-activation gives the exact 0.
    pre = torch.tensor([[-1.0, 2.0], [-3.0, 2.0]])
    assert M.dormancy_scores(pre)[0] > 0
    assert M.dormancy_scores(torch.relu(pre))[0] == 0


def test_degenerate_layer_is_nan_and_all_dormant(device, dtype):
    # Pitfall "eps": no eps, so an all-zero layer is 0/0 = NaN, and the mask still counts every unit as dormant.
    s = M.dormancy_scores(torch.zeros(5, 3, device=device, dtype=dtype))
    assert torch.isnan(s).all()
    assert M.dormant_mask(s, 0.0).tolist() == [True, True, True]
    assert M.dormant_mask(s, 0.1).tolist() == [True, True, True]


def test_dormant_mask_at_threshold_is_inclusive(device, dtype):
    s = t([0.5, 0.0, 1.5, 1e-30], device, dtype)
    assert M.dormant_mask(s, 0.5).tolist() == [True, True, False, True]
    # tau = 0 is exact zero, not isclose: a score of 1e-30 is not dormant.
    assert M.dormant_mask(s, 0.0).tolist() == [False, True, False, False]


def test_float32_underflow_never_fakes_an_exact_zero():
    # Pitfall "floating point": H * 1e-44 / 1e30 underflows float32, but the unit is not silent.
    acts = torch.tensor([[1e-44, 1e30]], dtype=torch.float32)
    s = M.dormancy_scores(acts)
    assert s[0] > 0 and s[0] == torch.finfo(torch.float32).smallest_normal * torch.finfo(torch.float32).eps
    assert M.dormant_mask(s, 0.0).tolist() == [False, False]
    # A naive float32 implementation does produce the fake zero:
    naive = acts.abs().mean(0) / acts.abs().mean(0).mean()
    assert naive[0] == 0


def test_float64_underflow_never_fakes_an_exact_zero():
    acts = torch.tensor([[5e-324, 1e300]], dtype=torch.float64)
    assert M.dormant_mask(M.dormancy_scores(acts), 0.0).tolist() == [False, False]


def test_float32_large_sums_do_not_overflow():
    acts = torch.full((4, 2), 3e38, dtype=torch.float32)  # a float32 sum would be inf
    assert M.dormancy_scores(acts).tolist() == [1.0, 1.0]


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.ones(3), "dimensions"),
        (torch.ones(0, 3), "empty"),
        (torch.ones(3, 0), "empty"),
        (torch.tensor([[1.0, float("nan")]]), "NaN or inf"),
        (torch.tensor([[1.0, float("inf")]]), "NaN or inf"),
        (torch.ones(2, 2, dtype=torch.int64), "floating-point"),
        ([[1.0, 2.0]], "torch.Tensor"),
    ],
)
def test_dormancy_bad_input(bad, message):
    with pytest.raises(ValueError, match=message):
        M.dormancy_scores(bad)


def test_masks_deferred_are_the_masks_with_a_witness_and_no_host_read(device):
    scores = torch.tensor([0.0, 0.025, 0.5, 1.5, 2.0], device=device)
    count = count_dispatch(lambda: M.masks_deferred(scores, [0.0, 0.025, 1.5]))
    assert count.host_syncs == 0
    masks, witness = M.masks_deferred(scores, [0.0, 0.025, 1.5])
    assert [m.tolist() for m in masks] == [
        [True, False, False, False, False],
        [True, True, False, False, False],
        [True, True, True, True, False],
    ]
    assert witness.dtype == torch.float64 and witness.item() == 0.0
    assert [M.dormant_mask(scores, t).tolist() for t in (0.0, 0.025, 1.5)] == [m.tolist() for m in masks]
    all_nan = torch.full((3,), math.nan, device=device)  # a degenerate layer: every unit flagged
    masks, witness = M.masks_deferred(all_nan, [0.0, 0.1])
    assert [m.tolist() for m in masks] == [[True] * 3] * 2 and witness.item() == 0.0
    huge = torch.tensor([1e308, 1e308, 0.0], dtype=torch.float64, device=device)  # finite, though their sum is not
    masks, witness = M.masks_deferred(huge, [0.0])
    assert masks[0].tolist() == [False, False, True] and witness.item() == 0.0
    assert M.dormant_mask(huge).tolist() == [False, False, True]
    for bad in ([math.nan, 1.0], [math.inf, 1.0], [-math.inf, 1.0], [math.nan, math.inf], [math.inf, math.inf]):
        assert not math.isfinite(M.masks_deferred(torch.tensor(bad, device=device), [0.0])[1].item())


def test_mask_rejects_inf_naming_the_argument():
    with pytest.raises(ValueError, match="^scores contains inf$"):
        M.dormant_mask(torch.tensor([math.inf, 1.0]))
    with pytest.raises(ValueError, match="^z contains inf$"):
        M.zero_gradient_mask(torch.tensor([math.nan, math.inf]))  # inf is named before the partial NaN


def test_mask_rejects_partial_nan_and_bad_tau():
    with pytest.raises(ValueError, match="some units but not all"):
        M.dormant_mask(torch.tensor([float("nan"), 1.0]))
    with pytest.raises(ValueError, match="tau"):
        M.dormant_mask(torch.tensor([1.0]), -0.1)
    with pytest.raises(ValueError, match="tau"):
        M.dormant_mask(torch.tensor([1.0]), float("nan"))
    with pytest.raises(ValueError, match="1-D"):
        M.dormant_mask(torch.ones(2, 2))


# ---------------------------------------------------------------------------------------------------------------
# Gradient scores
# ---------------------------------------------------------------------------------------------------------------


def test_magi_linear_and_conv(device, dtype):
    g = t([[1.0, -2.0, 3.0], [0.0, 0.0, 0.0]], device, dtype)
    assert M.magi(g).tolist() == [2.0, 0.0]
    conv = torch.arange(8, device=device, dtype=dtype).reshape(2, 1, 2, 2) - 2  # unit 0: -2,-1,0,1 ; unit 1: 2..5
    assert M.magi(conv).tolist() == [1.0, 3.5]


def test_gradient_scores_and_masks(device, dtype):
    z = M.gradient_scores(t([3.0, 0.0, 1.0, 0.0], device, dtype))  # mean 1
    assert z.tolist() == [3.0, 0.0, 1.0, 0.0]
    assert M.zero_gradient_mask(z, 0.0).tolist() == [False, True, False, True]
    assert M.zero_gradient_mask(z, 1.0).tolist() == [False, True, True, True]
    all_zero = M.gradient_scores(torch.zeros(3, device=device, dtype=dtype))
    assert torch.isnan(all_zero).all() and M.zero_gradient_mask(all_zero).all()


def test_absolute_zero_gradient_mask_is_strict_and_unnormalised():
    G = torch.tensor([0.04, 0.05, 0.06])
    assert M.absolute_zero_gradient_mask(G, 0.05).tolist() == [True, False, False]
    # Scaling the loss by 10 changes the absolute verdict but not the normalised one (why ours is the default).
    assert M.absolute_zero_gradient_mask(10 * G, 0.05).tolist() == [False, False, False]
    torch.testing.assert_close(M.gradient_scores(10 * G), M.gradient_scores(G))


def test_gradient_scores_reject_negative_values():
    with pytest.raises(ValueError, match="non-negative"):
        M.gradient_scores(torch.tensor([1.0, -1.0]))


@pytest.mark.parametrize(
    "G, message",
    [
        (torch.tensor([1.0, float("nan")]), "NaN or inf"),
        (torch.tensor([float("inf"), 1.0]), "NaN or inf"),
        (torch.tensor([1e308, 1e308], dtype=torch.float64), "overflows float64"),
        (torch.tensor([float("nan"), -1.0]), "NaN or inf"),  # the NaN is named before the sign
    ],
)
def test_gradient_scores_bad_values(G, message):
    with pytest.raises(ValueError, match=message):
        M.gradient_scores(G)


def test_magi_needs_finite_unit_sums_only():
    # MAGI never sums across units: a float64 gradient whose layer total overflows still has exact per-unit values.
    wg = torch.full((2, 1), 1e308, dtype=torch.float64)  # layer total 2e308 = inf
    assert M.magi(wg).tolist() == [1e308, 1e308]
    assert M.magi(torch.full((2, 10), 1e307, dtype=torch.float64)).tolist() == [1e307, 1e307]
    with pytest.raises(ValueError, match="overflows float64"):
        M.gradient_scores(M.magi(wg))  # the normalised score needs the total
    with pytest.raises(ValueError, match="non-negative"):
        M.gradient_scores(torch.tensor([-1e308, -1e308], dtype=torch.float64))
    with pytest.raises(ValueError, match="overflows float64"):
        M.dormancy_scores(torch.full((1, 2), 1e308, dtype=torch.float64))


def test_finiteness_check_is_exact_when_the_sum_overflows():
    # The finiteness check sums first: a finite input whose float32 sum is inf must still pass, and +inf and -inf
    # (whose sum is NaN, not inf) must still fail.
    big = torch.tensor([3e38, 3e38, 1.0])
    assert M.absolute_zero_gradient_mask(big, 2.0).tolist() == [False, False, True]
    assert M.gradient_scores(big).tolist() == pytest.approx([1.5, 1.5, 3 / 6e38])
    with pytest.raises(ValueError, match="NaN or inf"):
        M.absolute_zero_gradient_mask(torch.tensor([float("inf"), float("-inf")]), 1.0)


@pytest.mark.parametrize(
    "deferred, checked, x, witness_value, scores",
    [
        # |x| sums per unit 3 and 1 → total 4, scores 2·3/4 and 2·1/4.
        (M.dormancy_scores_deferred, M.dormancy_scores, [[1.0, -1.0], [-2.0, 0.0]], 4.0, [1.5, 0.5]),
        (
            M.activation_gradient_scores_deferred,
            M.activation_gradient_scores,
            [[1.0, -1.0], [-2.0, 0.0]],
            4.0,
            [1.5, 0.5],
        ),
        # MAGI of rows (1, -1) and (2, 0): 2/2 and 2/2; the total of the |w| sums is 4.
        (M.magi_deferred, M.magi, [[1.0, -1.0], [2.0, 0.0]], 4.0, [1.0, 1.0]),
        # G = (1, 3): total 4, scores 2·1/4 and 2·3/4.
        (M.gradient_scores_deferred, M.gradient_scores, [1.0, 3.0], 4.0, [0.5, 1.5]),
        # An all-zero layer: NaN scores (shown as 7), a finite witness (the checked metric returns them too).
        (M.dormancy_scores_deferred, M.dormancy_scores, [[0.0, 0.0]], 0.0, [7.0, 7.0]),
    ],
)
def test_deferred_forms_equal_the_checked_metrics_with_a_finite_witness(deferred, checked, x, witness_value, scores):
    x = torch.tensor(x)
    result, witness = deferred(x)
    assert witness.dtype == torch.float64 and witness.item() == witness_value
    assert result.nan_to_num(7.0).tolist() == scores
    assert torch.equal(result.nan_to_num(7.0), checked(x).nan_to_num(7.0))


def test_deferred_witness_is_not_finite_exactly_where_the_checked_metric_must_act():
    nan = torch.tensor([[float("nan"), 1.0]])
    assert math.isnan(M.dormancy_scores_deferred(nan)[1].item())  # checked: raises "contains NaN or inf"
    overflow = torch.full((8, 1), 2.0**126)  # the float32 per-unit sum 2^129 overflows
    assert math.isinf(M.dormancy_scores_deferred(overflow)[1].item())
    assert M.dormancy_scores(overflow).tolist() == [1.0]  # checked: summed again in float64
    assert math.isinf(M.gradient_scores_deferred(torch.tensor([-1.0, 2.0]))[1].item())  # checked: "non-negative"
    names, values = M.weight_statistics_deferred(torch.tensor([[3.0, -4.0]]), torch.tensor([0.0]))
    assert names == ["weight_abs_mean", "weight_l2", "weight_abs_max", "bias_abs_mean", "bias_l2", "bias_abs_max"]
    assert values.tolist() == [3.5, 5.0, 4.0, 0.0, 0.0, 0.0] and values.dtype == torch.float64


def test_layer_scores_of_two_layers_hand_computed(device, dtype):
    # Layer A (2 units): |acts| sums (3, 1), total 4 -> (1.5, 0.5); |grads| sums (2, 2) -> (1, 1); weight gradient
    # rows (1, -1), (2, 0): MAGI (1, 1), z (1, 1).
    # Layer B (3 units): |acts| sums (0, 2, 4), total 6 -> (0, 1, 2); zero gradients -> NaN (0/0); weight gradient
    # rows (3), (0), (-3): MAGI (3, 0, 3), z (1.5, 0, 1.5).
    acts = [t([[1.0, -1.0], [-2.0, 0.0]], device, dtype), t([[0.0, 2.0, -4.0]], device, dtype)]
    grads = [t([[1.0, 1.0], [-1.0, 1.0]], device, dtype), t([[0.0, 0.0, 0.0]], device, dtype)]
    weight_grads = [t([[1.0, -1.0], [2.0, 0.0]], device, dtype), t([[3.0], [0.0], [-3.0]], device, dtype)]
    scores, witness = M.layer_scores_deferred([M.unit_abs_sums(a) for a in acts], grads, weight_grads)
    a, b = scores
    assert a.dormancy.tolist() == [1.5, 0.5] and b.dormancy.tolist() == [0.0, 1.0, 2.0]
    assert a.activation_gradient.tolist() == [1.0, 1.0] and torch.isnan(b.activation_gradient).all()
    assert a.magi.tolist() == [1.0, 1.0] and b.magi.tolist() == [3.0, 0.0, 3.0]
    assert a.zero_gradient.tolist() == [1.0, 1.0] and b.zero_gradient.tolist() == [1.5, 0.0, 1.5]
    assert all(x.dtype == dtype and x.device.type == device.type for s in scores for x in vars(s).values())
    # dormancy totals, activation-gradient totals, MAGI totals; B's zero gradients are a finite 0/0, not an error
    assert witness.dtype == torch.float64 and witness.tolist() == [4.0, 6.0, 4.0, 0.0, 2.0, 6.0]


def _per_layer(acts, grads, weight_grads):
    G = [M.magi(w) for w in weight_grads]
    return [
        (M.dormancy_scores(a), m, M.gradient_scores(m), M.activation_gradient_scores(g))
        for a, g, m in zip(acts, grads, G)
    ]


def _bitwise_equal(x, y):
    """Same dtype and the same bits, a NaN for a NaN (a bfloat16 NaN's payload depends on how it was converted)."""
    if x.dtype != y.dtype or x.shape != y.shape or not torch.equal(torch.isnan(x), torch.isnan(y)):
        return False
    numbers = ~torch.isnan(x)
    return torch.equal(x[numbers].view(torch.uint8), y[numbers].view(torch.uint8))


def _draw(gen, shape, scale, dtype, device):
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(dtype).to(device)


def test_layer_scores_equal_the_per_layer_metrics_bit_for_bit(device):
    # The batched forms only regroup elementwise steps; every sum runs per layer as before. Random layers of mixed
    # widths (past 128, so the vectors sit at odd offsets of the batched tensor), dtypes (one model mixing bfloat16,
    # float16, float32 and float64), conv shapes and scales down to float32 underflow, with dead units and whole
    # layers at zero: every score equals the per-layer metric's, bit for bit (the sign of a zero too).
    gen = torch.Generator().manual_seed(0)
    dtypes = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
    for case in range(80):
        acts, grads, weight_grads = [], [], []
        for layer in range(1 + case % 4):
            dtype = dtypes[(case + layer) % 4] if case % 2 else torch.float32
            width, fan_in = (1, 6, 129, 300, 64)[(case + layer) % 5], (1, 17, 64, 3)[layer % 4]
            shape = (int(torch.randint(1, 300, (1,), generator=gen)), width) + ((3, 2) if case % 5 == 0 else ())
            scale = 10.0 ** (-20, -3, 0, 3)[case % 4] if dtype in (torch.float32, torch.float64) else 1.0

            a = _draw(gen, shape, scale, dtype, device)
            a[:, : width // 3] = 0  # dead units
            if case % 7 == 3:
                a.zero_()  # a degenerate layer: NaN scores
            acts.append(a.clamp_min(0) if layer % 2 else a)
            grads.append(_draw(gen, shape, scale, dtype, device) * (case % 11 != 5))  # sometimes all zero
            weight_grads.append(_draw(gen, (width, fan_in), scale, dtype, device))
        scores, witness = M.layer_scores_deferred([M.unit_abs_sums(a) for a in acts], grads, weight_grads)
        assert torch.isfinite(witness).all() and witness.device.type == device.type
        for got, want in zip(scores, _per_layer(acts, grads, weight_grads)):
            for x, y in zip((got.dormancy, got.magi, got.zero_gradient, got.activation_gradient), want):
                assert _bitwise_equal(x, y), case


def test_layer_scores_take_the_dtype_of_the_layer_outputs_when_the_sums_have_another():
    # Under autocast a sum of float16 values is float32; the dormancy scores keep the outputs' dtype, as the
    # single-layer metric gives them. Sums (3, 1): scores (1.5, 0.5).
    sums = torch.tensor([3.0, 1.0])
    scores, _ = M.layer_scores_deferred([sums], [torch.ones(2, 2)], [torch.ones(2, 3)], acts_dtypes=[torch.float16])
    assert scores[0].dormancy.dtype == torch.float16 and scores[0].dormancy.tolist() == [1.5, 0.5]
    with pytest.raises(ValueError, match="acts_dtypes has 2 entries for 1 layers"):
        M.layer_scores_deferred([sums], [torch.ones(2, 2)], [torch.ones(2, 3)], acts_dtypes=[torch.float16] * 2)
    with pytest.raises(ValueError, match="acts_sums must have 1 dimensions"):
        M.layer_scores_deferred([torch.ones(2, 2)], [torch.ones(2, 2)], [torch.ones(2, 3)])


def test_layer_scores_witness_names_the_layer_and_score_that_needs_the_checked_metric():
    acts = [torch.ones(4, 2), torch.ones(4, 3)]
    grads = [torch.ones(4, 2), torch.ones(4, 3)]
    grads[1][0, 0] = math.nan
    weight_grads = [torch.ones(2, 5), torch.ones(3, 5)]
    weight_grads[0][0, 0] = math.inf
    _, witness = M.layer_scores_deferred([M.unit_abs_sums(a) for a in acts], grads, weight_grads)
    finite = torch.isfinite(witness).tolist()
    assert finite == [True, True, True, False, False, True]  # B's activation gradient, A's MAGI
    with pytest.raises(ValueError, match="one acts sum, acts gradient and weight gradient per layer, got 2, 1"):
        M.layer_scores_deferred([M.unit_abs_sums(a) for a in acts], grads[:1], weight_grads)
    with pytest.raises(ValueError, match="layer 1: acts have 3 units, their gradient 3, the weight gradient 2 rows"):
        M.layer_scores_deferred([M.unit_abs_sums(a) for a in acts], grads, [weight_grads[0], torch.ones(2, 5)])


def test_weight_statistics_of_layers_equal_each_layer_on_its_own():
    W1, b1 = torch.tensor([[3.0, -4.0]]), torch.tensor([0.5])
    W2 = torch.tensor([[1.0, -1.0], [1.0, 1.0]], dtype=torch.float64)
    R2 = torch.zeros(2, 2, dtype=torch.float32)  # a reference in another dtype is converted to the weight's
    names, values = M.weight_statistics_of_layers_deferred([(W1, b1, None, torch.zeros(1)), (W2, None, R2, None)])
    assert names == [
        ["weight_abs_mean", "weight_l2", "weight_abs_max", "bias_abs_mean", "bias_l2", "bias_abs_max", "bias_distance"],
        ["weight_abs_mean", "weight_l2", "weight_abs_max", "weight_distance"],
    ]
    # W1: |w| mean 3.5, norm 5, max 4; b1: 0.5 each, 0.5 from its zero reference; W2: 1, 2, 1, and 2 from zero.
    assert values.dtype == torch.float64
    assert values.tolist() == [3.5, 5.0, 4.0, 0.5, 0.5, 0.5, 0.5, 1.0, 2.0, 1.0, 2.0]
    expected = list(M.weight_statistics(W1, b1, None, torch.zeros(1)).values())
    expected += list(M.weight_statistics(W2, None, R2, None).values())
    assert values.tolist() == expected


def test_weight_statistics_of_layers_are_the_torch_reductions_bit_for_bit(device):
    # Each statistic is one torch reduction of one tensor (a foreach call on the CPU must not change a bit): compared
    # with the reductions themselves on random weights of mixed sizes and dtypes, not with weight_statistics (which
    # runs the same code).
    gen = torch.Generator().manual_seed(2)
    layers, expected = [], []
    for i, (rows, cols, dtype) in enumerate(
        [(64, 17, torch.float32), (300, 129, torch.float32), (7, 3, torch.float64)]
    ):
        W = (torch.randn(rows, cols, generator=gen) * 10.0 ** (i - 1)).to(dtype).to(device)
        b = torch.randn(rows, generator=gen).to(dtype).to(device)
        R = torch.randn(rows, cols, generator=gen).to(device)  # float32: converted to the weight's dtype first
        layers.append((W, b, R, None))
        for t in (W, b):
            expected += [t.abs().mean(), torch.linalg.vector_norm(t), t.abs().max()]
        expected.append(torch.linalg.vector_norm(W - R.to(W)))
    _, values = M.weight_statistics_of_layers_deferred(layers)
    assert values.tolist() == [float(v) for v in expected]
    with pytest.raises(ValueError, match="layers is empty"):
        M.weight_statistics_of_layers_deferred([])


def test_abs_buffer_gives_the_same_sums_without_new_memory():
    buffer = M.AbsBuffer()
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(M.unit_abs_sums(x, buffer=buffer), M.unit_abs_sums(x))
    first = buffer.abs(x).data_ptr()
    assert buffer.abs(x[:10]).data_ptr() == first  # a smaller tensor reuses the memory
    transposed = torch.randn(8, 64).T  # not contiguous: |x| is a fresh tensor of x's own layout
    assert torch.equal(M.unit_abs_sums(transposed, buffer=buffer), M.unit_abs_sums(transposed))
    assert buffer.abs(transposed).data_ptr() != first
    leaf = torch.randn(4, 3, requires_grad=True)  # autograd forbids out= here: |x| is computed as usual
    assert torch.equal(buffer.abs(leaf), leaf.abs()) and buffer.abs(leaf).requires_grad
    assert buffer.abs(torch.randn(128, 8)).data_ptr() != first  # a larger tensor grows the buffer


def test_abs_buffer_made_in_inference_mode_still_works_outside():
    buffer = M.AbsBuffer()
    with torch.inference_mode():
        buffer.abs(torch.ones(4, 3))
    assert buffer.abs(-torch.ones(4, 3)).tolist() == [[1.0] * 3] * 4


def test_activation_gradient_scores_do_not_cancel_across_samples(device, dtype):
    # Pitfall "which gradient": per-sample dL/dh of unit 0 are +1 and -1. GraMa's E|dL/dh| = 1 is not zero, while
    # a batch-summed gradient (what a weight gradient with constant input sees) cancels to 0.
    acts_grad = t([[1.0, 0.5], [-1.0, 0.5]], device, dtype)
    assert M.activation_gradient_scores(acts_grad).tolist() == pytest.approx([4 / 3, 2 / 3])
    batch_summed = acts_grad.sum(0, keepdim=True)  # = weight gradient for a constant input of 1
    assert M.magi(batch_summed.T).tolist() == [0.0, 1.0]


# ---------------------------------------------------------------------------------------------------------------
# Overlap
# ---------------------------------------------------------------------------------------------------------------


def test_overlap_and_persistence_hand_computed():
    a = torch.tensor([True, True, False, False])
    b = torch.tensor([True, False, True, True])
    assert M.overlap_coefficient(a, b) == 0.5  # 1 / min(2, 3)
    assert M.overlap_coefficient(b, a) == 0.5  # symmetric
    assert M.persistence(a, b) == 0.5  # 1 / |a|
    assert M.persistence(b, a) == pytest.approx(1 / 3)
    # The author's earlier |A∩B| / H variant would give 0.25 here: a different quantity.
    assert int((a & b).sum()) / a.numel() == 0.25


def test_overlap_subset_is_one_and_empty_is_nan():
    a = torch.tensor([True, False, False])
    b = torch.tensor([True, True, False])
    assert M.overlap_coefficient(a, b) == 1.0
    empty = torch.zeros(3, dtype=torch.bool)
    assert math.isnan(M.overlap_coefficient(a, empty))
    assert math.isnan(M.overlap_coefficient(empty, empty))
    assert math.isnan(M.persistence(empty, a))
    assert M.persistence(a, empty) == 0.0


def test_overlap_bad_input():
    with pytest.raises(ValueError, match="boolean"):
        M.overlap_coefficient(torch.tensor([1, 0]), torch.tensor([True, False]))
    with pytest.raises(ValueError, match="same shape"):
        M.overlap_coefficient(torch.tensor([True]), torch.tensor([True, False]))


# ---------------------------------------------------------------------------------------------------------------
# Ranks
# ---------------------------------------------------------------------------------------------------------------


def _spectrum_matrix(sigmas, n_rows, device, dtype, seed=0):
    """A random (n_rows x d) matrix with exactly the given singular values."""
    g = torch.Generator().manual_seed(seed)
    d = len(sigmas)
    U, _ = torch.linalg.qr(torch.randn(n_rows, d, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return (U @ torch.diag(torch.tensor(sigmas, dtype=torch.float64)) @ V.T).to(device=device, dtype=dtype)


def test_ranks_hand_computed(device, dtype):
    phi = _spectrum_matrix([3.0, 2.0, 1.0], 4, device, dtype)
    p = torch.tensor([1 / 2, 1 / 3, 1 / 6], dtype=torch.float64)
    expected_erank = math.exp(float(-(p * p.log()).sum()))
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    assert M.effective_rank(phi) == pytest.approx(expected_erank, rel=tol)
    assert M.stable_rank(phi) == pytest.approx(14 / 9, rel=tol)
    # cumulative shares 0.5, 0.8333, 1.0
    assert M.srank(phi, delta=0.01) == 3
    assert M.srank(phi, delta=0.2) == 2
    assert M.srank(phi, delta=0.5) == 1  # share 0.5 >= 1 - 0.5: least k is inclusive
    # sigma / sqrt(4) = 1.5, 1.0, 0.5 ; strict ">"
    assert M.feature_rank(phi, eps=0.01) == 3
    assert M.feature_rank(phi, eps=0.75) == 2
    assert M.feature_rank(phi, eps=1.1) == 1
    assert M.ranks(phi, delta=0.2, eps=0.75) == pytest.approx(
        {"effective_rank": expected_erank, "srank": 2, "stable_rank": 14 / 9, "feature_rank": 2}, rel=tol
    )


def test_stable_rank_is_not_srank():
    # Pitfall: two code bases call srank a "stable rank". On this spectrum they differ: 14/9 vs 3.
    phi = _spectrum_matrix([3.0, 2.0, 1.0], 5, "cpu", torch.float64)
    assert M.srank(phi) == 3 and M.stable_rank(phi) == pytest.approx(14 / 9)


def test_feature_rank_uses_sqrt_n_scaling():
    # Pitfall: without the 1/sqrt(N) the count depends on the batch size. Same directions, 100x the rows.
    sigmas = [3.0, 0.05]
    small, big = _spectrum_matrix(sigmas, 4, "cpu", torch.float64), _spectrum_matrix(sigmas, 400, "cpu", torch.float64)
    big = big * 10  # stacking 100 copies of the same rows multiplies every sigma by 10
    assert M.feature_rank(small, 0.02) == 2  # 0.05 / 2 = 0.025 > 0.02
    assert M.feature_rank(big, 0.02) == 2  # 0.5 / 20 = 0.025 > 0.02


def test_ranks_of_rank_deficient_and_zero_matrices():
    phi = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], dtype=torch.float64)  # rank 1
    assert M.effective_rank(phi) == pytest.approx(1.0)
    assert M.srank(phi) == 1 and M.feature_rank(phi) == 1 and M.stable_rank(phi) == pytest.approx(1.0)
    zero = torch.zeros(4, 3)
    r = M.ranks(zero)
    assert math.isnan(r["effective_rank"]) and math.isnan(r["stable_rank"])
    assert r["srank"] == 0 and r["feature_rank"] == 0


def test_effective_rank_of_identity_is_dimension():
    assert M.effective_rank(torch.eye(7)) == pytest.approx(7.0)


def test_rank_bad_input():
    with pytest.raises(ValueError, match="dimensions"):
        M.effective_rank(torch.ones(2, 2, 2))
    with pytest.raises(ValueError, match="delta"):
        M.srank(torch.eye(2), delta=1.0)
    with pytest.raises(ValueError, match="eps"):
        M.feature_rank(torch.eye(2), eps=-1)


# ---------------------------------------------------------------------------------------------------------------
# Weight statistics
# ---------------------------------------------------------------------------------------------------------------


def test_weight_statistics_hand_computed(device, dtype):
    W = t([[1.0, -2.0], [0.0, 2.0]], device, dtype)
    b = t([1.0, -1.0], device, dtype)
    stats = M.weight_statistics(W, b, torch.zeros_like(W), torch.ones_like(b))
    assert stats == pytest.approx(
        {
            "weight_abs_mean": 1.25,
            "weight_l2": 3.0,
            "weight_abs_max": 2.0,
            "bias_abs_mean": 1.0,
            "bias_l2": math.sqrt(2),
            "bias_abs_max": 1.0,
            "weight_distance": 3.0,
            "bias_distance": 2.0,
        }
    )
    assert set(M.weight_statistics(W)) == {"weight_abs_mean", "weight_l2", "weight_abs_max"}


def test_weight_statistics_reference_shape_mismatch():
    with pytest.raises(ValueError, match="reference_weight"):
        M.weight_statistics(torch.ones(2, 2), reference_weight=torch.ones(2, 3))


def test_layer_scores_first_computed_in_inference_mode_stay_differentiable_later():
    # The constants of a layout are cached: made in inference mode they must not poison a later differentiable call.
    width = 13  # a layout no other test uses, so the first call here makes its constants
    with torch.inference_mode():
        M.layer_scores_deferred([torch.arange(1.0, 14.0)], [torch.ones(2, width)], [torch.ones(width, 3)])
    acts = torch.arange(1.0, 14.0).reshape(1, width).requires_grad_()
    scores, _ = M.layer_scores_deferred([M.unit_abs_sums(acts)], [torch.ones(2, width)], [torch.ones(width, 3)])
    scores[0].dormancy.sum().backward()
    assert acts.grad is not None
