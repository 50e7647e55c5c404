"""GoogLeNet (Inception v1, Szegedy et al. 2014): the paper's network as published, its
training recipe, its 144-crop evaluation, and a fast inference path.

Where things live:
    model.py      the network, built from Table 1 (TABLE1); variants; registry (create_model)
    summary.py    Table 1 regenerated from the built model (`googlenet summary`)
    weights.py    safetensors / checkpoints / torchvision ImageNet weights (load_weights)
    preprocess.py the input pipeline stored with weights (Preprocess)
    imaging.py    reading images safely (load_image) and converting any mode to RGB
    crops.py      1 / 10 / 144 test-time crops (§7)
    data.py       datasets: built-in digits, image folders, CIFAR
    train.py      `googlenet train`: recipes, checkpoints, resume, DDP
    evaluate.py   `googlenet eval`: multi-crop, ensembles, Table 3
    predict.py    `googlenet predict`
    export.py     `googlenet export`: ONNX, TorchScript, torch.export
    fast.py       fast inference modes (BN folding, channels_last, bf16, int8, onnxruntime)
    bench.py      `googlenet bench`
    caffe.py      BVLC Caffe bvlc_googlenet import (`googlenet convert caffe`)
    cli.py        the command line
"""

from .model import (
    TABLE1, VARIANTS, GoogLeNet, GoogLeNetOutputs, InceptionSpec, create_model, list_models,
)

__version__ = "0.1.0"

__all__ = ["TABLE1", "VARIANTS", "GoogLeNet", "GoogLeNetOutputs", "InceptionSpec",
           "create_model", "list_models", "__version__"]
