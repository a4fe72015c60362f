"""Concat-buffer sharing versus naive concatenation: peak training memory and step time.

    python benchmarks/bench_concat_sharing.py [--batch 8] [--repeats 3] [--quick]

Cases: densenet121, dpn68 and dpn92 (224x224), and one dense block of 16, 32 and 64
layers (256 input channels, k = 32, 28x28), each compiled with and without
--no-share-concat. ``--only dpn`` runs the cases whose name contains "dpn".

Memory: each case runs in a fresh process; peak memory of one training step (forward
+ backward) above the memory held before it. On CPU this is the peak resident set
(VmHWM, reset before the step, with glibc returning large blocks to the system); on a
GPU it is torch.cuda.max_memory_allocated. Time: both variants of a case alternate in
one process and the ratio of medians is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from common import proc_status

HERE = os.path.dirname(os.path.abspath(__file__))
SPECS = os.path.join(HERE, "..", "specs")
BLOCK = """
block Layer(k) {{ norm1: bn; relu1: relu; conv1: conv(4 * k, 1); norm2: bn; relu2: relu; conv2: conv(k, 3, pad = 1) }}
network Block(n = {n}, input = [256, 28, 28]) {{
    block: {{ for i in 1..n {{ x = x ++ (x |> denselayer{{i}}: Layer(32)) }} }}
    gap
}}
"""


def cases(quick: bool):
    """(name, spec text, input shape, spec parameters)."""
    out = [("dense block L=16", BLOCK.format(n=16), [256, 28, 28], {}),
           ("dense block L=32", BLOCK.format(n=32), [256, 28, 28], {}),
           ("dense block L=64", BLOCK.format(n=64), [256, 28, 28], {})]
    if not quick:
        dpn = open(os.path.join(SPECS, "dpn.ud")).read()
        out[:0] = [("densenet121", open(os.path.join(SPECS, "densenet.ud")).read(), [3, 224, 224], {}),
                   ("dpn68", dpn, [3, 224, 224], {"variant": 68}),
                   ("dpn92", dpn, [3, 224, 224], {"variant": 92})]
    return out


def _model(spec: str, params: dict, shared: bool, device: str):
    import udnet

    disable = () if shared else ("share-concat",)
    return udnet.load(spec, disable=disable, **params).to(device).train()


def measure_memory(spec: str, params: dict, shape, batch: int, shared: bool) -> int:
    """Runs in a child process: bytes of peak memory one training step adds."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cudnn.benchmark = False
    model = _model(spec, params, shared, device)
    x = torch.randn(batch, *shape, device=device)
    model(x).sum().backward()  # warm up: gradients and allocator state exist from now on
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        model(x).sum().backward()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    base = proc_status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak resident set size
    model(x).sum().backward()
    return proc_status("VmHWM") - base


def time_pair(spec: str, params: dict, shape, batch: int, repeats: int) -> dict[str, list[float]]:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cudnn.benchmark = False
    models = {"naive": _model(spec, params, False, device), "shared": _model(spec, params, True, device)}
    models["shared"].load_state_dict(models["naive"].state_dict())
    x = torch.randn(batch, *shape, device=device)
    times: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(repeats + 1):
        for name, m in models.items():
            if device == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            m(x).sum().backward()
            if device == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t)
    return {k: v[1:] for k, v in times.items()}  # drop the warm-up step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="dense blocks only")
    ap.add_argument("--only", default="", help="run the cases whose name contains this")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        spec_file, params, shape, batch, shared = args.child
        print(measure_memory(open(spec_file).read(), json.loads(params), json.loads(shape), int(batch),
                             shared == "1"))
        return
    import tempfile

    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {device}, batch {args.batch}, fp32, training step (forward + backward)")
    print(f"{'case':<18} {'naive MiB':>10} {'shared MiB':>11} {'mem ratio':>9} {'naive ms':>9} "
          f"{'shared ms':>10} {'time ratio':>10}")
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    results = []
    for name, spec, shape, params in cases(args.quick):
        if args.only not in name:
            continue
        with tempfile.NamedTemporaryFile("w", suffix=".ud", delete=False) as f:
            f.write(spec)
        mem = {}
        for shared in (False, True):
            out = subprocess.run([sys.executable, __file__, "--child", f.name, json.dumps(params), json.dumps(shape),
                                  str(args.batch), "1" if shared else "0"],
                                 capture_output=True, text=True, env=env, check=True)
            mem["shared" if shared else "naive"] = int(out.stdout.split()[-1])
        os.unlink(f.name)
        t = time_pair(spec, params, shape, args.batch, args.repeats)
        tn, ts = statistics.median(t["naive"]), statistics.median(t["shared"])
        row = dict(case=name, naive_mib=mem["naive"] / 2**20, shared_mib=mem["shared"] / 2**20,
                   naive_ms=tn * 1e3, shared_ms=ts * 1e3)
        results.append(row)
        print(f"{name:<18} {row['naive_mib']:>10.0f} {row['shared_mib']:>11.0f} "
              f"{mem['shared'] / mem['naive']:>9.2f} {tn * 1e3:>9.0f} {ts * 1e3:>10.0f} {ts / tn:>10.3f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
