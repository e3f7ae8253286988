#!/usr/bin/python3
"""Export a PyTorch model to a slimnn network file.

    import export_pytorch                      # tools/ on sys.path
    export_pytorch.export(model, "model.safetensors", (1, 28, 28))

and in C++ (slimnn/io/network_io.hpp):

    auto net = slimnn::network<float>::load("model.safetensors");

The model is an nn.Sequential, or a module whose forward is a chain of supported layers
(traced with torch.fx, so nested Sequentials and functional calls such as F.relu and
torch.flatten(x, 1) work too). Supported: Linear, Conv2d (square kernel and stride,
integer padding, no groups or dilation, zero padding mode), ReLU, MaxPool2d and
AvgPool2d (square kernel and stride, no padding, floor mode), Flatten (from dimension 1)
and the inference no-ops Identity and Dropout. A missing bias is written as zeros.

The file is the one slimnn::save writes: safetensors with layer i's tensors under "<i>."
("0.weight" [out, in] or [N, C, k, k], "0.bias") in float32, and in __metadata__
"slimnn.architecture" (a JSON array of {"kind", "settings"}) and "slimnn.scalar".
input_shape is (features,) or (C, H, W), without the batch dimension. Anything the
format cannot express raises ExportError naming the module and its path in the model.

Needs torch and numpy only (Debian: python3-torch, python3-numpy). As a command:

    export_pytorch.py models.py:make_model model.safetensors --input-shape 1,28,28
    export_pytorch.py model.pt model.safetensors --input-shape 784 [--weights sd.pt]

where the source is file.py:NAME or package.module:NAME (a module, or a callable
returning one), or a .pt/.pth file holding a whole module saved with torch.save.
"""

import argparse
import importlib
import importlib.util
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["ExportError", "export", "architecture"]


class ExportError(ValueError):
    """The model cannot be written as a slimnn network; the message says why and where."""


def _shape_str(shape):
    c, h, w = shape
    return str(c) if h == 1 and w == 1 else f"{c}x{h}x{w}"


def _square(value, what, where):
    """An int from an int or a pair of equal ints."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or value[0] != value[1]:
            raise ExportError(f"{where}: {what} {tuple(value)} is not square (slimnn needs k x k)")
        value = value[0]
    if not isinstance(value, int):
        raise ExportError(f"{where}: {what} {value!r} is not an integer")
    return value


def _weights(tensor):
    return np.ascontiguousarray(tensor.detach().cpu().to(torch.float32).numpy())


class _Builder:
    """Follows the shape through the chain and collects the layers."""

    def __init__(self, input_shape):
        self.shape = input_shape
        self.layers = []  # (kind, settings, {tensor suffix: array})

    def add(self, kind, settings, tensors, out_shape):
        self.layers.append((kind, {k: str(v) for k, v in settings.items()}, tensors))
        self.shape = out_shape

    def linear(self, m, where):
        features = self.shape[0] * self.shape[1] * self.shape[2]
        if self.shape[1:] != (1, 1):
            raise ExportError(f"{where}: Linear gets a {_shape_str(self.shape)} image; put a Flatten before it")
        if m.in_features != features:
            raise ExportError(f"{where}: Linear expects {m.in_features} inputs, the layer before gives {features}")
        bias = _weights(m.bias) if m.bias is not None else np.zeros(m.out_features, np.float32)
        self.add("dense", {"inputs": m.in_features, "outputs": m.out_features},
                 {"weight": _weights(m.weight), "bias": bias}, (m.out_features, 1, 1))

    def conv2d(self, m, where):
        c, h, w = self.shape
        if m.groups != 1:
            raise ExportError(f"{where}: Conv2d with groups={m.groups} (slimnn's conv2d has groups=1)")
        if _square(m.dilation, "dilation", where) != 1:
            raise ExportError(f"{where}: Conv2d with dilation {m.dilation} (slimnn's conv2d has dilation 1)")
        if m.padding_mode != "zeros":
            raise ExportError(f"{where}: Conv2d with padding_mode '{m.padding_mode}' (slimnn pads with zeros)")
        if isinstance(m.padding, str):
            raise ExportError(f"{where}: Conv2d with padding '{m.padding}' (give the padding as an integer)")
        k = _square(m.kernel_size, "kernel_size", where)
        s = _square(m.stride, "stride", where)
        p = _square(m.padding, "padding", where)
        if m.in_channels != c:
            raise ExportError(f"{where}: Conv2d expects {m.in_channels} channels, the input is {_shape_str(self.shape)}")
        if h + 2 * p < k or w + 2 * p < k:
            raise ExportError(f"{where}: kernel {k} does not fit input {_shape_str(self.shape)} with padding {p}")
        out = (m.out_channels, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
        bias = _weights(m.bias) if m.bias is not None else np.zeros(m.out_channels, np.float32)
        self.add("conv2d", {"input": _shape_str(self.shape), "out_channels": m.out_channels, "kernel": k,
                            "stride": s, "padding": p},
                 {"weight": _weights(m.weight), "bias": bias}, out)

    def pool2d(self, m, where):
        name = type(m).__name__
        k = _square(m.kernel_size, "kernel_size", where)
        s = _square(m.stride if m.stride is not None else m.kernel_size, "stride", where)
        if _square(m.padding, "padding", where) != 0:
            raise ExportError(f"{where}: {name} with padding {m.padding} (slimnn pools without padding)")
        if m.ceil_mode:
            raise ExportError(f"{where}: {name} with ceil_mode=True (slimnn rounds the output size down)")
        if isinstance(m, nn.MaxPool2d):
            if _square(m.dilation, "dilation", where) != 1 or m.return_indices:
                raise ExportError(f"{where}: MaxPool2d with dilation or return_indices (not supported)")
            kind = "max_pool2d"
        else:
            if m.divisor_override is not None:
                raise ExportError(f"{where}: AvgPool2d with divisor_override (not supported)")
            kind = "avg_pool2d"
        c, h, w = self.shape
        if k > h or k > w:
            raise ExportError(f"{where}: {name} kernel {k} does not fit input {_shape_str(self.shape)}")
        self.add(kind, {"input": _shape_str(self.shape), "kernel": k, "stride": s}, {},
                 (c, (h - k) // s + 1, (w - k) // s + 1))

    def relu(self):
        self.add("relu", {"input": _shape_str(self.shape)}, {}, self.shape)

    def flatten(self, start_dim, end_dim, where):
        if start_dim != 1 or end_dim != -1:
            raise ExportError(f"{where}: Flatten({start_dim}, {end_dim}) (slimnn flattens from dimension 1 to the end)")
        c, h, w = self.shape
        self.add("flatten", {"input": _shape_str(self.shape)}, {}, (c * h * w, 1, 1))


def _module_step(builder, m, where):
    if isinstance(m, nn.Linear):
        builder.linear(m, where)
    elif isinstance(m, nn.Conv2d):
        builder.conv2d(m, where)
    elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        builder.pool2d(m, where)
    elif isinstance(m, nn.ReLU):
        builder.relu()
    elif isinstance(m, nn.Flatten):
        builder.flatten(m.start_dim, m.end_dim, where)
    elif isinstance(m, (nn.Identity, nn.Dropout)):
        pass
    else:
        raise ExportError(f"module '{where}' ({type(m).__name__}) is not supported; supported: Linear, Conv2d, "
                          "ReLU, MaxPool2d, AvgPool2d, Flatten (and Identity, Dropout)")


def _call_step(builder, node):
    """A functional call or tensor method in a traced forward."""
    where = f"forward, node '{node.name}' ({node.format_node()})"
    target = node.target
    args = node.args[1:]
    kwargs = dict(node.kwargs)
    if target in (F.relu, torch.relu, "relu"):
        builder.relu()
    elif target in (torch.flatten, "flatten"):
        start = args[0] if args else kwargs.get("start_dim", 0)
        end = args[1] if len(args) > 1 else kwargs.get("end_dim", -1)
        builder.flatten(start, end, where)
    else:
        raise ExportError(f"{where} is not supported; the forward may call modules, F.relu, torch.relu and "
                          "torch.flatten(x, 1)")


def _trace(model):
    if isinstance(model, nn.Sequential):
        return None
    try:
        return torch.fx.symbolic_trace(model)
    except Exception as e:  # fx raises many kinds
        raise ExportError(f"cannot trace {type(model).__name__}.forward with torch.fx ({e}); "
                          "write the model as an nn.Sequential") from e


def _sequential_steps(builder, seq, prefix):
    for name, child in seq.named_children():
        where = f"{prefix}{name}"
        if isinstance(child, nn.Sequential):
            _sequential_steps(builder, child, where + ".")
        else:
            _module_step(builder, child, where)


def _parse_input_shape(input_shape):
    try:
        dims = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise ExportError(f"input_shape {input_shape!r} must be (features,) or (C, H, W) of positive integers")
    if len(dims) not in (1, 3) or any(d < 1 for d in dims):
        raise ExportError(f"input_shape {input_shape!r} must be (features,) or (C, H, W) of positive integers")
    return dims + (1, 1) if len(dims) == 1 else dims


def _build(model, input_shape):
    if not isinstance(model, nn.Module):
        raise ExportError(f"the model is a {type(model).__name__}, not a torch.nn.Module")
    builder = _Builder(_parse_input_shape(input_shape))
    graph = _trace(model)
    if graph is None:
        _sequential_steps(builder, model, "")
    else:
        value = None  # the node holding the running activation
        for node in graph.graph.nodes:
            if node.op == "placeholder":
                if value is not None:
                    raise ExportError("forward takes more than one input; slimnn networks take one")
                value = node
            elif node.op == "output":
                if node.args[0] is not value:
                    raise ExportError("forward does not return the end of its chain of layers")
            elif node.op in ("call_module", "call_function", "call_method"):
                if not node.args or node.args[0] is not value or any(
                        isinstance(a, torch.fx.Node) for a in list(node.args[1:]) + list(node.kwargs.values())):
                    raise ExportError(f"forward, node '{node.name}' ({node.format_node()}) is not a step of one "
                                      "chain (slimnn networks are sequential)")
                if node.op == "call_module":
                    _module_step(builder, graph.get_submodule(node.target), node.target)
                else:
                    _call_step(builder, node)
                value = node
            else:
                raise ExportError(f"forward, node '{node.name}' ({node.format_node()}) is not supported")
    if not builder.layers:
        raise ExportError("the model has no layers slimnn can run")
    return builder


def architecture(model, input_shape):
    """The slimnn layers of `model`: a list of (kind, settings, {name: float32 array})."""
    return _build(model, input_shape).layers


def _safetensors_bytes(tensors, metadata):
    """tensors: {name: float32 array}, in the order given."""
    header, offset, blobs = {}, 0, []
    for name, array in tensors.items():
        data = array.astype("<f4", copy=False).tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)  # the buffer starts 8-byte aligned
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def export(model, path, input_shape):
    """Writes `model` (in inference mode) to the slimnn network file at `path`.

    input_shape: (features,) or (C, H, W), without the batch dimension. Returns the list
    of slimnn layer kinds written. Raises ExportError for what slimnn cannot express.
    """
    builder = _build(model, input_shape)
    # The chain must compute what torch computes: compare the output size on zeros.
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros((1,) + tuple(int(d) for d in input_shape)))
    finally:
        model.train(was_training)
    c, h, w = builder.shape
    if not isinstance(out, torch.Tensor) or out.numel() != c * h * w:
        raise ExportError(f"torch's output has shape {tuple(getattr(out, 'shape', ()))} per sample, the "
                          f"exported chain gives {_shape_str(builder.shape)}")
    tensors = {}
    for i, (_, _, named) in enumerate(builder.layers):
        for suffix, array in named.items():
            tensors[f"{i}.{suffix}"] = array
    metadata = {"slimnn.architecture": json.dumps([{"kind": k, "settings": s} for k, s, _ in builder.layers]),
                "slimnn.scalar": "float"}
    data = _safetensors_bytes(tensors, metadata)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return [k for k, _, _ in builder.layers]


def _load_source(source, weights):
    if source.endswith((".pt", ".pth")) and os.path.isfile(source):
        try:  # a whole module is a pickle: newer torch loads it only with weights_only=False
            model = torch.load(source, map_location="cpu", weights_only=False)
        except TypeError:
            model = torch.load(source, map_location="cpu")
    else:
        where, sep, name = source.rpartition(":")
        if not sep or not where or not name:
            raise ExportError(f"source '{source}' is neither a .pt/.pth file nor file.py:NAME or module:NAME")
        if where.endswith(".py"):
            if not os.path.isfile(where):
                raise ExportError(f"source '{source}': no file '{where}'")
            spec = importlib.util.spec_from_file_location("_slimnn_export_source", where)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
        if not hasattr(module, name):
            raise ExportError(f"source '{source}': '{where}' has no '{name}'")
        model = getattr(module, name)
        if not isinstance(model, nn.Module) and callable(model):
            model = model()
    if not isinstance(model, nn.Module):
        raise ExportError(f"source '{source}' gives a {type(model).__name__}, not a torch.nn.Module")
    if weights:
        model.load_state_dict(torch.load(weights, map_location="cpu"))
    return model


def _positive_shape(text):
    try:
        dims = tuple(int(d) for d in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a shape like 784 or 1,28,28")
    if len(dims) not in (1, 3) or any(d < 1 for d in dims):
        raise argparse.ArgumentTypeError(f"'{text}' is not a shape like 784 or 1,28,28")
    return dims


def main(argv=None):
    parser = argparse.ArgumentParser(description="Export a PyTorch model to a slimnn network file.")
    parser.add_argument("source", help="file.py:NAME, package.module:NAME, or a .pt/.pth file of a whole module")
    parser.add_argument("output", help="the slimnn network file to write (.safetensors)")
    parser.add_argument("--input-shape", required=True, type=_positive_shape,
                        help="one sample's shape without the batch: 784 or 1,28,28")
    parser.add_argument("--weights", help="a state_dict (.pt) to load into the model first")
    args = parser.parse_args(argv)
    try:
        kinds = export(_load_source(args.source, args.weights), args.output, args.input_shape)
    except ExportError as e:
        print(f"export_pytorch: {e}", file=sys.stderr)
        return 1
    print(f"export_pytorch: wrote {args.output}: {' -> '.join(kinds)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
