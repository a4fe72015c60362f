"""Regenerate tests/fixtures/reference_state_dicts/*.json.

Each fixture lists the exact state_dict keys and tensor shapes (buffers
included) of a reference model, plus its parameter count, so the tests can
check our generated modules against them without torchvision or timm.

This is a developer tool, not part of the package: it needs torchvision and
timm installed (e.g. in a separate venv) and must not be imported by the
package or the tests.  Run from anywhere:

    python tools/dump_reference_state_dicts.py
"""

import json
import os

import timm
import torchvision

OUT_DIR = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    os.pardir, "tests", "fixtures", "reference_state_dicts",
)

TORCHVISION_MODELS = [
    "densenet121", "densenet169", "densenet201", "densenet161",
    "resnet18", "resnet50",
]
TIMM_MODELS = ["dpn68", "dpn92", "dpn98", "dpn131"]


def _version(module):
    return module.__version__.split("+")[0]


def dump(name, model, source):
    entries = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    num_params = sum(p.numel() for p in model.parameters())
    head = '{"model": %s, "source": %s, "num_params": %d, "state_dict": [\n' % (
        json.dumps(name), json.dumps(source), num_params)
    body = ",\n".join(json.dumps(e) for e in entries)
    path = os.path.join(OUT_DIR, name + ".json")
    with open(path, "w") as f:
        f.write(head + body + "\n]}\n")
    print("%-12s params=%d entries=%d -> %s"
          % (name, num_params, len(entries), os.path.normpath(path)))


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    tv_source = "torchvision " + _version(torchvision)
    for name in TORCHVISION_MODELS:
        dump(name, getattr(torchvision.models, name)(weights=None), tv_source)
    timm_source = "timm " + _version(timm)
    for name in TIMM_MODELS:
        dump(name, timm.create_model(name, pretrained=False), timm_source)


if __name__ == "__main__":
    main()
