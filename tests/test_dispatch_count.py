"""ocp.dispatch_count: exact operator and host-synchronisation counts of small calls."""

import pytest
import torch

from ocp.dispatch_count import count_dispatch


def test_arithmetic_dispatches_without_synchronising():
    a, b = torch.ones(3), torch.ones(3)
    count = count_dispatch(lambda: (a + b).mul(2.0).sum())
    assert (count.operators, count.host_syncs) == (3, 0)
    assert dict(count.operators_by_name) == {"aten::add": 1, "aten::mul": 1, "aten::sum": 1}


def test_each_host_read_counts_once():
    x = torch.tensor([0.0, 1.0, 2.0])
    assert count_dispatch(lambda: x.sum().item()).syncs_by_kind == {"aten::_local_scalar_dense": 1}
    assert count_dispatch(lambda: bool(x.sum() > 0)).host_syncs == 1
    assert count_dispatch(lambda: float(x[1])).host_syncs == 1
    assert count_dispatch(lambda: x.nonzero()).syncs_by_kind == {"aten::nonzero": 1}
    # A boolean mask index finds the mask's true entries inside the index kernel; an integer index does not wait.
    assert count_dispatch(lambda: x[x > 0]).syncs_by_kind == {"aten::index": 1}
    assert count_dispatch(lambda: x[torch.tensor([0, 2])]).host_syncs == 0
    y = x.clone()
    assert count_dispatch(lambda: y.__setitem__(y > 0, 5.0)).host_syncs == 1
    # tolist and numpy read memory without an operator on the CPU; they still count, once each.
    count = count_dispatch(lambda: (x.tolist(), x.numpy(), torch.stack([x, x]).tolist()))
    assert (count.host_syncs, count.operators) == (3, 2)  # numpy() dispatches one detach, stack one operator
    assert count.syncs_by_kind == {"Tensor.tolist": 2, "Tensor.numpy": 1}


def test_the_wrapped_readers_are_restored_even_after_an_error():
    before = {name: vars(torch.Tensor).get(name) for name in ("tolist", "numpy")}

    def boom():
        torch.ones(1).tolist()
        raise RuntimeError("inside")

    with pytest.raises(RuntimeError, match="inside"):
        count_dispatch(boom)
    assert {name: vars(torch.Tensor).get(name) for name in before} == before
    assert count_dispatch(lambda: None).host_syncs == 0
