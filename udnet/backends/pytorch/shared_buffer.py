"""The shared-buffer runtime for concat chains (memory-efficient DenseNet and DPN).

A real module, linted and unit-tested on its own (tests/test_shared_buffer.py); the
PyTorch backend copies everything below its ``import torch`` line, unchanged, into an
emitted model.py whose network has a planned buffer. The compile path reads this file
as text and never imports it (it imports torch).
"""

import torch
from torch import nn

# Shared storage for a chain of channel concatenations (memory-efficient DenseNet,
# after Pleiss et al. 2017). A chain x_l = x_{l-1} ++ y_l lives in one channel-major
# storage [C, N, H, W]: every producer writes its channel slice once, and x_l is an
# [N, C_l, H, W] tensor over the storage's first C_l channels, so no x_l is ever
# copied. The chain only appends, so the channels under a link never change after it
# is made. A link tensor is made with set_, not as a view: it has its own version
# counter, which later writes to other channels leave alone, so autograd may save it
# and a forward hook may keep it. Where each link also carries a head that the next
# link replaces (DPN: x_l = r_l ++ d_l, and only d_l grows), x_l is r_l ++ d_l as a
# fresh tensor, which nothing saves: readers save the head and the stored part.
# Every link is an ordinary tensor and gradients flow through it by autograd; what a
# link knows about its storage (kept beside it, in _LINKS) only makes reading it
# cheaper, and any other tensor, or a link changed in place since, is read as a plain
# tensor. A reader that starts with BN-ReLU-conv1x1 (bn_relu_conv1x1) reads the
# storage where it lies, one matrix product per sample, and recomputes BN-ReLU in
# backward instead of saving it, so training memory grows linearly with depth; it
# runs the plain modules instead where a hook is registered on one of them. While fx,
# TorchScript or torch.compile trace the model, every function here is the plain
# operation, so traced graphs hold ordinary ops. Under autocast the storage keeps its
# producers' lower precision; BN statistics are computed in float32 and backward
# casts to the dtypes forward used, as autocast does.


def concat_start(x, channels):
    """``x``, stored in the first channels of a buffer for ``channels`` channels."""
    if _tracing():
        return x
    store = _Store(x, channels)
    return _link(_Append.apply(None, x, None, store, 0, 0), store, None, x.shape[1])


def concat_append(x, y, lo=None, head=None, drop=0):
    """``[head ++] x[:, drop:] ++ y``, where ``x[:, drop:]`` has ``lo`` channels (None:
    as many as it has): in place in ``x``'s buffer when ``x`` is a link that ends it."""
    link = None if _tracing() else _link_of(x)
    if link is None and not drop and not _tracing():
        x, drop, link = _stored_part(x)
    if lo is None:
        lo = x.shape[1] - drop
    store = None if link is None else link.store
    if (
        store is None
        or link.stored != lo
        or store.filled != lo
        or lo + y.shape[1] > store.data.shape[0]
        or y.shape[2:] != store.data.shape[2:]
    ):
        tail = x[:, drop:] if drop else x
        return torch.cat([tail, y] if head is None else [head, tail, y], 1)
    out = _Append.apply(x, y, head, store, lo, drop)
    return _link(out, store, head, lo + y.shape[1])


def bn_relu_conv1x1(x, bn, relu, conv):
    """conv(relu(bn(x))) for a 1x1 conv (stride 1, no padding, one group): fused on a
    buffer's link, the three modules as they are on any other tensor or conv."""
    fusable = (
        bn.affine
        and conv.kernel_size == conv.stride == conv.dilation == (1, 1)
        and (conv.padding == (0, 0) and conv.groups == 1)
    )
    link = None if _tracing() or _hooked(bn, relu, conv) or not fusable else _link_of(x)
    if link is None:
        return conv(relu(bn(x)))
    store, head, stored = link.store, link.head, link.stored
    n, h, w = x.shape[0], x.shape[2], x.shape[3]
    if bn.training:
        mean, var = store.batch_stats(stored)
        if head is not None:
            with torch.no_grad():
                flat = head.reshape(n, head.shape[1], -1).to(mean.dtype)
                head_mean, head_var = _mean_var(flat, (0, 2))
            mean, var = torch.cat([head_mean, mean]), torch.cat([head_var, var])
        _update_running_stats(bn, mean, var, n * h * w)
    else:
        mean, var = bn.running_mean, bn.running_var
    weight = conv.weight.view(conv.out_channels, x.shape[1])
    if torch.is_grad_enabled() and _requires_grad(x, bn.weight, bn.bias, weight):
        stored_x = x if head is None else store.link(stored)
        stat_args = (mean, var, bn.eps, bn.training)
        out = _BnReluConv1x1.apply(
            x, head, stored_x, bn.weight, bn.bias, weight, *stat_args
        )
    else:
        scale = bn.weight * torch.rsqrt(var + bn.eps)
        out = _bn_relu_conv(
            head, store.channels(stored), n, mean, scale, bn.bias, weight
        )
    out = out.view(n, -1, h, w)
    if conv.bias is not None:
        out = out + conv.bias.view(1, -1, 1, 1)
    return out


class FusedBnReluConv(nn.Sequential):
    """BN, ReLU and a 1x1 conv in a sequence, run as ``bn_relu_conv1x1``: a ``{ bn; relu;
    conv }`` group that reads a shared buffer."""

    def forward(self, x):
        return bn_relu_conv1x1(x, *self)


def _tracing():
    # torch.compile (2.3+) too: the storage's writes and set_ do not trace; the plain
    # concatenation compiles without graph breaks.
    if torch.jit.is_tracing() or getattr(torch.compiler, "is_compiling", bool)():
        return True
    fx = torch.fx._symbolic_trace
    return getattr(fx, "is_fx_symbolic_tracing", fx.is_fx_tracing)()


class _Store:
    """A chain's storage [C, N, H, W], how many channels are written, and the batch
    statistics of the first ``stats_width`` channels."""

    def __init__(self, x, channels):
        self.data = x.new_empty(channels, x.shape[0], x.shape[2], x.shape[3])
        self.filled = 0
        self.stats = x.new_zeros(2, channels, dtype=_stat_dtype(x))
        self.stats_width = 0

    def write(self, y, lo):
        self.data[lo : lo + y.shape[1]].copy_(y.detach().transpose(0, 1))
        self.filled = lo + y.shape[1]

    def channels(self, width):
        """The first ``width`` channels, channel-major: [width, N * H * W]."""
        return self.data[:width].view(width, -1)

    def link(self, width):
        """A new [N, width, H, W] tensor over the first ``width`` channels, with a
        version counter of its own."""
        part = self.data[:width].transpose(0, 1)
        out = self.data.new_empty(0)
        return out.set_(
            part.untyped_storage(), part.storage_offset(), part.shape, part.stride()
        )

    def batch_stats(self, width):
        """Per-channel batch mean and variance of the first ``width`` channels; each
        channel's statistics are computed once and shared by all later readers."""
        done = self.stats_width
        if done < width:
            flat = self.data[done:width].reshape(width - done, -1)
            mean, var = _mean_var(flat.to(self.stats.dtype), (1,))
            self.stats[0, done:width], self.stats[1, done:width] = mean, var
            self.stats_width = width
        return self.stats[0, :width], self.stats[1, :width]


class _Link:
    __slots__ = ("head", "store", "stored", "version")

    def __init__(self, store, head, stored, version):
        self.store, self.head, self.stored, self.version = store, head, stored, version


# Beside the links, not on them: a copy, a pickle (torch.save of a hooked output) or a
# detached alias of a link is a plain tensor, and the entry goes when the link does.
_LINKS = torch.utils.weak.WeakTensorKeyDictionary()


def _link(x, store, head, stored):
    _LINKS[x] = _Link(store, head, stored, _version(x))
    return x


def _link_of(x):
    """What ``x`` knows about its storage, if it is a link unchanged since it was made."""
    link = _LINKS.get(x)
    if link is None or link.version != _version(x):
        return None
    head = 0 if link.head is None else link.head.shape[1]
    return link if x.shape[1] == head + link.stored else None


def _stored_part(x):
    """``x`` as (link, head width, its link) where ``x`` is ``link[:, head:]``, the stored
    part of a link that has a head (a DPN block slicing the dense path off the link it
    was given); else (x, 0, None)."""
    base = x._base
    link = None if base is None else _link_of(base)
    if link is None or link.head is None:
        return x, 0, None
    part = base[:, link.head.shape[1] :]
    same = x.shape == part.shape and x.stride() == part.stride()
    if not same or x.storage_offset() != part.storage_offset():
        return x, 0, None
    return base, link.head.shape[1], link


def _version(x):
    # Inference tensors (torch.inference_mode) keep no version counter.
    return 0 if x.is_inference() else x._version


def _hooked(*modules):
    """Does a hook want to see these modules run? Then they run as they are."""
    hooks = torch.nn.modules.module
    if hooks._global_forward_hooks or hooks._global_forward_pre_hooks:
        return True
    if hooks._global_backward_hooks or hooks._global_backward_pre_hooks:
        return True
    return any(
        m._forward_hooks
        or m._forward_pre_hooks
        or m._backward_hooks
        or m._backward_pre_hooks
        for m in modules
    )


def _requires_grad(*ts):
    return any(isinstance(t, torch.Tensor) and t.requires_grad for t in ts)


def _stat_dtype(x):
    """BN statistics of half or bfloat16 values are kept in float32."""
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def _bn_relu_conv(head, stored_x, n, mean, scale, beta, weight):
    """conv1x1(relu(bn(head ++ stored))) as [N, out, H*W], without concatenating: one
    matrix product per sample and part, reading the stored channels ([C, N*H*W]) where
    they lie."""
    stored, c = stored_x.shape[0], weight.shape[1] - stored_x.shape[0]
    z = _bn_relu(stored_x, mean[c:, None], scale[c:, None], beta[c:, None])
    out = torch.bmm(
        weight[:, c:].expand(n, -1, -1), z.view(stored, n, -1).transpose(0, 1)
    )
    if head is not None:
        zh = _bn_relu(
            head.reshape(n, c, -1), mean[:c, None], scale[:c, None], beta[:c, None]
        )
        # Not in place: under autocast out is in the lower precision.
        out = torch.baddbmm(out, weight[:, :c].expand(n, -1, -1), zh)
    return out


def _bn_relu(x, mean, scale, beta):
    # One pass, x * scale + (beta - mean * scale), as PyTorch's own CPU BatchNorm does
    # (in float32 under autocast, where x is in the lower precision).
    return torch.addcmul(beta - mean * scale, x, scale).relu_()


def _mean_var(x, dims):
    """Per-channel mean and biased variance, in two passes (as accurate as var_mean
    and several times faster on CPU)."""
    mean = x.mean(dims, keepdim=True)
    return mean.view(-1), (x - mean).square_().mean(dims)


def _update_running_stats(bn, mean, var, count):
    if not bn.track_running_stats:
        return
    with torch.no_grad():
        bn.num_batches_tracked.add_(1)
        m = (
            bn.momentum
            if bn.momentum is not None
            else 1.0 / float(bn.num_batches_tracked)
        )
        bn.running_mean.mul_(1 - m).add_(mean, alpha=m)
        bn.running_var.mul_(1 - m).add_(var * (count / max(count - 1, 1)), alpha=m)


class _Append(torch.autograd.Function):
    """[head ++] x[:, drop:] ++ y, with y written into the storage at channel lo; x is
    None where y starts the chain."""

    @staticmethod
    def forward(ctx, x, y, head, store, lo, drop):
        store.write(y, lo)
        ctx.lo, ctx.drop, ctx.head = lo, drop, 0 if head is None else head.shape[1]
        ctx.x_shape = None if x is None else x.shape
        stored = store.link(lo + y.shape[1])
        return stored if head is None else torch.cat([head, stored], 1)

    @staticmethod
    def backward(ctx, grad):
        # Views of grad where they can be, as torch.cat's backward gives.
        c, lo, drop = ctx.head, ctx.lo, ctx.drop
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = grad[:, c : c + lo]
            if drop:  # x's own head gets no gradient from here
                grad_x = torch.cat(
                    [grad.new_zeros(ctx.x_shape[0], drop, *grad.shape[2:]), grad_x], 1
                )
        grad_head = grad[:, :c] if ctx.needs_input_grad[2] else None
        return grad_x, grad[:, c + lo :], grad_head, None, None, None


class _BnReluConv1x1(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, head, stored_x, gamma, beta, weight, mean, var, eps, training):
        # x is the link itself, for autograd: its value is head ++ stored_x, which are
        # saved instead (stored_x lies in the storage; x may be a fresh concatenation).
        ctx.save_for_backward(head, stored_x, gamma, beta, weight)
        # Statistics live in a buffer that later writes extend; their values stay valid.
        ctx.mean, ctx.var, ctx.eps, ctx.training = mean, var, eps, training
        scale = gamma * torch.rsqrt(var + eps)
        n = stored_x.shape[0]
        cm = stored_x.transpose(0, 1).reshape(stored_x.shape[1], -1)
        return _bn_relu_conv(head, cm, n, mean, scale, beta, weight)

    @staticmethod
    def backward(ctx, grad):
        # Recompute BN-ReLU from the stored channels (and the head) instead of having
        # saved it.
        head, stored_x, gamma, beta, weight = ctx.saved_tensors
        mean, var = ctx.mean, ctx.var
        n, stored = stored_x.shape[0], stored_x.shape[1]
        c = weight.shape[1] - stored
        invstd = torch.rsqrt(var + ctx.eps)
        scale = gamma * invstd
        grad_weight = torch.empty_like(weight)
        grad_gamma, grad_beta = torch.empty_like(gamma), torch.empty_like(beta)

        # The output's gradient, channel-major [out, N*H*W] and as it lies [N, out, H*W].
        # Its dtype is the one forward's products ran in (autocast's, or the model's):
        # the products here run in it too, BN's reductions in the statistics' dtype.
        g_cm = grad.transpose(0, 1).reshape(grad.shape[1], -1)
        g_nchw = grad.reshape(grad.shape[0], grad.shape[1], -1)
        weight_mm = weight.to(grad.dtype)

        def bn_relu_backward(x, ch, dims):
            # Channels ch of x: [C, N*H*W] (stored) or [N, C, H*W] (head): dL/dx, in
            # the statistics' dtype.
            z = _bn_relu(x, mean[ch, None], scale[ch, None], beta[ch, None])
            z = z.to(grad.dtype)
            w = weight_mm[:, ch]
            if x.dim() == 2:
                grad_weight[:, ch] = g_cm @ z.t()
                du = w.t() @ g_cm
            else:  # the head: a channel-major copy of z, not an [N, out, C] temporary
                grad_weight[:, ch] = (
                    g_cm @ z.transpose(0, 1).reshape(z.shape[1], -1).t()
                )
                du = torch.bmm(w.t().expand(x.shape[0], -1, -1), g_nchw)
            du = torch.ops.aten.threshold_backward(du, z, 0)
            del z
            # BN's backward in the statistics' dtype: float32 under autocast, as
            # BatchNorm's own backward computes it.
            du = du.to(mean.dtype)
            grad_beta[ch] = du.sum(dims)
            # sum(du * (x - mean)), without a temporary for the stored prefix
            if du.dim() == 2 and du.dtype == x.dtype:
                du_x = torch.bmm(du.unsqueeze(1), x.unsqueeze(2)).view(-1)
            else:
                du_x = (du * x).sum(dims)
            grad_gamma[ch] = (du_x - mean[ch] * grad_beta[ch]) * invstd[ch]
            part = du.mul_(scale[ch, None])
            if ctx.training:  # batch statistics depend on x too
                count = x.numel() // du_x.numel()
                c2 = -scale[ch] * grad_gamma[ch] * invstd[ch] / count
                c1 = -scale[ch] * grad_beta[ch] / count
                part.addcmul_(x - mean[ch, None], c2[:, None]).add_(c1[:, None])
            return part

        # The stored channels, channel-major; their gradient stays in that layout.
        x = stored_x.transpose(0, 1).reshape(stored, -1)
        part = bn_relu_backward(x, slice(c, None), (1,)).to(stored_x.dtype)
        grad_x = part.view(stored, n, *stored_x.shape[2:]).transpose(0, 1)
        if head is not None:  # the head, as it lies: [N, C, H*W]
            x = head.reshape(n, c, -1)
            grad_head = bn_relu_backward(x, slice(None, c), (0, 2)).view_as(head)
            grad_x = torch.cat([grad_head.to(head.dtype), grad_x], 1)
        return (grad_x, None, None, grad_gamma, grad_beta, grad_weight) + (None,) * 4
