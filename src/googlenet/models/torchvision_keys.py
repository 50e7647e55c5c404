"""torchvision's GoogLeNet state-dict keys, mapped to this package's (the paper's) names."""

__all__ = ["torchvision_key", "torchvision_keys_hook"]


# torchvision's module names -> ours, so `load_state_dict(torchvision_model.state_dict())` works
# on the torchvision variant as it is (its names are positional; ours are the paper's).
_TV_STEM = {"conv2.": "conv2_reduce.", "conv3.": "conv2."}
_TV_BRANCH = {"branch1.": "conv1x1.", "branch2.0.": "reduce3x3.", "branch2.1.": "conv3x3.",
              "branch3.0.": "reduce5x5.", "branch3.1.": "conv5x5.", "branch4.1.": "pool_proj."}
_TV_AUX = {"fc1.": "fc1.", "fc2.": "fc2.", "conv.": "conv."}


def torchvision_key(key: str) -> str:
    """Translate one torchvision GoogLeNet state-dict key to this module's naming."""
    for old, new in _TV_STEM.items():
        if key.startswith(old):
            return new + key[len(old):]
    if key.startswith("inception") and not key.startswith("inception_"):
        stage, rest = key.split(".", 1)
        for old, new in _TV_BRANCH.items():
            if rest.startswith(old):
                return f"inception_{stage[len('inception'):]}." + new + rest[len(old):]
    if key.startswith("maxpool"):
        return "pool" + key[len("maxpool"):]
    return key


def torchvision_keys_hook(state_dict, prefix, local_metadata, strict, missing_keys,
                          unexpected_keys, error_msgs) -> None:
    own = prefix + "inception_3a."
    tv = prefix + "inception3a."
    if any(k.startswith(tv) for k in state_dict) and not any(k.startswith(own) for k in state_dict):
        for key in list(state_dict):
            if key.startswith(prefix):
                state_dict[prefix + torchvision_key(key[len(prefix):])] = state_dict.pop(key)
