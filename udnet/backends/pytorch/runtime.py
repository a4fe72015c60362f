"""Helpers copied into an emitted model.py when it uses them (it imports torch only)."""

CONV2D = '''
def conv2d(
    in_channels,
    out_channels,
    kernel_size,
    stride=1,
    padding=0,
    dilation=1,
    groups=1,
    bias=False,
    weight_init="kaiming_normal",
    bias_init=0.0,
):
    """nn.Conv2d initialised as the spec says."""
    conv = nn.Conv2d(
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias
    )
    init_weight(conv.weight, weight_init)
    if conv.bias is not None:
        nn.init.constant_(conv.bias, bias_init)
    return conv
'''

LINEAR = '''
def linear(in_features, out_features, bias=True, weight_init="default", bias_init=0.0):
    """nn.Linear initialised as the spec says."""
    fc = nn.Linear(in_features, out_features, bias)
    init_weight(fc.weight, weight_init)
    if fc.bias is not None:
        nn.init.constant_(fc.bias, bias_init)
    return fc
'''

INIT_WEIGHT = '''
def init_weight(weight, kind):
    if kind == "kaiming_normal":
        nn.init.kaiming_normal_(weight)
    elif kind == "kaiming_uniform":
        nn.init.kaiming_uniform_(weight)
    elif kind == "xavier_normal":
        nn.init.xavier_normal_(weight)
    elif kind == "xavier_uniform":
        nn.init.xavier_uniform_(weight)
    elif kind == "normal":
        nn.init.normal_(weight, std=0.01)
    elif kind == "zeros":
        nn.init.zeros_(weight)
'''

GLOBAL_AVG_POOL = '''
class GlobalAvgPool(nn.Module):
    """Mean over the spatial dimensions: [N, C, H, W] -> [N, C] (or [N, C, 1, 1])."""

    def __init__(self, keep=False):
        super().__init__()
        self.keep = keep

    def forward(self, x):
        return x.mean((2, 3), keepdim=self.keep)
'''

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
# reads a contiguous channel prefix, so a 1x1 bottleneck over the prefix is one matrix
# product. In training, BN-ReLU over the prefix is recomputed in backward instead of
# being stored, so memory grows linearly with depth. A buffer is passed between
# modules as a tuple (storage, batch statistics, token); the token orders backward.


def concat_start(x, channels):
    """A buffer for ``channels`` channels, holding ``x`` in its first channels."""
    storage = x.new_empty(channels, x.shape[0], x.shape[2], x.shape[3])
    stats = x.new_zeros(2, channels)
    return concat_append((storage, stats, x.new_zeros(0)), x, 0)


def concat_append(buf, y, lo):
    """The buffer with ``y`` written into channels [lo, lo + y.shape[1])."""
    storage, stats, token = buf
    if _tracks_grad(y, token):
        token = _ConcatWrite.apply(y, token, storage, lo)
    else:
        _write(y, storage, lo)
    return storage, stats, token


def concat_read(buf, width):
    """The first ``width`` channels as an ordinary [N, C, H, W] tensor."""
    storage, _, token = buf
    if _tracks_grad(token):
        return _ConcatRead.apply(token, storage, width)
    return storage[:width].transpose(0, 1).contiguous()


def bn_relu_conv1x1(buf, width, bn, conv):
    """conv(relu(bn(x))) for a 1x1 conv over the buffer's first ``width`` channels."""
    storage, stats, token = buf
    n, h, w = storage.shape[1], storage.shape[2], storage.shape[3]
    if bn.training:
        mean, var = _batch_stats(storage, stats, width)
        _update_running_stats(bn, mean, var, n * h * w)
    else:
        mean, var = bn.running_mean, bn.running_var
    weight = conv.weight.view(conv.out_channels, width)
    if _tracks_grad(token, bn.weight, bn.bias, weight):
        stat_args = (storage, mean, var, bn.eps, bn.training)
        out = _BnReluConv1x1.apply(token, bn.weight, bn.bias, weight, *stat_args)
    else:
        scale, shift = _affine(bn.weight, bn.bias, mean, var, bn.eps)
        x = storage[:width].view(width, -1)
        out = weight @ torch.relu(torch.addcmul(shift[:, None], x, scale[:, None]))
    out = out.view(-1, n, h, w).transpose(0, 1)
    if conv.bias is not None:
        out = out + conv.bias.view(1, -1, 1, 1)
    return out.contiguous()


def _tracks_grad(*ts):
    # Plain tensor code when autograd is off and while fx or TorchScript trace the model.
    if not torch.is_grad_enabled() or torch.jit.is_tracing():
        return False
    fx = torch.fx._symbolic_trace
    if getattr(fx, "is_fx_symbolic_tracing", fx.is_fx_tracing)():
        return False
    return any(isinstance(t, torch.Tensor) and t.requires_grad for t in ts)


def _batch_stats(storage, stats, width):
    """Per-channel batch mean and variance of the first ``width`` channels; each
    channel's statistics are computed once and shared by all later readers."""
    done = getattr(storage, "stats_width", 0)
    if done < width:
        flat = storage[done:width].reshape(width - done, -1)
        var, mean = torch.var_mean(flat, dim=1, unbiased=False)
        stats[0, done:width], stats[1, done:width] = mean, var
        storage.stats_width = width
    return stats[0, :width], stats[1, :width]


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


def _affine(weight, bias, mean, var, eps):
    invstd = torch.rsqrt(var + eps)
    scale = invstd if weight is None else weight * invstd
    shift = -mean * scale if bias is None else bias - mean * scale
    return scale, shift


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
        # Runs after every reader of these channels (they depend on this token).
        grad = _grad_buffer(ctx.storage)[ctx.lo : ctx.hi].transpose(0, 1)
        return grad, ctx.storage.new_zeros(0), None, None


class _ConcatRead(torch.autograd.Function):
    @staticmethod
    def forward(ctx, token, storage, width):
        ctx.storage, ctx.width = storage, width
        return storage[:width].transpose(0, 1).contiguous()

    @staticmethod
    def backward(ctx, grad):
        _grad_buffer(ctx.storage)[: ctx.width] += grad.transpose(0, 1)
        return ctx.storage.new_zeros(0), None, None


class _BnReluConv1x1(torch.autograd.Function):
    @staticmethod
    def forward(ctx, token, gamma, beta, weight, storage, mean, var, eps, training):
        width = weight.shape[1]
        scale, shift = _affine(gamma, beta, mean, var, eps)
        x = storage[:width].view(width, -1)
        z = torch.addcmul(shift[:, None], x, scale[:, None]).relu_()
        ctx.save_for_backward(gamma, beta, weight)
        # Statistics live in a buffer that later writes extend; their values stay valid.
        ctx.mean, ctx.var = mean, var
        ctx.storage, ctx.eps, ctx.training = storage, eps, training
        return weight @ z

    @staticmethod
    def backward(ctx, grad):
        # Recompute BN-ReLU from the shared storage instead of having stored it, and
        # fold BN's backward into three in-place updates of the buffer's gradient.
        gamma, beta, weight = ctx.saved_tensors
        mean, var = ctx.mean, ctx.var
        width = weight.shape[1]
        x = ctx.storage[:width].view(width, -1)
        scale, shift = _affine(gamma, beta, mean, var, ctx.eps)
        z = torch.addcmul(shift[:, None], x, scale[:, None]).relu_()
        grad_weight = grad @ z.t()
        du = torch.ops.aten.threshold_backward(weight.t() @ grad, z, 0)
        del z
        invstd = torch.rsqrt(var + ctx.eps)
        grad_beta = du.sum(1)
        du_x = torch.bmm(du.unsqueeze(1), x.unsqueeze(2)).view(width)
        grad_gamma = (du_x - mean * grad_beta) * invstd
        g = _grad_buffer(ctx.storage)[:width].view(width, -1)
        g.addcmul_(du, scale[:, None])
        if ctx.training:  # batch statistics depend on x too
            count = x.shape[1]
            c2 = -scale * grad_gamma * invstd / count
            c1 = -scale * grad_beta / count - c2 * mean
            g.addcmul_(x, c2[:, None]).add_(c1[:, None])
        token_grad = ctx.storage.new_zeros(0)
        return (
            token_grad,
            grad_gamma,
            grad_beta,
            grad_weight,
            None,
            None,
            None,
            None,
            None,
        )
'''
