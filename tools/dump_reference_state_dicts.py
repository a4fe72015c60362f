"""Regenerate tests/fixtures/reference_state_dicts/*.json.

Each fixture lists the exact state_dict keys and tensor shapes (buffers
included) of a reference model, plus its parameter count, so the tests can
check our generated modules against them without torchvision or timm.

This is a developer tool, not part of the package: it needs torchvision and
timm installed (e.g. in a separate venv) and must not be imported by the
package or the tests.  Run from anywhere:

    python tools/dump_reference_state_dicts.py            # every model
    python tools/dump_reference_state_dicts.py mobilenet_v2 resnet50_fpn

Only the libraries the chosen models come from are imported, so the torchvision
models can be dumped where timm is not installed.
"""

import json
import os
import sys

OUT_DIR = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    os.pardir, "tests", "fixtures", "reference_state_dicts",
)

TORCHVISION_MODELS = [
    "densenet121", "densenet169", "densenet201", "densenet161",
    "resnet18", "resnet50", "mobilenet_v2", "efficientnet_b0",
]
# The Mask R-CNN backbone: ResNet-50 with frozen batch norm, and the FPN on top of it.
DETECTION_BACKBONES = ["resnet50_fpn"]
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


def main(names):
    unknown = set(names) - set(TORCHVISION_MODELS + DETECTION_BACKBONES + TIMM_MODELS)
    if unknown:
        sys.exit("unknown model(s): " + ", ".join(sorted(unknown)))
    wanted = lambda group: [n for n in group if not names or n in names]  # noqa: E731
    os.makedirs(OUT_DIR, exist_ok=True)
    if wanted(TORCHVISION_MODELS + DETECTION_BACKBONES):
        import torchvision
        from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

        tv_source = "torchvision " + _version(torchvision)
        for name in wanted(TORCHVISION_MODELS):
            dump(name, getattr(torchvision.models, name)(weights=None), tv_source)
        for name in wanted(DETECTION_BACKBONES):
            body = name[: -len("_fpn")]
            model = resnet_fpn_backbone(backbone_name=body, weights=None)
            dump(name, model, tv_source + " resnet_fpn_backbone('%s')" % body)
    if wanted(TIMM_MODELS):
        import timm

        timm_source = "timm " + _version(timm)
        for name in wanted(TIMM_MODELS):
            dump(name, timm.create_model(name, pretrained=False), timm_source)


if __name__ == "__main__":
    main(sys.argv[1:])
