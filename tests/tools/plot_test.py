#!/usr/bin/python3
"""Tests of tools/plot_compare_schemes.py.

    /usr/bin/python3 tests/tools/plot_test.py WORKDIR

The Pareto front is checked against a brute-force dominance test on random points; the
plot is drawn from a small CSV in the format compare_schemes writes; the labels of points
at one place do not overlap; bad files give the documented errors.
"""

import os
import random
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import plot_compare_schemes as plot  # noqa: E402

WORKDIR = None
HEADER = ("network,scheme,setting,accuracy,param_bytes,compression_ratio,macs_per_sample,latency_b1_us,"
          "latency_b64_us\n")


def write(name, text):
    path = os.path.join(WORKDIR, name)
    with open(path, "w") as f:
        f.write(text)
    return path


class ParetoFront(unittest.TestCase):
    def test_matches_brute_force(self):
        rng = random.Random(3)
        for _ in range(200):
            points = [(rng.choice([1, 2, 3, 5, 8]) * 1.0, rng.choice([80, 85, 88, 90]) * 1.0) for _ in range(8)]
            undominated = {p for p in points if not any(
                q[0] <= p[0] and q[1] >= p[1] and (q[0] < p[0] or q[1] > p[1]) for q in points)}
            self.assertEqual(set(plot.pareto_front(points)), undominated, points)

    def test_front_rises_with_x(self):
        front = plot.pareto_front([(10, 90), (1, 80), (5, 85), (7, 84), (2, 80)])
        self.assertEqual(front, [(1, 80), (5, 85), (10, 90)])


class Plot(unittest.TestCase):
    def test_writes_svg_and_png(self):
        csv = write("results.csv", HEADER +
                    "mlp,dense,-,0.899,7454760,1,1861632,79.9,1464\n"
                    "mlp,crew,u16,0.8995,1147482,6.5,37166,28.4,2525\n"
                    "cnn,dense,-,0.919,1686568,1,4241152,118.6,9296\n"
                    "cnn,kdconv,m4-d30,0.915,1616869,1.04,1303112,61.9,3646\n")
        self.assertEqual(plot.main([csv]), 0)
        base = os.path.splitext(csv)[0]
        with open(base + ".svg") as f:
            svg = f.read()
        self.assertTrue(svg.lstrip().startswith("<?xml"))
        self.assertIn("</svg>", svg)
        with open(base + ".png", "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    def test_labels_of_coincident_points_do_not_overlap(self):
        fig, ax = plot.plt.subplots()
        points = [(1e6, 89.95, "u16"), (1e6, 89.94, "u16-a8"), (1e6, 89.95, "u16-a8-again"), (3e5, 88.0, "k64")]
        ax.scatter([p[0] for p in points], [p[1] for p in points])
        ax.set_xscale("log")
        plot.place_labels(ax, points)
        renderer = fig.canvas.get_renderer()
        boxes = {t.get_text(): t.get_window_extent(renderer) for t in ax.texts}
        self.assertEqual(sorted(boxes), sorted(p[2] for p in points))
        names = sorted(boxes)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                self.assertFalse(boxes[a].overlaps(boxes[b]), (a, b))
        plot.plt.close(fig)

    def test_bad_files(self):
        with self.assertRaises(ValueError) as e:
            plot.read_rows(write("wrong.csv", "a,b\n1,2\n"))
        self.assertIn("not a compare_schemes.csv (missing columns network, scheme, setting, accuracy, "
                      "param_bytes, latency_b1_us)", str(e.exception))
        with self.assertRaises(ValueError) as e:
            plot.read_rows(write("empty.csv", HEADER))
        self.assertTrue(str(e.exception).endswith("empty.csv: no results"))
        with self.assertRaises(ValueError) as e:
            plot.read_rows(write("nan.csv", HEADER + "mlp,dense,-,high,1,1,1,1,1\n"))
        self.assertIn("nan.csv:2:", str(e.exception))
        self.assertEqual(plot.main([os.path.join(WORKDIR, "missing.csv")]), 1)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: plot_test.py WORKDIR [unittest args]")
    WORKDIR = os.path.abspath(sys.argv[1])
    os.makedirs(WORKDIR, exist_ok=True)
    unittest.main(argv=[sys.argv[0]] + sys.argv[2:], verbosity=2)
