"""Training on a GPU: peak memory and step time of udnet modules and reference implementations.

    python benchmarks/gpu.py --out results/            # CUDA, batch 64, about 7 minutes on an H200
    python benchmarks/gpu.py --device cpu --batch 8 --only densenet121 --no-compile --out results/
    python benchmarks/gpu.py --smoke --out results/     # CPU, tiny variants, one repeat (the test)

Models: densenet121, densenet264, a 64-layer dense block (256 input channels, k = 32,
28x28), dpn92 and resnet50, at 224x224. Implementations: udnet naive (--no-share-concat)
and udnet shared (the default compile), torchvision's DenseNet (memory_efficient False
and True) and ResNet-50, and timm's dpn92, each where installed (a missing package is
noted in the table, not an error). Each in fp32 and under bf16 autocast, eager and
under torch.compile.

A step is forward + backward from unset gradients (loss: the mean square of the output).
Memory: the peak above what the process held before the step (weights, input); on CUDA
torch.cuda.max_memory_allocated, with the absolute peak in its own column; on CPU the
peak resident set (VmHWM, reset before the step; the script restarts itself with glibc
told to return large blocks, so freed memory leaves the count). Time: the median of
--repeats synchronised steps after --warmup untimed ones; the first compiled step's time
is reported as compile_s. torch.backends.cudnn.benchmark is False.

Budget: eager cases run first, then the compiled ones, most informative first; a
compiled case is skipped (and marked so) once --budget-s would be exceeded. Progress is
printed as each case finishes and results.json is rewritten after every case, so a run
that is killed keeps what finished. results.md holds the table.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import statistics
import sys
import time
import traceback

from common import proc_status

HERE = os.path.dirname(os.path.abspath(__file__))
SPECS = os.path.join(HERE, "..", "specs")
BLOCK = """
block Layer(k) {{ norm1: bn; relu1: relu; conv1: conv(4 * k, 1); norm2: bn; relu2: relu; conv2: conv(k, 3, pad = 1) }}
network Block(n = {n}, c = {c}, input = [{c}, {s}, {s}]) {{
    block: {{ for i in 1..n {{ x = x ++ (x |> denselayer{{i}}: Layer({k})) }} }}
    gap
}}
"""
TINY_DPN = """
network TinyDPN(classes = 10, input = [3, 32, 32]) {
    features: {
        conv1_1: {
            conv: conv(8, 3, pad = 1)
            bn: bn(eps = 0.001)
            relu
        }
        conv1_pool: maxpool(3, stride = 2, pad = 1)
        for s in 2..3 {
            for i in 1..2 {
                kind = if i > 1 then "normal" else if s == 2 then "proj" else "down"
                conv{s}_{i}: DualPath(8, 16 * s, 4, 4, kind)
            }
        }
        conv5_bn_ac: {
            bn: bn(eps = 0.001)
            relu
        }
    }
    gap(keep = true)
    classifier: conv(classes, 1, bias = true)
    flatten
}
"""
MODELS = ("densenet121", "densenet264", "dense block L=64", "dpn92", "resnet50")
COLUMNS = ("udnet naive", "udnet shared", "torchvision", "torchvision memory_efficient", "timm")


def read(name: str) -> str:
    with open(os.path.join(SPECS, name)) as f:
        return f.read()


def udnet_spec(model: str, smoke: bool, size: int):
    """(spec text, network, parameters, input shape) of a udnet model."""
    img = [3, size, size]
    if model == "densenet121":
        p = dict(k=4, blocks=[2, 2], init=8, classes=10) if smoke else {}
        return read("densenet.ud"), None, {**p, "input": img}, img
    if model == "densenet264":
        p = dict(k=4, blocks=[2, 3], init=8, classes=10) if smoke else dict(blocks=[6, 12, 64, 48])
        return read("densenet.ud"), None, {**p, "input": img}, img
    if model == "dense block L=64":
        n, c, s, k = (4, 16, 8, 4) if smoke else (64, 256, 28, 32)
        return BLOCK.format(n=n, c=c, s=s, k=k), None, {}, [c, s, s]
    if model == "dpn92":
        if smoke:
            return read("dpn.ud") + TINY_DPN, "TinyDPN", {"input": img}, img
        return read("dpn.ud"), None, {"variant": 92, "input": img}, img
    if model == "resnet50":
        p = dict(layers=[1, 1, 1, 1], kind="basic", classes=10) if smoke else {"depth": 50}
        return read("resnet.ud"), None, {**p, "input": img}, img
    raise ValueError(model)


def applies(model: str, impl: str) -> bool:
    """Whether ``impl`` has ``model``."""
    if impl == "timm":
        return model == "dpn92"
    if impl == "torchvision":
        return model != "dpn92"
    if impl == "torchvision memory_efficient":
        return model not in ("dpn92", "resnet50")
    return True


def build(model: str, impl: str, smoke: bool, size: int):
    """(module, input shape), or a string saying why it is not measured."""
    import torch

    if impl.startswith("udnet"):
        import udnet

        spec, network, params, shape = udnet_spec(model, smoke, size)
        disable = () if impl == "udnet shared" else ("share-concat",)
        return udnet.load(spec, network, disable=disable, **params), shape
    shape = udnet_spec(model, smoke, size)[3]
    if impl.startswith("torchvision"):
        if importlib.util.find_spec("torchvision") is None:
            return "torchvision not installed"
        try:
            import torchvision.models as tvm
            from torchvision.models.densenet import _DenseBlock
        except ImportError:
            return "torchvision not installed"
        eff = impl.endswith("memory_efficient")
        if model in ("densenet121", "densenet264"):
            blocks = dict(densenet121=(6, 12, 24, 16), densenet264=(6, 12, 64, 48))[model]
            k, init, classes = (32, 64, 1000)
            if smoke:
                blocks, k, init, classes = dict(densenet121=(2, 2), densenet264=(2, 3))[model], 4, 8, 10
            return tvm.DenseNet(k, blocks, init, num_classes=classes, memory_efficient=eff), shape
        if model == "dense block L=64":
            n, c, k = (4, 16, 4) if smoke else (64, 256, 32)
            return torch.nn.Sequential(_DenseBlock(n, c, 4, k, 0.0, memory_efficient=eff),
                                       torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()), shape
        if model == "resnet50":
            if smoke:
                return tvm.ResNet(tvm.resnet.BasicBlock, [1, 1, 1, 1], num_classes=10), shape
            return tvm.resnet50(), shape
        raise ValueError(model)
    if impl == "timm":
        if smoke:
            return "timm has no tiny DPN (--smoke)"
        if importlib.util.find_spec("timm") is None:
            return "timm not installed"
        import timm

        return timm.create_model("dpn92", pretrained=False), shape
    raise ValueError(impl)


class Meter:
    """Peak memory of one step above what was held before it."""

    def __init__(self, device):
        self.device = device

    def start(self):
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            self.base = proc_status("VmRSS")
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset the peak resident set size

    def stop(self) -> tuple[float, float | None]:
        """(peak above the base, absolute peak or None), in MiB."""
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
            return (peak - self.base) / 2**20, peak / 2**20
        return (proc_status("VmHWM") - self.base) / 2**20, None


def measure(module, shape, args, device, precision: str, mode: str) -> dict:
    import torch

    module = module.to(device).train()
    x = torch.randn(args.batch, *shape, device=device)
    fn = module
    if mode == "compile":
        torch._dynamo.reset()
        fn = torch.compile(module, backend=args.compile_backend)
    dtype = torch.bfloat16 if precision == "bf16" else None

    def train_step():
        for p in module.parameters():
            p.grad = None
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = fn(x).float().square().mean()
        loss.backward()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    row = {}
    sync()
    t = time.perf_counter()
    train_step()  # the first step (it compiles, under torch.compile)
    sync()
    if mode == "compile":
        row["compile_s"] = time.perf_counter() - t
    for _ in range(args.warmup):
        train_step()
    for p in module.parameters():
        p.grad = None  # the step's gradients count in its peak
    meter = Meter(device)
    meter.start()
    train_step()
    row["peak_mib"], row["max_allocated_mib"] = meter.stop()
    times = []
    for _ in range(args.repeats):
        sync()
        t = time.perf_counter()
        train_step()
        sync()
        times.append(time.perf_counter() - t)
    row["step_ms"] = statistics.median(times) * 1e3
    return row


def plan(args):
    """Cases in running order: every eager case, then the compiled ones."""
    models = [m for m in MODELS if args.only in m]
    precisions = ("fp32",) if args.fp32_only else ("fp32", "bf16")
    eager = [(m, i, p, "eager") for m in models for i in COLUMNS for p in precisions if applies(m, i)]
    compiled = []
    if not args.no_compile:
        compiled = [(m, i, p, "compile") for m in models for i in COLUMNS for p in precisions if applies(m, i)]
        # The main implementations of every model first; then torchvision's checkpointing
        # and udnet naive (under compile the same graph as udnet shared).
        first = ("udnet shared", "torchvision", "timm")
        order = ("densenet121", "dpn92", "resnet50", "dense block L=64", "densenet264")
        compiled.sort(key=lambda c: (c[1] not in first, order.index(c[0]), precisions.index(c[2]),
                                     COLUMNS.index(c[1])))
        if args.smoke:  # the compile path once per kind of shared buffer (with and without a head)
            compiled = [c for c in compiled if c[1:3] == ("udnet shared", "fp32") and c[0] in ("densenet121", "dpn92")]
    return eager + compiled


def write(out: str, meta: dict, rows: list[dict]) -> None:
    tmp = os.path.join(out, "results.json.tmp")
    with open(tmp, "w") as f:
        json.dump({"meta": meta, "results": rows}, f, indent=1)
    os.replace(tmp, os.path.join(out, "results.json"))
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(table(meta, rows))


def table(meta: dict, rows: list[dict]) -> str:
    lines = [f"{meta['device']}, torch {meta['torch']}, batch {meta['batch']}, "
             f"{meta['size']}x{meta['size']} images, training step (forward + backward), "
             f"compile backend {meta['compile_backend']}", ""]
    mem_col = "peak MiB (above base / absolute)" if meta["cuda"] else "peak MiB above base"
    lines += [f"| model | implementation | precision | mode | {mem_col} | step ms | compile s | note |",
              "|---|---|---|---|---:|---:|---:|---|"]
    for r in rows:
        ok = r["status"] == "ok"
        mem = ""
        if ok:
            mem = f"{r['peak_mib']:.0f}"
            if r.get("max_allocated_mib") is not None:
                mem += f" / {r['max_allocated_mib']:.0f}"
        step = f"{r['step_ms']:.1f}" if ok else ""
        comp = f"{r['compile_s']:.1f}" if ok and "compile_s" in r else ""
        note = "" if ok else r["status"]
        cells = (r["model"], r["impl"], r["precision"], r["mode"], mem, step, comp, note)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=None, help="cuda (default where available) or cpu")
    ap.add_argument("--batch", type=int, default=None, help="64 (2 with --smoke)")
    ap.add_argument("--size", type=int, default=None, help="image size, 224 (32 with --smoke)")
    ap.add_argument("--repeats", type=int, default=None, help="timed steps per case, 5 (1 with --smoke)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps after the first, 2 (0 with --smoke)")
    ap.add_argument("--only", default="", help="the models whose name contains this")
    ap.add_argument("--fp32-only", action="store_true", help="no bf16 autocast cases")
    ap.add_argument("--no-compile", action="store_true", help="no torch.compile cases")
    ap.add_argument("--compile-backend", default=None, help="inductor (eager with --smoke)")
    ap.add_argument("--budget-s", type=float, default=420.0,
                    help="start no compiled case after this many seconds, or that would end after them")
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny variants, one repeat: checks the script runs")
    ap.add_argument("--out", default="gpu-results", help="directory for results.json and results.md")
    args = ap.parse_args()

    import torch

    if args.smoke:
        args.device = args.device or "cpu"
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu" and os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:
        # Restart with glibc returning large blocks, so the resident set follows the tensors.
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
        os.execve(sys.executable, [sys.executable, os.path.abspath(__file__)] + sys.argv[1:], env)
    small = args.smoke
    args.batch = args.batch or (2 if small else 64)
    args.size = args.size or (32 if small else 224)
    args.repeats = args.repeats if args.repeats is not None else (1 if small else 5)
    args.warmup = args.warmup if args.warmup is not None else (0 if small else 2)
    args.compile_backend = args.compile_backend or ("eager" if small else "inductor")
    torch.backends.cudnn.benchmark = False
    os.makedirs(args.out, exist_ok=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    meta = dict(device=name, cuda=device.type == "cuda", torch=torch.__version__, batch=args.batch, size=args.size,
                repeats=args.repeats, warmup=args.warmup, compile_backend=args.compile_backend, smoke=small)
    print(f"{name}, torch {torch.__version__}, batch {args.batch}, {args.size}x{args.size}", flush=True)

    rows: list[dict] = []
    start = time.perf_counter()
    slowest_compile = 0.0
    for model, impl, precision, mode in plan(args):
        row = dict(model=model, impl=impl, precision=precision, mode=mode)
        elapsed = time.perf_counter() - start
        if mode == "compile" and elapsed + slowest_compile > args.budget_s:
            row["status"] = f"skipped: time budget ({args.budget_s:.0f} s)"
        else:
            t0 = time.perf_counter()
            built = build(model, impl, small, args.size)
            if isinstance(built, str):
                row["status"] = built
            else:
                try:
                    row.update(measure(*built, args, device, precision, mode))
                    row["status"] = "ok"
                except Exception as e:  # noqa: BLE001 - recorded, and the run goes on
                    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                    row["status"] = f"error: {type(e).__name__}: {msg[:160]}"
                    if os.environ.get("UDNET_BENCH_TRACEBACK"):
                        traceback.print_exc()
            del built
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
            if mode == "compile":
                slowest_compile = max(slowest_compile, time.perf_counter() - t0)
        rows.append(row)
        write(args.out, meta, rows)
        ok = row["status"] == "ok"
        what = (f"{row['peak_mib']:.0f} MiB, {row['step_ms']:.1f} ms"
                + (f", compiled in {row['compile_s']:.1f} s" if "compile_s" in row else "")) if ok else row["status"]
        print(f"[{time.perf_counter() - start:6.0f} s] {model:<17} {impl:<29} {precision:<4} {mode:<7} {what}",
              flush=True)
    print(table(meta, rows), flush=True)


if __name__ == "__main__":
    main()
