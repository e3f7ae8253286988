#!/usr/bin/python3
"""Tests of tools/export_pytorch.py: export random torch models, load them in C++, compare.

    /usr/bin/python3 tests/pytorch/export_test.py CHECKER WORKDIR

CHECKER is the slimnn_export_check program (tests/pytorch/export_check.cpp): it loads an
exported network and a file of inputs and torch logits, and fails unless
max |slimnn - torch| <= 1e-5 of the logits' scale. WORKDIR receives the files.
Every supported layer kind appears in at least one model, in both ways a model can be
written (nn.Sequential, and a module whose forward torch.fx traces). The error cases
check the exact messages.
"""

import os
import subprocess
import sys
import unittest

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import export_pytorch  # noqa: E402

CHECKER = WORKDIR = None


class TracedCnn(nn.Module):
    """A forward of modules, functional calls and tensor methods, with a nested Sequential."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(2, 5, 3, stride=1, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.conv = nn.Conv2d(5, 4, 3, stride=2, padding=2, bias=False)
        self.pool = nn.AvgPool2d(2, stride=1)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(4 * 3 * 3, 7)

    def forward(self, x):
        x = self.features(x)
        x = F.relu(self.conv(x))
        x = self.pool(x).relu()
        x = torch.flatten(x, 1)
        return self.head(self.drop(x))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)

    def forward(self, x):
        return self.a(x) + x


def _models():
    """(name, model, input_shape): every supported layer kind, both ways of writing a model."""
    return [
        ("mlp", nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 10)), (20,)),
        ("mlp_image_input", nn.Sequential(nn.Flatten(), nn.Linear(144, 12), nn.ReLU(), nn.Identity(),
                                          nn.Linear(12, 10, bias=False)), (1, 12, 12)),
        ("cnn_sequential", nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Sequential(nn.Conv2d(6, 8, 3, stride=2), nn.ReLU()),
            nn.AvgPool2d(3, stride=1), nn.Flatten(), nn.Linear(8 * 4 * 4, 10)), (1, 28, 28)),
        ("cnn_traced", TracedCnn(), (2, 12, 12)),
        ("cnn_maxpool_stride", nn.Sequential(nn.Conv2d(3, 4, 3, stride=(2, 2), padding=(1, 1)), nn.ReLU(),
                                             nn.MaxPool2d(3, stride=2), nn.Flatten(), nn.Linear(4 * 3 * 3, 5)),
         (3, 15, 15)),
    ]


def _write_cases(path, x, logits):
    tensors = {"x": x.reshape(x.shape[0], -1).numpy().astype(np.float32),
               "logits": logits.numpy().astype(np.float32)}
    with open(path, "wb") as f:
        f.write(export_pytorch._safetensors_bytes(tensors, {}))


class ExportMatchesTorch(unittest.TestCase):
    def test_every_model_matches_torch_in_cpp(self):
        kinds = set()
        for seed, (name, model, shape) in enumerate(_models()):
            with self.subTest(model=name):
                torch.manual_seed(seed)
                for p in model.parameters():  # fresh random weights, biases away from zero
                    nn.init.normal_(p, std=0.5)
                model.eval()
                network = os.path.join(WORKDIR, f"{name}.safetensors")
                kinds.update(export_pytorch.export(model, network, shape))
                x = torch.randn((6,) + shape)
                with torch.no_grad():
                    logits = model(x)
                cases = os.path.join(WORKDIR, f"{name}.cases.safetensors")
                _write_cases(cases, x, logits)
                run = subprocess.run([CHECKER, network, cases], capture_output=True, text=True)
                sys.stdout.write(run.stdout)
                self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertEqual(kinds, {"dense", "conv2d", "relu", "max_pool2d", "avg_pool2d", "flatten"})

    def test_export_leaves_the_training_mode_alone(self):
        model = nn.Sequential(nn.Linear(3, 2))
        model.train()
        export_pytorch.export(model, os.path.join(WORKDIR, "mode.safetensors"), (3,))
        self.assertTrue(model.training)

    def test_the_checker_fails_on_a_wrong_model(self):
        # The comparison can fail: another model's logits are not accepted.
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 3))
        network = os.path.join(WORKDIR, "wrong.safetensors")
        export_pytorch.export(model, network, (5,))
        x = torch.randn(4, 5)
        with torch.no_grad():
            logits = model(x) + 1e-3
        cases = os.path.join(WORKDIR, "wrong.cases.safetensors")
        _write_cases(cases, x, logits)
        run = subprocess.run([CHECKER, network, cases], capture_output=True, text=True)
        self.assertEqual(run.returncode, 1)
        self.assertIn("FAILED (limit 1e-5)", run.stdout)


class ExportErrors(unittest.TestCase):
    def assert_export_error(self, model, shape, message):
        with self.assertRaises(export_pytorch.ExportError) as caught:
            export_pytorch.export(model, os.path.join(WORKDIR, "error.safetensors"), shape)
        self.assertEqual(str(caught.exception), message)

    def test_unsupported_module_names_its_path_and_type(self):
        self.assert_export_error(
            nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.BatchNorm1d(4))), (4,),
            "module '1.0' (BatchNorm1d) is not supported; supported: Linear, Conv2d, ReLU, MaxPool2d, "
            "AvgPool2d, Flatten (and Identity, Dropout)")

    def test_unsupported_module_in_a_traced_forward(self):
        class WithSigmoid(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4)
                self.act = nn.Sigmoid()

            def forward(self, x):
                return self.act(self.fc(x))

        self.assert_export_error(WithSigmoid(), (4,),
                                 "module 'act' (Sigmoid) is not supported; supported: Linear, Conv2d, ReLU, "
                                 "MaxPool2d, AvgPool2d, Flatten (and Identity, Dropout)")

    def test_a_forward_that_is_not_a_chain(self):
        with self.assertRaises(export_pytorch.ExportError) as caught:
            export_pytorch.export(Residual(), os.path.join(WORKDIR, "error.safetensors"), (4,))
        self.assertIn("is not a step of one chain (slimnn networks are sequential)", str(caught.exception))

    def test_unsupported_settings(self):
        self.assert_export_error(nn.Sequential(nn.Conv2d(2, 2, 3, groups=2)), (2, 8, 8),
                                 "0: Conv2d with groups=2 (slimnn's conv2d has groups=1)")
        self.assert_export_error(nn.Sequential(nn.Conv2d(1, 2, (3, 5))), (1, 8, 8),
                                 "0: kernel_size (3, 5) is not square (slimnn needs k x k)")
        self.assert_export_error(nn.Sequential(nn.MaxPool2d(2, padding=1)), (1, 8, 8),
                                 "0: MaxPool2d with padding 1 (slimnn pools without padding)")
        self.assert_export_error(nn.Sequential(nn.Flatten(), nn.Linear(63, 2)), (1, 8, 8),
                                 "1: Linear expects 63 inputs, the layer before gives 64")
        self.assert_export_error(nn.Sequential(nn.Linear(64, 2)), (1, 8, 8),
                                 "0: Linear gets a 1x8x8 image; put a Flatten before it")

    def test_bad_input_shape(self):
        for shape in [(3, 4), (0,), ("a",)]:
            with self.subTest(shape=shape):
                self.assert_export_error(nn.Sequential(nn.ReLU()), shape,
                                         f"input_shape {shape!r} must be (features,) or (C, H, W) of positive "
                                         "integers")

    def test_not_a_module(self):
        self.assert_export_error(lambda x: x, (4,), "the model is a function, not a torch.nn.Module")


class CommandLine(unittest.TestCase):
    TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "export_pytorch.py")

    def run_tool(self, *args):
        return subprocess.run([sys.executable, self.TOOL, *args], capture_output=True, text=True)

    def write_source(self, text):
        path = os.path.join(WORKDIR, "source_model.py")
        with open(path, "w") as f:
            f.write("import torch.nn as nn\n" + text)
        return path

    def test_exports_a_model_from_a_python_file(self):
        source = self.write_source("def make():\n    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))\n")
        out = os.path.join(WORKDIR, "cli.safetensors")
        run = self.run_tool(f"{source}:make", out, "--input-shape", "1,4,4")
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(run.stdout, f"export_pytorch: wrote {out}: flatten -> dense\n")

    def test_an_unsupported_model_exits_1_with_the_message(self):
        source = self.write_source("model = nn.Sequential(nn.Tanh())\n")
        run = self.run_tool(f"{source}:model", os.path.join(WORKDIR, "cli.safetensors"), "--input-shape", "4")
        self.assertEqual(run.returncode, 1)
        self.assertEqual(run.stderr, "export_pytorch: module '0' (Tanh) is not supported; supported: Linear, "
                                     "Conv2d, ReLU, MaxPool2d, AvgPool2d, Flatten (and Identity, Dropout)\n")

    def test_bad_arguments_exit_2(self):
        run = self.run_tool("x.py:m", "out.safetensors", "--input-shape", "1,x")
        self.assertEqual(run.returncode, 2)
        self.assertIn("'1,x' is not a shape like 784 or 1,28,28", run.stderr)
        run = self.run_tool("x.py:m")
        self.assertEqual(run.returncode, 2)
        self.assertIn("usage:", run.stderr)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: export_test.py CHECKER WORKDIR [unittest args]")
    CHECKER, WORKDIR = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    os.makedirs(WORKDIR, exist_ok=True)
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)
