"""truesparse.interop: models to and from PyTorch, weights to and from a SciPy CSR .npz file.

The PyTorch tests are skipped where torch is not installed (``pytest.importorskip`` in the
``torch`` fixture); the .npz tests and the ImportError message need no torch. Every PyTorch
module is compared with the engine on the same inputs: outputs (evaluation mode, and training
mode without dropout), the loss and every gradient of a training step, batch norm's running
statistics; models built from PyTorch are compared pattern by pattern and value by value.
"""

from __future__ import annotations

import json
import pickle
import sys

import numpy as np
import pytest
import scipy.sparse as sp

import truesparse as ts
from conftest import assert_close, assert_csr_valid, assert_same_pattern, match_all
from processes import run_python
from truesparse import interop
from truesparse import layers as L
from truesparse.interop import NpzWeights, export_npz, from_torch, load_npz, to_torch

N_IN = 12


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def _data(n=40, d=N_IN, classes=5, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(dtype), rng.integers(0, classes, size=n)


def every_layer(last=None):
    """A layer list with every layer kind and every activation (All-ReLU as the 3rd and 4th
    activation layer: slopes +α and −α), sparse and dense linear layers."""
    specs = [
        L.Linear(32, density=0.3),
        L.BatchNorm(momentum=0.2, eps=1e-3),
        L.ReLU(),
        L.Dropout(0.3),
        L.Linear(24, density=0.5),
        L.LeakyReLU(0.05),
        L.Linear(20, density=0.4),
        L.AllReLU(0.3),
        L.Linear(16),
        L.AllReLU(0.4),
        L.Linear(12, density=0.2),
        L.SReLU(-0.5, 0.1, 0.8, 0.9),
        L.Affine(),
        L.Sigmoid(),
        L.Linear(10, density=0.6),
        L.Tanh(),
        L.Identity(),
        L.Linear(5, density=0.7),
    ]
    return specs + ([last()] if last else [])


LOSS_OF_LAST = {None: "softmax_cross_entropy", L.Softmax: "cross_entropy"}
LOSS_OF_LAST[L.LogSoftmax] = "negative_log_likelihood"


def trained(specs, dtype=np.float32, seed=1, epochs=2):
    """A Sequential of ``specs`` trained a little, so that every parameter and batch norm's
    running statistics have moved from their initial values."""
    last = type(specs[-1]) if isinstance(specs[-1], (L.Softmax, L.LogSoftmax)) else None
    model = ts.Sequential(N_IN, specs, loss=LOSS_OF_LAST[last], dtype=dtype, seed=seed)
    X, y = _data(dtype=dtype)
    model.fit(X, y, epochs=epochs, batch_size=10, optimizer=ts.SGD(lr=0.05, momentum=0.5))
    return model


def torch_forward(torch, module, X):
    with torch.no_grad():
        return module(torch.from_numpy(X)).numpy()


# -- to_torch ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "last", [None, L.Softmax, L.LogSoftmax], ids=["logits", "softmax", "log_softmax"]
)
def test_to_torch_reproduces_the_forward_of_every_layer(torch, dtype, last):
    specs = every_layer(last)
    model = trained(specs, dtype=dtype)
    module = to_torch(model)
    assert isinstance(module, torch.nn.Sequential) and len(module) == len(model.modules)
    assert not module.training, "to_torch returns the module in evaluation mode"
    X, _ = _data(n=57, seed=3, dtype=dtype)
    assert_close(torch_forward(torch, module, X), model.forward(X), dtype=dtype)
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    assert all(p.dtype == tdtype for p in module.parameters())


def test_to_torch_layer_mapping(torch):
    specs = every_layer(L.LogSoftmax)
    model = trained(specs)
    module = to_torch(model)
    nn = torch.nn
    expected = [
        interop.SparseLinear,
        nn.BatchNorm1d,
        nn.ReLU,
        nn.Dropout,
        interop.SparseLinear,
        nn.LeakyReLU,
        interop.SparseLinear,
        interop.AllReLU,
        nn.Linear,
        interop.AllReLU,
        interop.SparseLinear,
        interop.SReLU,
        interop.Affine,
        nn.Sigmoid,
        interop.SparseLinear,
        nn.Tanh,
        nn.Identity,
        interop.SparseLinear,
        nn.LogSoftmax,
    ]
    assert [type(m) for m in module] == expected
    assert (module[7].slope, module[9].slope) == (pytest.approx(0.3), pytest.approx(-0.4))
    assert module[3].p == pytest.approx(0.3) and module[5].negative_slope == pytest.approx(0.05)
    bn, view = module[1], model.modules[1]
    assert (bn.eps, bn.momentum) == (pytest.approx(1e-3), pytest.approx(0.2))
    assert np.array_equal(bn.running_mean.numpy(), view.running_mean)
    assert np.array_equal(bn.running_var.numpy(), view.running_var)
    assert np.array_equal(bn.weight.detach().numpy(), view.parameters["gamma"])
    assert not np.all(view.running_var == 1), "the test needs trained statistics"
    t = [float(p.detach()) for p in (module[11].tl, module[11].al, module[11].tr, module[11].ar)]
    assert np.array_equal(np.float32(t), model.modules[11].parameters["t"])


def test_sparse_linear_holds_the_layer_csr(torch):
    model = trained(every_layer())
    module = to_torch(model)
    for t, view in zip(module, model.modules):
        if not (view.kind == "linear" and view.is_sparse):
            continue
        W = view.W
        assert isinstance(t.values, torch.nn.Parameter) and t.values.requires_grad
        assert np.array_equal(t.crow_indices.numpy(), W.indptr)
        assert np.array_equal(t.col_indices.numpy(), W.indices)
        assert np.array_equal(t.values.detach().numpy(), W.data)
        assert np.array_equal(t.bias.detach().numpy(), view.b)
        assert t.weight.layout == torch.sparse_csr
        assert tuple(t.weight.shape) == view.shape
        assert np.array_equal(t.weight.detach().to_dense().numpy(), W.toarray())
        s = t.to_scipy()
        assert_csr_valid(s, view.shape)
        assert_same_pattern(s, W)
        assert (t.nnz, t.density) == (view.nnz, pytest.approx(view.density))
        assert set(t.state_dict()) == {"crow_indices", "col_indices", "values", "bias", "shape"}


def test_to_torch_of_an_mlp_needs_no_layer_list(torch):
    model = ts.MLP([N_IN, 20, 16, 5], density=0.4, batch_norm=True, activation="tanh", seed=2)
    X, y = _data()
    model.fit(X, y, epochs=2, batch_size=10, optimizer=ts.SGD(lr=0.05))
    module = to_torch(model)
    assert [type(m).__name__ for m in module] == [
        "SparseLinear",
        "BatchNorm1d",
        "Tanh",
        "SparseLinear",
        "BatchNorm1d",
        "Tanh",
        "SparseLinear",
    ]
    assert_close(torch_forward(torch, module, X), model.forward(X))


def test_all_relu_sign_follows_the_activation_number(torch):
    # ReLU is activation 1, so the All-ReLUs are 2 (−α), 3 (+α) and 4 (−α)
    specs = [L.Linear(10), L.ReLU(), L.Linear(10), L.AllReLU(0.5), L.Linear(10)]
    specs += [L.AllReLU(0.5), L.Linear(10), L.AllReLU(0.25), L.Linear(4)]
    model = ts.Sequential(N_IN, specs, seed=3)
    module = to_torch(model)
    assert [m.layer for m in module if isinstance(m, interop.AllReLU)] == [2, 3, 4]
    assert [m.slope for m in module if isinstance(m, interop.AllReLU)] == [-0.5, 0.5, -0.25]
    X, _ = _data()
    assert_close(torch_forward(torch, module, X), model.forward(X))


def test_training_mode_batch_norm_matches_the_engine(torch):
    specs = [L.Linear(16, density=0.5), L.BatchNorm(momentum=0.3), L.ReLU(), L.Linear(4)]
    model = ts.Sequential(N_IN, specs, seed=4)
    module = to_torch(model).train()
    X, _ = _data(n=30)
    with torch.no_grad():
        got = module(torch.from_numpy(X)).numpy()
    assert_close(got, model.forward(X, train=True))  # batch statistics; updates running ones
    assert_close(module[1].running_mean.numpy(), model.modules[1].running_mean)
    assert_close(module[1].running_var.numpy(), model.modules[1].running_var)


def test_torch_gradients_equal_the_engine_gradients(torch):
    """One training step's loss and every gradient, in training mode (batch statistics)."""
    F = torch.nn.functional
    specs = [L.Linear(24, density=0.3), L.BatchNorm(), L.SReLU(-0.3, 0.1, 0.7, 0.8), L.Affine()]
    specs += [L.Linear(16), L.AllReLU(0.4), L.Linear(5, density=0.5)]
    model = ts.Sequential(N_IN, specs, label_smoothing=0.1, dtype=np.float64, seed=5)
    X, y = _data(n=32, dtype=np.float64)
    model.fit(X, y, epochs=1, batch_size=8, optimizer=ts.SGD(lr=0.05))  # moved parameters
    module = to_torch(model).train()
    x = torch.from_numpy(X).requires_grad_(True)
    loss = F.cross_entropy(module(x), torch.from_numpy(y), label_smoothing=0.1)
    loss.backward()
    assert_close(np.float64(loss.item()), np.float64(model.backward(X, y)))
    for t, view in zip(module, model.modules):
        if view.kind == "linear":
            DW = view.DW
            grad = t.values.grad.numpy() if view.is_sparse else t.weight.grad.numpy()
            assert_close(grad, DW.data if view.is_sparse else DW)
            assert_close(t.bias.grad.numpy(), view.Db)
        elif view.kind in ("batch_norm", "affine"):
            names = ("weight", "bias") if view.kind == "batch_norm" else ("gamma", "beta")
            assert_close(getattr(t, names[0]).grad.numpy(), view.gradients["gamma"])
            assert_close(getattr(t, names[1]).grad.numpy(), view.gradients["beta"])
        elif view.kind == "srelu":
            grads = [getattr(t, n).grad.item() for n in ("tl", "al", "tr", "ar")]
            assert_close(np.array(grads), view.gradients["t"])
    # the input gradient of the sparse first layer, against dense arithmetic
    W = model.layers[0].W.toarray()
    x2 = torch.from_numpy(X).requires_grad_(True)
    (module[0](x2) ** 2).sum().backward()
    Z = X @ W.T + model.layers[0].b
    assert_close(x2.grad.numpy(), 2 * Z @ W)


@pytest.mark.parametrize(
    "loss, last, smoothing",
    [
        ("softmax_cross_entropy", None, 0.1),
        ("cross_entropy", L.Softmax, 0.1),
        ("negative_log_likelihood", L.LogSoftmax, 0.0),
        ("squared_error", None, 0.0),
        ("logistic_cross_entropy", None, 0.0),
    ],
)
def test_the_documented_torch_losses_equal_the_engine_losses(torch, loss, last, smoothing):
    """The loss table of docs/interop.md: the module's output into the PyTorch expression
    gives the model's loss."""
    F = torch.nn.functional
    specs = [L.Linear(10, density=0.5), L.Tanh(), L.Linear(4, density=0.5)]
    specs += [last()] if last else []
    model = ts.Sequential(N_IN, specs, loss=loss, label_smoothing=smoothing, dtype=np.float64)
    X, y = _data(n=25, classes=4, dtype=np.float64)
    out = to_torch(model)(torch.from_numpy(X))
    labels = torch.from_numpy(y)
    T = F.one_hot(labels, 4).double()
    T_smooth = (1 - smoothing) * T + smoothing / 4
    expected = {
        "softmax_cross_entropy": lambda: F.cross_entropy(out, labels, label_smoothing=smoothing),
        "cross_entropy": lambda: -(T_smooth * out.log()).sum(1).mean(),
        "negative_log_likelihood": lambda: F.nll_loss(out, labels),
        "squared_error": lambda: F.mse_loss(out, T, reduction="sum") / len(X),
        "logistic_cross_entropy": lambda: (
            F.binary_cross_entropy_with_logits(out, T, reduction="sum") / len(X)
        ),
    }[loss]()
    assert_close(np.float64(expected.item()), np.float64(model.evaluate(X, y)["loss"]))


def test_a_few_torch_training_steps_fine_tune_the_csr_values(torch):
    specs = [L.Linear(32, density=0.2), L.ReLU(), L.Linear(5, density=0.5)]
    model = ts.Sequential(N_IN, specs, seed=6)
    module = to_torch(model).train()
    X, y = _data(n=64)
    x, target = torch.from_numpy(X), torch.from_numpy(y)
    opt = torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9)
    before = module[0].values.detach().clone()
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(module(x), target)
        loss.backward()
        assert module[0].values.grad is not None and module[0].values.grad.abs().sum() > 0
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
    assert not torch.equal(before, module[0].values.detach())
    assert np.array_equal(module[0].crow_indices.numpy(), model.layers[0].W.indptr)
    # and back: the fine-tuned values in the model, with the same outputs
    back = from_torch(module.eval())
    assert_same_pattern(back.layers[0].W, model.layers[0].W)
    assert np.array_equal(back.layers[0].W.data, module[0].values.detach().numpy())
    assert_close(back.forward(X), torch_forward(torch, module, X))


def test_sparse_linear_follows_a_new_pattern_loaded_into_it(torch):
    """The cached Wᵀ of the backward is rebuilt when the pattern buffers change."""
    rng = np.random.default_rng(7)
    A = sp.random_array((6, 9), density=0.4, format="csr", dtype=np.float64, rng=rng)
    B = sp.random_array((6, 9), density=0.4, format="csr", dtype=np.float64, rng=rng)
    t = interop.SparseLinear.from_scipy(A, np.zeros(6))
    x = torch.from_numpy(rng.standard_normal((4, 9))).requires_grad_(True)
    t(x).sum().backward()
    assert_close(x.grad.numpy(), np.ones((4, 6)) @ A.toarray())
    t.load_state_dict(interop.SparseLinear.from_scipy(B, np.zeros(6)).state_dict())
    x.grad = None
    t.zero_grad()
    t(x).sum().backward()
    assert_close(x.grad.numpy(), np.ones((4, 6)) @ B.toarray())
    assert_close(t.values.grad.numpy(), (np.ones((6, 4)) @ x.detach().numpy())[B.nonzero()])


def test_sparse_linear_takes_any_leading_dimensions_and_pickles(torch):
    A = sp.random_array((5, 7), density=0.5, format="csr", dtype=np.float32, rng=8)
    t = interop.SparseLinear.from_scipy(A, np.arange(5, dtype=np.float32))
    x = torch.randn(2, 3, 7)
    with torch.no_grad():
        y = t(x).numpy()
    assert y.shape == (2, 3, 5)
    assert_close(y, x.numpy() @ A.toarray().T + np.arange(5, dtype=np.float32))
    copy = pickle.loads(pickle.dumps(t))
    assert type(copy) is interop.SparseLinear
    with torch.no_grad():
        assert_close(copy(x).numpy(), y)


def test_no_sparse_warning_escapes(torch):
    """PyTorch warns once per process that sparse CSR tensors are in beta; interop keeps it
    (and the invariant-check notice) to itself. In a fresh process, with warnings as errors."""
    code = """
import warnings
warnings.simplefilter("error")
import numpy as np, torch, truesparse as ts
from truesparse import layers as L
from truesparse.interop import to_torch, from_torch
specs = [L.Linear(8, density=0.5), L.ReLU(), L.Linear(3, density=0.5)]
module = to_torch(ts.Sequential(6, specs)).train()
x = torch.randn(4, 6, requires_grad=True)
module(x).sum().backward()
module[0].weight.to_dense()
from_torch(module)
print("ok")
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# -- from_torch -------------------------------------------------------------------------------------
def masked_mlp(torch, sizes, densities, seed=0, activation=None):
    """A PyTorch MLP whose weights are weight × mask (a mask-based sparse library's model)."""
    torch.manual_seed(seed)
    nn = torch.nn
    mods, masks = [], []
    for i, d in enumerate(densities):
        lin = nn.Linear(sizes[i], sizes[i + 1])
        mask = (
            (torch.rand(sizes[i + 1], sizes[i]) < d).float()
            if d < 1
            else torch.ones(sizes[i + 1], sizes[i])
        )
        with torch.no_grad():
            lin.weight.mul_(mask)
        mods.append(lin)
        masks.append(mask)
        if i + 1 < len(densities):
            mods.append(activation() if activation else nn.ReLU())
    return nn.Sequential(*mods), masks


def test_from_torch_of_a_masked_dense_mlp(torch):
    module, masks = masked_mlp(torch, [N_IN, 30, 20, 5], [0.3, 1.0, 0.5])
    model = from_torch(module)
    assert isinstance(model, ts.Sequential) and model.loss == "softmax_cross_entropy"
    assert [m.kind for m in model.modules] == [
        "linear",
        "activation",
        "linear",
        "activation",
        "linear",
    ]
    for view, lin, mask in zip(model.layers, module[::2], masks):
        W = lin.weight.detach().numpy()
        if mask.all():
            assert not view.is_sparse and np.array_equal(view.W, W)
        else:
            assert view.is_sparse
            assert_csr_valid(view.W, view.shape)
            assert np.array_equal(view.W.toarray() != 0, mask.numpy() != 0)  # the exact pattern
            assert np.array_equal(view.W.toarray(), W)
        assert np.array_equal(view.b, lin.bias.detach().numpy())
    X, _ = _data()
    assert_close(model.forward(X), torch_forward(torch, module, X))


def test_from_torch_masks_argument_gives_the_pattern(torch):
    module, masks = masked_mlp(torch, [N_IN, 16, 4], [0.4, 0.6], seed=1)
    with torch.no_grad():  # a zero inside the mask, a nonzero outside: the mask decides
        r, c = torch.nonzero(masks[0])[0]
        module[0].weight[r, c] = 0.0
        r2, c2 = torch.nonzero(masks[0] == 0)[0]
        module[0].weight[r2, c2] = 5.0
    model = from_torch(module, masks={"0": masks[0], "2.weight": masks[1].bool()})
    W = model.layers[0].W
    assert W.nnz == int(masks[0].sum())
    assert np.count_nonzero(W.data == 0) == 1  # the zero inside the mask is stored
    stored = sp.csr_array(W, copy=True)
    stored.data[:] = 1
    assert np.array_equal(stored.toarray(), masks[0].numpy())
    assert W.toarray()[r2, c2] == 0  # outside the mask: weight × mask
    X, _ = _data()
    masked = [lin.weight.detach() * m for lin, m in zip(module[::2], masks)]
    with torch.no_grad():
        expected = torch.relu(torch.from_numpy(X) @ masked[0].T + module[0].bias)
        expected = (expected @ masked[1].T + module[2].bias).numpy()
    assert_close(model.forward(X), expected)


def test_from_torch_uses_the_masks_of_torch_prune(torch):
    prune = pytest.importorskip("torch.nn.utils.prune")
    module, _ = masked_mlp(torch, [N_IN, 16, 4], [1.0, 1.0], seed=2)
    prune.random_unstructured(module[0], "weight", amount=0.7)
    model = from_torch(module)
    mask = module[0].weight_mask.numpy()
    stored = sp.csr_array(model.layers[0].W, copy=True)
    stored.data[:] = 1
    assert np.array_equal(stored.toarray(), mask)
    X, _ = _data()
    assert_close(model.forward(X), torch_forward(torch, module, X))
    # the state_dict of a pruned module: weight_orig × weight_mask
    sd_model = from_torch(module.state_dict(), activation="relu")
    assert_same_pattern(sd_model.layers[0].W, model.layers[0].W)
    assert_close(sd_model.forward(X), model.forward(X))


def test_from_torch_of_a_state_dict(torch):
    nn = torch.nn
    torch.manual_seed(3)
    module = nn.Sequential(
        nn.Linear(N_IN, 20),
        nn.BatchNorm1d(20),
        nn.LeakyReLU(0.2),
        nn.Linear(20, 6),
        nn.LogSoftmax(dim=1),
    ).eval()
    with torch.no_grad():
        module[0].weight.mul_((torch.rand(20, N_IN) < 0.3).float())
        module[1].weight.uniform_(0.5, 1.5)
        module[1].bias.uniform_(-0.5, 0.5)
    model = from_torch(
        module.state_dict(), activation="leaky_relu", alpha=0.2, loss="negative_log_likelihood"
    )
    assert [m.kind for m in model.modules] == [
        "linear",
        "batch_norm",
        "activation",
        "linear",
        "log_softmax",
    ]
    assert model.layers[0].is_sparse and not model.layers[1].is_sparse
    X, _ = _data()
    assert_close(model.forward(X), torch_forward(torch, module, X))


def test_from_torch_of_a_numpy_state_dict_needs_no_torch():
    rng = np.random.default_rng(9)
    W1 = rng.standard_normal((10, N_IN)) * (rng.random((10, N_IN)) < 0.3)
    W2 = rng.standard_normal((3, 10))
    b1, b2 = rng.standard_normal(10), rng.standard_normal(3)
    state = {"fc1.weight": W1, "fc1.bias": b1, "fc2.weight": W2, "fc2.bias": b2}
    model = from_torch(state, activation="tanh", dtype=np.float64)
    assert model.layers[0].is_sparse and not model.layers[1].is_sparse
    assert np.array_equal(model.layers[0].W.toarray(), W1)
    X, _ = _data(dtype=np.float64)
    assert_close(model.forward(X), np.tanh(X @ W1.T + b1) @ W2.T + b2)


def test_from_torch_of_a_single_linear(torch):
    lin = torch.nn.Linear(N_IN, 3)
    model = from_torch(lin)
    assert [m.kind for m in model.modules] == ["linear"]
    X, _ = _data()
    assert_close(model.forward(X), torch_forward(torch, lin, X))


def test_from_torch_batch_norm_statistics(torch):
    nn = torch.nn
    torch.manual_seed(4)
    module = nn.Sequential(
        nn.Linear(N_IN, 10), nn.BatchNorm1d(10, momentum=0.3, eps=1e-4), nn.ReLU(), nn.Linear(10, 3)
    )
    X, _ = _data(n=50)
    module.train()(torch.from_numpy(X))  # running statistics move away from 0 and 1
    module.eval()
    carried = from_torch(module)  # running statistics carried over: the same eval forward
    assert carried.modules[1].kind == "batch_norm"
    assert_close(carried.modules[1].running_mean, module[1].running_mean.numpy())
    assert_close(carried.modules[1].running_var, module[1].running_var.numpy())
    assert_close(carried.forward(X), torch_forward(torch, module, X))
    model = from_torch(module, fold_batch_norm=True)
    assert [m.kind for m in model.modules] == ["linear", "affine", "activation", "linear"]
    assert_close(model.forward(X), torch_forward(torch, module, X))
    fresh = nn.Sequential(
        nn.Linear(N_IN, 10), nn.BatchNorm1d(10, momentum=0.3, eps=1e-4), nn.ReLU(), nn.Linear(10, 3)
    )
    model = from_torch(fresh)
    assert model.modules[1].kind == "batch_norm"
    assert_close(model.forward(X), torch_forward(torch, fresh.eval(), X))
    # training mode: the same batch statistics and running-statistics update
    fresh.train()
    with torch.no_grad():
        got = fresh(torch.from_numpy(X)).numpy()
    assert_close(model.forward(X, train=True), got)
    assert_close(model.modules[1].running_var, fresh[1].running_var.numpy())


def test_from_torch_nested_sequential_flatten_and_last_layers(torch):
    nn = torch.nn
    torch.manual_seed(5)
    module = nn.Sequential(
        nn.Flatten(),
        nn.Sequential(nn.Linear(N_IN, 9), nn.Sigmoid()),
        nn.Sequential(nn.Sequential(nn.Linear(9, 7), nn.Identity(), nn.Dropout(0.25))),
        nn.Linear(7, 4),
        nn.Softmax(dim=-1),
    ).eval()
    model = from_torch(module)
    assert model.loss == "cross_entropy"
    assert [m.kind for m in model.modules] == [
        "linear",
        "activation",
        "linear",
        "activation",
        "dropout",
        "linear",
        "softmax",
    ]
    X, _ = _data()
    assert_close(model.forward(X), torch_forward(torch, module, X))


def test_from_torch_all_relu_keeps_each_slope(torch):
    """An AllReLU module that was the 2nd activation (slope −α) becomes the 1st of the new
    network, so its spec's α changes sign to keep the slope."""
    T = interop
    nn = torch.nn
    torch.manual_seed(6)
    module = nn.Sequential(
        nn.Linear(N_IN, 8),
        T.AllReLU(0.5, layer=2),
        nn.Linear(8, 8),
        T.AllReLU(0.5, layer=2),
        nn.Linear(8, 3),
    )
    model = from_torch(module)
    X, _ = _data()
    assert_close(model.forward(X), torch_forward(torch, module, X))
    back = to_torch(model)
    assert [m.slope for m in back if isinstance(m, T.AllReLU)] == [-0.5, -0.5]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_truesparse_torch_truesparse_is_exact(torch, dtype):
    specs = every_layer(L.Softmax)
    specs[1] = L.Affine()  # batch norm's running statistics cannot be set yet (see the docs)
    model = trained(specs, dtype=dtype)
    back = from_torch(to_torch(model), dtype=dtype)
    assert back.loss == model.loss
    assert [m.kind for m in back.modules] == [m.kind for m in model.modules]
    for a, b in zip(model.modules, back.modules):
        if a.kind == "linear":
            assert a.is_sparse == b.is_sparse
            if a.is_sparse:
                assert_csr_valid(b.W, a.shape)
                assert_same_pattern(b.W, a.W)
                assert np.array_equal(b.W.data, a.W.data)
            else:
                assert np.array_equal(b.W, a.W)
            assert np.array_equal(b.b, a.b)
        else:
            for name, value in a.parameters.items():
                assert np.array_equal(b.parameters[name], value), name
    X, _ = _data(dtype=dtype)
    assert np.array_equal(back.forward(X), model.forward(X))


def test_round_trip_through_a_state_dict(torch):
    model = ts.MLP([N_IN, 20, 10, 4], density=0.3, activation="sigmoid", seed=7)
    sd = to_torch(model).state_dict()
    back = from_torch(sd, activation="sigmoid")
    for a, b in zip(model.layers, back.layers):
        assert a.is_sparse == b.is_sparse
        assert_same_pattern(b.W, a.W)
        assert np.array_equal(b.W.data, a.W.data) and np.array_equal(b.b, a.b)


def test_from_torch_keeps_explicit_zeros_of_a_sparse_linear(torch):
    A = sp.csr_array(
        (
            np.array([0.0, 2.0, 0.0, -1.0], np.float32),
            np.array([0, 2, 1, 3]),
            np.array([0, 2, 3, 4]),
        ),
        shape=(3, 4),
    )
    module = torch.nn.Sequential(interop.SparseLinear.from_scipy(A, np.ones(3, np.float32)))
    model = from_torch(module)
    assert model.layers[0].is_sparse and model.layers[0].nnz == 4
    assert_same_pattern(model.layers[0].W, A)


# -- errors -----------------------------------------------------------------------------------------
def test_to_torch_errors(torch):
    with pytest.raises(TypeError, match=match_all("[to_torch]", "Sequential", "dict")):
        to_torch({})


def test_to_torch_without_torch_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    model = ts.MLP([N_IN, 4, 2])
    with pytest.raises(ImportError, match=match_all("[to_torch]", "pip install torch")):
        to_torch(model)


def test_from_torch_errors(torch):
    nn = torch.nn
    with pytest.raises(TypeError, match=match_all("[from_torch]", "torch.nn.Module", "list")):
        from_torch([nn.Linear(3, 2)])
    module = nn.Sequential(nn.Linear(N_IN, 8), nn.Sequential(nn.ReLU(), nn.GELU()), nn.Linear(8, 3))
    with pytest.raises(TypeError, match=match_all("[from_torch]", "GELU", "position 2", "'1.1'")):
        from_torch(module)
    module = nn.Sequential(nn.Linear(N_IN, 8), nn.ReLU(), nn.Linear(9, 3))
    with pytest.raises(
        ValueError, match=match_all("[from_torch]", "position 2", "9 inputs", "gets 8")
    ):
        from_torch(module)
    module = nn.Sequential(nn.Linear(N_IN, 8), nn.BatchNorm1d(7))
    with pytest.raises(ValueError, match=match_all("[from_torch]", "BatchNorm1d", "7 features")):
        from_torch(module)
    module = nn.Sequential(nn.Linear(N_IN, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        module[2].weight[1, 2] = float("nan")
    with pytest.raises(ValueError, match=match_all("[from_torch]", "position 2", "NaN")):
        from_torch(module)
    module = nn.Sequential(nn.Linear(N_IN, 8), nn.ReLU(), nn.Linear(8, 3))
    with pytest.raises(ValueError, match=match_all("[from_torch]", "mask", "shape")):
        from_torch(module, masks={"0": torch.ones(8, 3)})
    with pytest.raises(ValueError, match=match_all("[from_torch]", "only 0 and 1")):
        from_torch(module, masks={"0": torch.full((8, N_IN), 0.5)})
    with pytest.raises(ValueError, match=match_all("[from_torch]", "masks names no Linear", "fc1")):
        from_torch(module, masks={"fc1": torch.ones(8, N_IN)})
    with pytest.raises(TypeError, match=match_all("[from_torch]", "masks", "list")):
        from_torch(module, masks=[torch.ones(8, N_IN)])
    with pytest.raises(ValueError, match=match_all("[from_torch]", "activation=", "state_dict")):
        from_torch(module, activation="relu")
    with pytest.raises(ValueError, match=match_all("[from_torch]", "activation=")):
        from_torch(module.state_dict())
    with pytest.raises(ValueError, match=match_all("[from_torch]", "activation must be", "gelu")):
        from_torch(module.state_dict(), activation="gelu")
    with pytest.raises(ValueError, match=match_all("[from_torch]", "loss must be one of", "hinge")):
        from_torch(module, loss="hinge")
    with pytest.raises(ValueError, match=match_all("[from_torch]", "Softmax", "dim=0")):
        from_torch(nn.Sequential(nn.Linear(N_IN, 3), nn.Softmax(dim=0)))
    with pytest.raises(ValueError, match=match_all("[from_torch]", "track_running_stats=False")):
        from_torch(nn.Sequential(nn.Linear(N_IN, 3), nn.BatchNorm1d(3, track_running_stats=False)))
    with pytest.raises(ValueError, match=match_all("[from_torch]", "no Linear")):
        from_torch(nn.Sequential(nn.ReLU()))
    with pytest.raises(ValueError, match=match_all("[from_torch]", "conv.weight", "not a Linear")):
        from_torch({"conv.weight": torch.ones(2, 3, 3, 3)}, activation="relu")
    with pytest.raises(TypeError, match=match_all("[from_torch]", "dtype")):
        from_torch(module, dtype=np.int32)


def test_sparse_linear_errors(torch):
    with pytest.raises(
        ValueError, match=match_all("[SparseLinear]", "row 0", "unsorted or duplicate")
    ):
        interop.SparseLinear(4, 2, torch.tensor([0, 2, 2]), torch.tensor([1, 1]), torch.ones(2))
    with pytest.raises(ValueError, match=match_all("[SparseLinear]", "outside [0, 4)")):
        interop.SparseLinear(4, 2, torch.tensor([0, 1, 1]), torch.tensor([4]), torch.ones(1))
    with pytest.raises(ValueError, match=match_all("[SparseLinear]", "indptr", "(3,)")):
        interop.SparseLinear(4, 2, torch.tensor([0, 1]), torch.tensor([0]), torch.ones(1))
    with pytest.raises(TypeError, match=match_all("[SparseLinear]", "floating point")):
        interop.SparseLinear(
            4, 2, torch.tensor([0, 1, 1]), torch.tensor([0]), torch.ones(1, dtype=torch.int64)
        )
    with pytest.raises(ValueError, match=match_all("[SparseLinear]", "NaN")):
        interop.SparseLinear(
            4, 2, torch.tensor([0, 1, 1]), torch.tensor([0]), torch.tensor([float("inf")])
        )
    t = interop.SparseLinear(4, 2, torch.tensor([0, 1, 1]), torch.tensor([0]), torch.ones(1))
    with pytest.raises(ValueError, match=match_all("[SparseLinear]", "5 features", "expected 4")):
        t(torch.ones(3, 5))


# -- export_npz / load_npz --------------------------------------------------------------------------
def test_export_npz_round_trip(tmp_path):
    specs = every_layer(L.LogSoftmax)
    model = trained(specs)
    path = tmp_path / "model.npz"
    export_npz(model, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]  # no temporary left
    weights = load_npz(path)
    assert isinstance(weights, NpzWeights) and len(weights) == len(model.layers)
    for (W, b), view in zip(weights, model.layers):
        assert isinstance(W, sp.csr_array)
        assert_csr_valid(W, view.shape)
        assert W.dtype == model.dtype and b.dtype == model.dtype
        if view.is_sparse:
            assert_same_pattern(W, view.W)
            assert np.array_equal(W.data, view.W.data)
        else:
            assert W.nnz == W.shape[0] * W.shape[1]  # a dense layer: its full pattern
            assert np.array_equal(W.toarray(), view.W)
        assert np.array_equal(b, view.b)
    assert weights[0][0].shape == model.layers[0].shape
    for entry, view in zip(weights.modules, model.modules):
        assert entry["kind"] == view.kind
        if view.kind == "batch_norm":
            assert np.array_equal(entry["arrays"]["running_var"], view.running_var)
        for name, value in ({} if view.kind == "linear" else view.parameters).items():
            assert np.array_equal(entry["arrays"][name], value)
    arch = weights.architecture
    assert (arch["format"], arch["version"], arch["inputs"], arch["outputs"]) == (
        "truesparse.npz",
        1,
        N_IN,
        5,
    )
    assert arch["modules"][5]["spec"] == {"type": "LeakyReLU", "alpha": 0.05}
    assert arch["modules"][0]["spec"] == {"type": "Linear", "size": 32, "density": 0.3}


def test_export_npz_is_plain_numpy(tmp_path):
    model = ts.MLP([N_IN, 10, 3], densities=[0.4, 1.0], batch_norm=True, seed=8)
    path = tmp_path / "w.npz"
    export_npz(model, str(path))
    with np.load(path, allow_pickle=False) as npz:
        keys = set(npz.files)
        expected = {
            f"layer{i}/{k}"
            for i in range(2)
            for k in ("data", "indices", "indptr", "shape", "bias")
        }
        expected |= {f"module1/{k}" for k in ("gamma", "beta", "running_mean", "running_var")}
        assert keys == expected | {"architecture"}
        W = sp.csr_array(
            (npz["layer0/data"], npz["layer0/indices"], npz["layer0/indptr"]),
            shape=tuple(npz["layer0/shape"]),
        )
        assert_same_pattern(W, model.layers[0].W)
        arch = json.loads(str(npz["architecture"]))
    assert [m["kind"] for m in arch["modules"]] == [m.kind for m in model.modules]
    assert arch["modules"][0] | {"spec": None} == {
        "kind": "linear",
        "layer": 0,
        "out": 10,
        "in": N_IN,
        "sparse": True,
        "nnz": model.layers[0].nnz,
        "spec": None,
    }
    assert arch["modules"][2]["spec"] == {"type": "ReLU"}  # an MLP's activation is known
    assert arch["modules"][1]["arrays"] == ["beta", "gamma", "running_mean", "running_var"]
    # compressed: smaller here, the same content
    export_npz(model, tmp_path / "c.npz", compressed=True)
    a, b = load_npz(path), load_npz(tmp_path / "c.npz")
    assert all(np.array_equal(x[0].toarray(), y[0].toarray()) for x, y in zip(a, b))


def test_export_npz_records_every_layer_spec(tmp_path):
    model = ts.Sequential(N_IN, [L.Linear(6, density=0.5), L.Tanh(), L.Dropout(0.1), L.Linear(2)])
    export_npz(model, tmp_path / "w.npz")
    arch = load_npz(tmp_path / "w.npz").architecture
    assert [(m["kind"], m["spec"]) for m in arch["modules"][1:3]] == [
        ("activation", {"type": "Tanh"}),
        ("dropout", {"type": "Dropout", "p": 0.1}),
    ]


def test_export_npz_errors(tmp_path):
    model = ts.MLP([N_IN, 4, 2], density=0.5)
    with pytest.raises(ValueError, match=match_all("[export_npz]", "directory", "does not exist")):
        export_npz(model, tmp_path / "missing" / "w.npz")
    with pytest.raises(ValueError, match=match_all("[export_npz]", "is a directory")):
        export_npz(model, tmp_path)
    with pytest.raises(TypeError, match=match_all("[export_npz]", "path", "int")):
        export_npz(model, 3)
    with pytest.raises(TypeError, match=match_all("[export_npz]", "Sequential", "str")):
        export_npz("model", tmp_path / "w.npz")
    diverged = ts.MLP([N_IN, 4, 2], seed=0)
    X, y = _data(n=20, classes=2)
    with np.errstate(all="ignore"):
        diverged.fit(
            X * 1e30, y, epochs=3, batch_size=20, optimizer=ts.SGD(lr=1e30), on_nonfinite="ignore"
        )
    if all(np.all(np.isfinite(v.W)) for v in diverged.layers):
        pytest.skip("training did not diverge to non-finite weights")
    path = tmp_path / "nan.npz"
    with pytest.raises(ValueError, match=match_all("[export_npz]", "NaN or infinity")):
        export_npz(diverged, path)
    assert not path.exists()


def test_load_npz_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=match_all("[load_npz]", "no such file")):
        load_npz(tmp_path / "none.npz")
    with pytest.raises(TypeError, match=match_all("[load_npz]", "path")):
        load_npz(None)
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(ValueError, match=match_all("[load_npz]", "not a .npz")):
        load_npz(tmp_path / "text.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match=match_all("[load_npz]", "no 'architecture'")):
        load_npz(tmp_path / "other.npz")
    np.savez(tmp_path / "pickled.npz", architecture=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match=match_all("[load_npz]", "pickle")):
        load_npz(tmp_path / "pickled.npz")
    model = ts.MLP([N_IN, 4, 2], density=0.5)
    export_npz(model, tmp_path / "w.npz")
    with np.load(tmp_path / "w.npz") as npz:
        arrays = dict(npz)
    bad = dict(arrays)
    bad["layer0/indices"] = bad["layer0/indices"][::-1].copy()
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(
        ValueError, match=match_all("[load_npz]", "layer0", "unsorted or duplicate")
    ):
        load_npz(tmp_path / "bad.npz")
    bad = dict(arrays)
    del bad["layer1/bias"]
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(ValueError, match=match_all("[load_npz]", "layer1/bias")):
        load_npz(tmp_path / "bad.npz")
    bad = dict(arrays)
    arch = json.loads(str(bad["architecture"]))
    arch["version"] = 99
    bad["architecture"] = np.array(json.dumps(arch))
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(ValueError, match=match_all("[load_npz]", "version 99")):
        load_npz(tmp_path / "bad.npz")
