"""GoogLeNet (Inception v1, Szegedy et al. 2014): the paper's network as published, its
training recipe, its 144-crop evaluation, and a fast inference path.

The package is layered; each folder may import only the folders below it (checked by
import-linter, contracts in pyproject.toml; README "Code layout" lists every module):

    cli/        the command line: argument parsing and error mapping only
    tasks/      what is trained: classification (aux-head loss, top-k, compatibility checks)
    infer/      evaluate (1/10/144 crops, ensembles), predict, fast modes, bench
    engine/     the task-agnostic training engine: loop, checkpoints, resume, averaging,
                schedule, seeded sampling, DDP, logging and plots, config
    sources/    resolving a weights argument (run dir, file, 'imagenet', caffe:) to a model
    interop/    BVLC Caffe, torchvision weights, export (ONNX, TorchScript, torch.export)
    weights/    typed records (WeightsMeta, TrainCheckpoint) and safe, atomic file I/O
    data/       datasets, image reading, preprocessing, test-time crops, train transforms
    metrics/    top-k, confusion matrix, agreement with fp32
    models/     the network from Table 1, the registry, Table 1 recomputed, graph rewrites
"""

from .models import (
    TABLE1, VARIANTS, GoogLeNet, GoogLeNetOutputs, InceptionSpec, list_models,
)
from .sources import create_model, load_weights

__version__ = "0.1.0"

__all__ = ["TABLE1", "VARIANTS", "GoogLeNet", "GoogLeNetOutputs", "InceptionSpec",
           "create_model", "list_models", "load_weights", "__version__"]
