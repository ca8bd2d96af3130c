"""Lipschitz-controlled convolution, mean-only norm and the Gaussian upsampler."""

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize

from dipkit.errors import DipkitError
from dipkit.layers import (GaussianUpsample, LipschitzClamp, LipschitzConv2d, MeanOnlyNorm,
                           clamp_spectral_norm, gaussian_kernel, spectral_norm)


def test_spectral_norm_is_exact():
    torch.manual_seed(0)
    for shape in [(128, 128, 3, 3), (128, 32, 3, 3), (3, 128, 1, 1), (7, 5, 2, 2)]:
        w = torch.randn(shape, dtype=torch.float64)
        expected = torch.linalg.svdvals(w.reshape(shape[0], -1))[0]
        assert torch.allclose(spectral_norm(w), expected, rtol=1e-10)


def _with_singular_values(values, shape=(128, 1152), seed=0):
    """A float32 (C_out, C_in·k·k) matrix with the given singular values (random bases)."""
    g = torch.Generator().manual_seed(seed)
    n = len(values)
    u, _ = torch.linalg.qr(torch.randn(shape[0], n, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(shape[1], n, generator=g, dtype=torch.float64))
    return ((u * torch.tensor(values, dtype=torch.float64)) @ v.T).float()


def _exact(w):
    return float(torch.linalg.svdvals(w.double().reshape(w.shape[0], -1))[0])


def test_sync_free_spectral_norm_agrees_with_the_exact_one():
    """'squaring' (the GPU's default) against the SVD: random, scaled, fitted and degenerate weights."""
    torch.manual_seed(0)
    fitted = LipschitzConv2d(32, 32, 3, lipschitz=None)
    opt = torch.optim.Adam(fitted.parameters(), lr=0.05)
    x, target = torch.randn(2, 32, 12, 12), torch.randn(2, 32, 10, 10) * 10
    for _ in range(30):
        opt.zero_grad()
        F.mse_loss(fitted(x), target).backward()
        opt.step()
    cases = [torch.randn(128, 128, 3, 3) * 0.05, torch.randn(3, 128, 1, 1), torch.randn(128, 32, 3, 3),
             torch.randn(64, 64, 3, 3) * 1e6, torch.randn(64, 64, 3, 3) * 1e-8, fitted.weight.detach(),
             _with_singular_values([2.0] * 128), _with_singular_values([3.0]),
             _with_singular_values([1.0, 1 - 1e-3] + [0.5] * 50)]
    for w in cases:
        assert spectral_norm(w, "squaring").item() == pytest.approx(_exact(w), rel=1e-6)
    assert spectral_norm(torch.zeros(16, 16, 3, 3), "squaring").item() == 0.0


def test_sync_free_spectral_norm_near_a_degenerate_top():
    """Many eigenvalues just below the top: the quotient falls short by at most a few 1e-5 and
    never exceeds the exact value (so a clamp is at most that loose)."""
    for gap in (1e-5, 3e-5, 1e-4, 3e-4):
        w = _with_singular_values([1.0] + [1 - gap] * 127)
        s, exact = spectral_norm(w, "squaring").item(), _exact(w)
        assert -3e-5 <= s / exact - 1 <= 1e-6, gap


def test_spectral_norm_method_by_device(monkeypatch):
    """The exact solver on the CPU; on any other device the sync-free one (meta: shapes only)."""
    w = torch.randn(8, 4, 3, 3)
    assert spectral_norm(w).item() == spectral_norm(w, "eigvalsh").item()

    def no_solver(*args, **kwargs):
        raise AssertionError("eigvalsh called")

    monkeypatch.setattr(torch.linalg, "eigvalsh", no_solver)
    assert spectral_norm(w.to("meta")).shape == ()
    with pytest.raises(AssertionError):
        spectral_norm(w)
    with pytest.raises(DipkitError, match="method must be"):
        spectral_norm(w, "svd")


@pytest.mark.parametrize("lam", [0.5, 1.4, 3.0])
def test_lipschitz_bound_holds_after_optimizer_steps(lam):
    torch.manual_seed(0)
    conv = LipschitzConv2d(16, 16, 3, lipschitz=lam)
    opt = torch.optim.Adam(conv.parameters(), lr=0.05)
    x = torch.randn(2, 16, 12, 12)
    target = torch.randn(2, 16, 10, 10) * 10  # pulls the weights to a large norm
    for _ in range(30):
        opt.zero_grad()
        F.mse_loss(conv(x), target).backward()
        opt.step()
        assert float(spectral_norm(conv.effective_weight().detach())) <= lam + 1e-4
    # the raw weight grew past the bound, so the clamp is active, not vacuous
    assert float(spectral_norm(conv.weight.detach())) > lam


def test_no_gradient_flows_through_the_singular_value():
    torch.manual_seed(0)
    w = torch.randn(8, 4, 3, 3, requires_grad=True)
    lam = 0.5
    s = float(spectral_norm(w.detach()))
    assert s > lam
    clamp_spectral_norm(w, lam).sum().backward()
    # with s detached, W_eff = W * (λ / s) and its gradient is the constant λ / s
    assert torch.allclose(w.grad, torch.full_like(w, lam / s))


def test_unbounded_conv_equals_plain_conv():
    torch.manual_seed(0)
    conv = LipschitzConv2d(4, 6, 3, lipschitz=None)
    x = torch.randn(1, 4, 9, 9)
    assert torch.equal(conv(x), F.conv2d(x, conv.weight, conv.bias))


def test_parametrization_matches_module():
    torch.manual_seed(0)
    plain = torch.nn.Conv2d(8, 8, 3)
    lip = LipschitzConv2d(8, 8, 3, lipschitz=0.7)
    lip.load_state_dict(plain.state_dict())
    parametrize.register_parametrization(plain, "weight", LipschitzClamp(0.7))
    x = torch.randn(1, 8, 10, 10)
    assert torch.allclose(plain(x), lip(x), atol=1e-6)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "1.4"])
def test_bad_lipschitz_is_refused(bad):
    with pytest.raises(DipkitError, match="lipschitz"):
        LipschitzConv2d(2, 2, 3, lipschitz=bad)


def test_mean_only_norm():
    norm = MeanOnlyNorm(3)
    with torch.no_grad():
        norm.bias.copy_(torch.tensor([0.0, 1.0, -2.0]))
    x = torch.randn(2, 3, 5, 7) * 4 + 10
    y = norm(x)
    assert torch.allclose(y.mean(dim=(2, 3)), norm.bias.expand(2, 3), atol=1e-5)
    assert torch.allclose(y.std(dim=(2, 3)), x.std(dim=(2, 3)), atol=1e-5)  # no variance division
    assert sum(p.numel() for p in norm.parameters()) == 3


def _reference_upsample(x, sigma):
    """The paper's code: a 2-D depthwise ConvTranspose2d with the 5×5 kernel."""
    k1 = gaussian_kernel(sigma, dtype=x.dtype)
    k2 = torch.outer(k1, k1)
    c = x.shape[1]
    w = k2.view(1, 1, 5, 5).repeat(c, 1, 1, 1)
    return F.conv_transpose2d(x, w, stride=2, padding=2, output_padding=1, groups=c)


@pytest.mark.parametrize("sigma", [0.0, 0.1, 0.5, 1.0, 2.0])
def test_gaussian_upsample_equals_2d_transposed_conv(sigma):
    torch.manual_seed(0)
    x = torch.randn(2, 4, 7, 9, dtype=torch.float64)
    up = GaussianUpsample(4, sigma)
    y = up(x)
    assert y.shape == (2, 4, 14, 18)
    assert torch.allclose(y, _reference_upsample(x, sigma), atol=1e-6)  # float32 kernel


def test_gaussian_kernel_formula_and_dc_gain():
    sigma = 0.7
    up = GaussianUpsample(1, sigma)
    k = up.kernel2d().double()
    i = torch.arange(5, dtype=torch.float64) - 2
    expected = torch.exp(-(i[:, None] ** 2 + i[None, :] ** 2) / (8 * sigma ** 2))
    assert torch.allclose(k, expected / expected.sum(), atol=1e-7)
    assert abs(float(k.sum()) - 1) < 1e-6
    # DC gain 1/4: a constant image comes out, away from the borders, with mean 1/4 (each input
    # pixel spreads a total weight of 1 over four output pixels; the 2x2 phases differ)
    x = torch.ones(1, 1, 16, 16)
    interior = up(x)[..., 4:-4, 4:-4]
    assert abs(float(interior.mean()) - 0.25) < 1e-6
    # the 2x2 phases take the taps (0, 2, 4) and (1, 3) of each axis
    k1 = gaussian_kernel(sigma).double()
    even = float(k1[::2].sum()) ** 2
    assert abs(float(interior[0, 0, 0, 0]) - even) < 1e-6


def test_small_sigma_is_zero_insertion():
    torch.manual_seed(0)
    x = torch.rand(1, 2, 6, 6)
    y = GaussianUpsample(2, 0.1)(x)
    assert torch.allclose(y[..., ::2, ::2], x, atol=1e-4)
    assert float(y[..., 1::2, :].abs().max()) < 1e-4
    assert float(y[..., :, 1::2].abs().max()) < 1e-4


def test_bad_sigma_is_refused():
    with pytest.raises(DipkitError, match="sigma"):
        GaussianUpsample(3, -0.5)


def test_upsampling_response_closed_forms():
    from dipkit.layers import upsampling_response
    f, g = upsampling_response("nearest", n=65)
    assert f.shape == g.shape == (65,)
    assert float(f[0]) == 0.0 and float(f[-1]) == 0.5
    assert torch.allclose(g, torch.cos(torch.pi * f).abs(), atol=1e-12)
    _, g_bil = upsampling_response("bilinear", n=65)
    assert torch.allclose(g_bil, torch.cos(torch.pi * f).abs() ** 3, atol=1e-12)
    assert bool((g_bil <= g + 1e-12).all())  # bilinear passes less than nearest everywhere
    # zero insertion (sigma -> 0) passes every frequency; sigma = 0.5 suppresses the top
    _, g0 = upsampling_response("gaussian", n=65, sigma=0.0)
    assert torch.allclose(g0, torch.ones_like(g0), atol=1e-12)
    _, g5 = upsampling_response("gaussian", n=65, sigma=0.5)
    assert float(g5[0]) == pytest.approx(1.0) and float(g5[-1]) < 0.05


def test_upsampling_response_matches_the_gaussian_upsampler():
    # the 1-D response is that of the module itself: an impulse through GaussianUpsample is h hᵀ
    from dipkit.layers import upsampling_response
    sigma = 0.7
    x = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    x[..., 4, 4] = 1
    h2 = GaussianUpsample(1, sigma).double()(x)[0, 0]
    h = h2.sum(0)  # the column kernel sums to 1, so the row sums are the 1-D kernel
    f, g = upsampling_response("gaussian", n=33, sigma=sigma)
    m = torch.arange(h.numel(), dtype=torch.float64)
    ref = (h[None, :] * torch.exp(-2j * torch.pi * f[:, None] * m[None, :])).sum(1).abs() / h.sum()
    assert torch.allclose(g, ref, atol=1e-6)


def test_upsampling_response_refuses_learned_or_unknown_kinds():
    from dipkit.layers import upsampling_response
    for bad in ("deconv", "cubic"):
        with pytest.raises(DipkitError, match="fixed upsampler"):
            upsampling_response(bad)
    with pytest.raises(DipkitError, match="n must"):
        upsampling_response("nearest", n=1)
