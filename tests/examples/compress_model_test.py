#!/usr/bin/python3
"""The PyTorch -> slimnn -> compressed pipeline through examples/compress_model.

    /usr/bin/python3 tests/examples/compress_model_test.py COMPRESS_MODEL WORKDIR

Exports a random torch CNN with tools/export_pytorch.py, compresses it with a plan that
uses all four schemes, and checks the program's output, its per-layer CSV report and the
compressed file (which compress_model reads back with an empty plan). A plan that
selects nothing must fail with the library's message.
"""

import csv
import os
import subprocess
import sys
import unittest

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import export_pytorch  # noqa: E402

PROGRAM = WORKDIR = None
PLAN = ("conv2d[0]:kdconv:m6; conv2d[1]:block_circulant:k4; dense[0]:smartdeal:s8-seg50; "
        "dense[-1]:crew:u4")


def run(*args):
    return subprocess.run([PROGRAM, *args], capture_output=True, text=True)


class CompressModel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.manual_seed(3)
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                              nn.Linear(8 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, 10))
        cls.model = os.path.join(WORKDIR, "model.safetensors")
        export_pytorch.export(model, cls.model, (1, 8, 8))

    def test_compresses_with_every_scheme_and_writes_the_report(self):
        out = os.path.join(WORKDIR, "small.safetensors")
        r = run("--plan", PLAN, "--out", out, self.model)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("plan: " + PLAN, r.stdout)
        with open(os.path.splitext(out)[0] + ".csv", newline="") as f:
            rows = list(csv.DictReader(f))
        self.assertEqual([row["index"] for row in rows], ["0", "3", "6", "8"])
        self.assertEqual([row["rule"] for row in rows], [rule.strip() for rule in PLAN.split(";")])
        kinds = ["kdconv_conv2d", "block_circulant_conv2d", "smartdeal_dense", "crew_dense"]
        for row, kind in zip(rows, kinds):
            self.assertTrue(row["after"].startswith(kind + "<float>"), row["after"])
            self.assertGreater(float(row["relative_error"]), 0)
            self.assertGreater(int(row["stored_bytes"]), 0)
            self.assertGreater(int(row["dense_bytes"]), 0)
        # The compressed file loads; an empty plan keeps every layer as it is.
        again = run("--plan", "", "--out", os.path.join(WORKDIR, "again.safetensors"), out)
        self.assertEqual(again.returncode, 0, again.stderr)
        for kind in kinds:
            self.assertIn(kind, again.stdout)
        # Every layer with parameters was converted: the network's bytes are the report's.
        total = sum(int(row["stored_bytes"]) for row in rows)
        self.assertIn(f"network: {total} -> {total} bytes", again.stdout)

    def test_a_rule_that_selects_nothing_fails_naming_it(self):
        r = run("--plan", "dense[5]:crew:u16", "--out", os.path.join(WORKDIR, "none.safetensors"), self.model)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.strip(),
                         "slimnn: plan rule 'dense[5]:crew:u16' selects no layer of this 9-layer network")

    def test_a_bad_setting_fails_naming_it(self):
        r = run("--plan", "dense:smartdeal:s8-seg0", self.model)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.strip(),
                         "slimnn: smartdeal setting 's8-seg0': segment density must be in (0, 1], got 0")


if __name__ == "__main__":
    PROGRAM, WORKDIR = sys.argv[1], sys.argv[2]
    os.makedirs(WORKDIR, exist_ok=True)
    unittest.main(argv=sys.argv[:1])
