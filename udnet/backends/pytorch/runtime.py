"""Helpers of the connections (the fractal join, shared concat buffers), copied into an
emitted model.py when it uses them (it imports torch only). The ops' own helpers live
with their definitions in ``udnet/ops``."""

JOIN = '''
class Join(nn.Module):
    """FractalNet join: the mean of its inputs, with drop-path while training.

    Local drop-path drops each input with probability drop_local, keeping at least
    one. Samples chosen for global drop-path (see set_drop_path_columns) keep only
    the input of their column.
    """

    def __init__(self, drop_local=0.0, drop_global=0.0, columns=()):
        super().__init__()
        self.drop_local = drop_local
        self.drop_global = drop_global
        self.columns = columns
        self.global_columns = None

    def forward(self, *xs):
        if not self.training or (self.drop_local == 0 and self.global_columns is None):
            return torch.stack(xs).mean(0)
        n = xs[0].shape[0]
        keep = torch.rand(len(xs), n, device=xs[0].device) >= self.drop_local
        lucky = torch.randint(len(xs), (n,), device=xs[0].device)
        none_kept = ~keep.any(0)
        keep[lucky, torch.arange(n, device=xs[0].device)] |= none_kept
        if self.global_columns is not None:
            cols = torch.tensor(self.columns, device=xs[0].device)
            chosen = cols[:, None] == self.global_columns[None, :]
            use_global = chosen.any(0)
            keep = torch.where(use_global[None, :], chosen, keep)
        w = keep.to(xs[0].dtype)
        w = w / w.sum(0, keepdim=True)
        shape = (len(xs), n) + (1,) * (xs[0].dim() - 1)
        return (torch.stack(xs) * w.view(shape)).sum(0)


def set_drop_path_columns(model, batch, drop_global, num_columns, device):
    """Choose, per sample, a column for global drop-path (-1: local drop-path)."""
    columns = None
    if model.training and drop_global > 0:
        columns = torch.randint(1, num_columns + 1, (batch,), device=device)
        local = torch.rand(batch, device=device) >= drop_global
        columns = torch.where(local, torch.full_like(columns, -1), columns)
    for m in model.modules():
        if isinstance(m, Join):
            m.global_columns = columns
'''

CONCAT_BUFFER = '''
# Shared storage for a chain of channel concatenations (memory-efficient DenseNet,
# after Pleiss et al. 2017). A chain x_l = x_{l-1} ++ y_l lives in one channel-major
# buffer [C, N, H, W]: every producer writes its channel slice once, every reader
# reads a channel prefix where it lies, so a 1x1 bottleneck over the prefix is one
# matrix product per sample. In training, BN-ReLU over the prefix is recomputed in
# backward instead of being stored, so memory grows linearly with depth. Where each
# link also carries a head that the next link replaces (DPN: x_l = r_l ++ d_l, and
# only d_l grows), the head stays an ordinary tensor in front of the stored channels.
# A buffer is passed between modules as a tuple (storage, batch statistics, token,
# head); the token orders backward. While fx, TorchScript or torch.compile trace the
# model, the storage is the plain concatenation so far, so traced graphs hold
# ordinary ops. Under autocast the storage keeps its producers' lower precision; BN
# statistics are computed in float32 and backward casts to the dtypes forward used,
# as autocast does. Gradients reach the storage only through these functions, so a
# wrapper that hides a buffer from autograd (reentrant checkpointing) is refused,
# not silently wrong.


def concat_start(x, channels):
    """A buffer for ``channels`` channels, holding ``x`` in its first channels."""
    if _tracing():
        return x, None, None, None
    storage = x.new_empty(channels, x.shape[0], x.shape[2], x.shape[3])
    stats = x.new_zeros(2, channels, dtype=_stat_dtype(x))
    return concat_append((storage, stats, x.new_zeros(0), None), x, 0)


def concat_append(buf, y, lo, head=None):
    """The buffer with ``y`` written into stored channels [lo, lo + y.shape[1]) and
    ``head`` (or no head) in front of them."""
    storage, stats, token, _ = buf
    if _tracing():
        return torch.cat([storage, y], 1), None, None, head
    _check_handle(buf)
    if _tracks_grad(y, token):
        token = _ConcatWrite.apply(y, token, storage, lo)
    else:
        _write(y, storage, lo)
    return storage, stats, token, head


def concat_head(buf):
    """The head in front of the stored channels."""
    if not _tracing():
        _check_handle(buf)
    return buf[3]


def concat_read(buf, width):
    """The first ``width`` channels, head included, as an ordinary [N, C, H, W] tensor."""
    storage, _, token, head = buf
    if _tracing():
        x = storage
    else:
        _check_handle(buf)
        stored = width if head is None else width - head.shape[1]
        if _tracks_grad(token):
            x = _ConcatRead.apply(token, storage, stored)
        else:
            x = storage[:stored].transpose(0, 1)
            if head is None:  # a copy, never a view (see _ConcatRead)
                return x.clone(memory_format=torch.contiguous_format)
    return x if head is None else torch.cat([head, x], 1)


def bn_relu_conv1x1(buf, width, bn, conv):
    """conv(relu(bn(x))) for a 1x1 conv over the buffer's first ``width`` channels."""
    if _tracing():
        return conv(torch.relu(bn(concat_read(buf, width))))
    _check_handle(buf)
    storage, stats, token, head = buf
    n, h, w = storage.shape[1], storage.shape[2], storage.shape[3]
    stored = width if head is None else width - head.shape[1]
    if bn.training:
        mean, var = _batch_stats(storage, stats, stored)
        if head is not None:
            with torch.no_grad():
                flat = head.reshape(n, head.shape[1], -1).to(stats.dtype)
                head_mean, head_var = _mean_var(flat, (0, 2))
            mean, var = torch.cat([head_mean, mean]), torch.cat([head_var, var])
        _update_running_stats(bn, mean, var, n * h * w)
    else:
        mean, var = bn.running_mean, bn.running_var
    weight = conv.weight.view(conv.out_channels, width)
    if _tracks_grad(token, head, bn.weight, bn.bias, weight):
        stat_args = (storage, stored, mean, var, bn.eps, bn.training)
        out = _BnReluConv1x1.apply(token, head, bn.weight, bn.bias, weight, *stat_args)
    else:
        scale = bn.weight * torch.rsqrt(var + bn.eps)
        out = _bn_relu_conv(head, storage, stored, mean, scale, bn.bias, weight)
    out = out.view(n, -1, h, w)
    if conv.bias is not None:
        out = out + conv.bias.view(1, -1, 1, 1)
    return out


def _tracing():
    # torch.compile (2.3+) too: the buffer's in-place writes and the autograd Functions
    # that keep state on it do not trace; the plain concatenation compiles without
    # graph breaks.
    if torch.jit.is_tracing() or getattr(torch.compiler, "is_compiling", bool)():
        return True
    fx = torch.fx._symbolic_trace
    return getattr(fx, "is_fx_symbolic_tracing", fx.is_fx_tracing)()


def _check_handle(buf):
    """Refuse a buffer whose gradient autograd cannot deliver: one that came out of an
    autograd Function (its storage requires grad), or one read with gradients off while
    it is part of a graph. torch.utils.checkpoint(use_reentrant=True) does both."""
    storage, _, token, head = buf
    if storage.requires_grad or (
        not torch.is_grad_enabled() and _requires_grad(token, head)
    ):
        raise RuntimeError(
            "a shared concat buffer crossed a module boundary that autograd cannot see "
            "through (torch.utils.checkpoint with use_reentrant=True, or torch.no_grad() "
            "inside a training graph); its gradients would be lost. Use "
            "torch.utils.checkpoint(..., use_reentrant=False), or compile the model "
            "with --no-share-concat (udnet.load(..., disable=('share-concat',)))"
        )


def _requires_grad(*ts):
    return any(isinstance(t, torch.Tensor) and t.requires_grad for t in ts)


def _stat_dtype(x):
    """BN statistics of half or bfloat16 values are kept in float32."""
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def _tracks_grad(*ts):
    return torch.is_grad_enabled() and _requires_grad(*ts)


def _bn_relu_conv(head, storage, stored, mean, scale, beta, weight):
    """conv1x1(relu(bn(head ++ stored prefix))) as [N, out, H*W], without concatenating:
    one matrix product per sample and part, reading the buffer where it lies."""
    n, c = storage.shape[1], weight.shape[1] - stored
    x = storage[:stored].view(stored, -1)
    z = _bn_relu(x, mean[c:, None], scale[c:, None], beta[c:, None])
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


def _batch_stats(storage, stats, width):
    """Per-channel batch mean and variance of the first ``width`` channels; each
    channel's statistics are computed once and shared by all later readers."""
    done = getattr(storage, "stats_width", 0)
    if done < width:
        flat = storage[done:width].reshape(width - done, -1).to(stats.dtype)
        stats[0, done:width], stats[1, done:width] = _mean_var(flat, (1,))
        storage.stats_width = width
    return stats[0, :width], stats[1, :width]


def _mean_var(x, dims):
    """Per-channel mean and biased variance, in two passes (as accurate as var_mean
    and several times faster on CPU)."""
    mean = x.mean(dims, keepdim=True)
    return mean.view(-1), (x - mean).square_().mean(dims)


def _write(y, storage, lo):
    storage[lo : lo + y.shape[1]].copy_(y.detach().transpose(0, 1))


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


def _grad_buffer(storage):
    grad = getattr(storage, "concat_grad", None)
    if grad is None:
        grad = torch.zeros_like(storage)
        storage.concat_grad = grad
    return grad


class _ConcatWrite(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y, token, storage, lo):
        _write(y, storage, lo)
        ctx.storage, ctx.lo, ctx.hi = storage, lo, lo + y.shape[1]
        return token.new_empty(0)

    @staticmethod
    def backward(ctx, _):
        # Runs after every reader of these channels (they depend on this token). The
        # channels are then cleared, so that a second backward over the same graph
        # (retain_graph) starts from zero, and y's gradient is a copy, not a view.
        part = _grad_buffer(ctx.storage)[ctx.lo : ctx.hi]
        grad = part.transpose(0, 1).clone(memory_format=torch.contiguous_format)
        part.zero_()
        return grad, ctx.storage.new_zeros(0), None, None


class _ConcatRead(torch.autograd.Function):
    @staticmethod
    def forward(ctx, token, storage, width):
        ctx.storage, ctx.width = storage, width
        # Always a copy: with batch 1 the transposed prefix is already contiguous, and a
        # view would see the buffer's later writes.
        x = storage[:width].transpose(0, 1)
        return x.clone(memory_format=torch.contiguous_format)

    @staticmethod
    def backward(ctx, grad):
        _grad_buffer(ctx.storage)[: ctx.width] += grad.transpose(0, 1)
        return ctx.storage.new_zeros(0), None, None


class _BnReluConv1x1(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, token, head, gamma, beta, weight, storage, stored, mean, var, eps, training
    ):
        ctx.save_for_backward(head, gamma, beta, weight)
        # Statistics live in a buffer that later writes extend; their values stay valid.
        ctx.mean, ctx.var = mean, var
        ctx.storage, ctx.stored, ctx.eps, ctx.training = storage, stored, eps, training
        scale = gamma * torch.rsqrt(var + eps)
        return _bn_relu_conv(head, storage, stored, mean, scale, beta, weight)

    @staticmethod
    def backward(ctx, grad):
        # Recompute BN-ReLU from the shared storage (and the head) instead of having
        # stored it, and fold BN's backward for the stored channels into in-place
        # updates of the buffer's gradient.
        head, gamma, beta, weight = ctx.saved_tensors
        mean, var, stored = ctx.mean, ctx.var, ctx.stored
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

        def bn_relu_backward(x, ch, dims, g=None):
            # Channels ch of x: [C, N*H*W] (stored) or [N, C, H*W] (head). Adds dL/dx
            # into g (a new tensor if None).
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
            sc = scale[ch, None]
            # Straight into g; or, under autocast, summed in float32 and rounded once.
            part = g.addcmul_(du, sc) if g is not None and g.dtype == du.dtype else None
            part = du.mul_(sc) if part is None else part
            if ctx.training:  # batch statistics depend on x too
                count = x.numel() // du_x.numel()
                c2 = -scale[ch] * grad_gamma[ch] * invstd[ch] / count
                c1 = -scale[ch] * grad_beta[ch] / count - c2 * mean[ch]
                part.addcmul_(x, c2[:, None]).add_(c1[:, None])
            if g is None:
                return part
            return g if part is g else g.add_(part)

        # The stored prefix, in the buffer's channel-major layout.
        x = ctx.storage[:stored].view(stored, -1)
        g = _grad_buffer(ctx.storage)[:stored].view(stored, -1)
        bn_relu_backward(x, slice(c, None), (1,), g)
        grad_head = None
        if head is not None:  # the head, as it lies: [N, C, H*W]
            x = head.reshape(head.shape[0], c, -1)
            grad_head = bn_relu_backward(x, slice(None, c), (0, 2)).view_as(head)
        token_grad = ctx.storage.new_zeros(0)
        return (token_grad, grad_head, grad_gamma, grad_beta, grad_weight) + (None,) * 6
'''
