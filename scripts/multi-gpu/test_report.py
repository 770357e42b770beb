"""report.py's verdicts on made-up runs shaped as `zt train --loss-curve`, the FSDP2 peer and
`zt bench comm` write them: parity fails past its bounds, without a stage-0 curve and when a run
does not train; scaling's efficiency, formula and goals; comm fails on wrong elements.
Run: python3 -m unittest test_report (from scripts/multi-gpu)."""
import contextlib
import io
import json
import os
import tempfile
import unittest

import report


def zt_curve(stage, world, loss, precision="bf16", model="gpt2-tiny", ms=10.0, params=1000, states=None):
    n = len(loss)
    return {"model": model, "steps": n, "batch_size": 4, "seq_len": 64, "stage": stage, "world_size": world,
            "tokens_per_s": 0, "median_step_ms": ms, "parameters": params, "device": "cuda:0", "precision": precision,
            "device_peak_bytes": 3 * 2**30, "loss": loss, "grad_norm": [1.0] * n,
            "memory_per_rank": {"parameters": 0, "gradients": 0, "master_weights": 0, "optimizer_states": 0,
                                "model_states": states if states is not None else 16 * params, "bucket_peak": 0,
                                "gathered_peak": 0}}


class Runs:
    def __init__(self, test):
        tmp = tempfile.TemporaryDirectory()
        test.addCleanup(tmp.cleanup)
        self.dir = tmp.name

    def put(self, name, data):
        with open(os.path.join(self.dir, name), "w") as f:
            f.write(data if isinstance(data, str) else json.dumps(data))

    def out(self):
        return os.path.join(self.dir, "out.json.result")


def quiet(fn, *args):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return fn(*args)


class Parity(unittest.TestCase):
    def parity(self, curves):
        runs = Runs(self)
        for name, c in curves.items():
            runs.put(name, c)
        rc = quiet(report.parity, runs.dir, runs.out())
        return rc, report.load(runs.out()) if os.path.exists(runs.out()) else None

    def test_within_bounds_passes(self):
        ref = [5.0, 4.0, 3.0]
        rc, j = self.parity({f"zt_m_bf16_stage{s}.json": zt_curve(s, 2, [x * (1 + 1e-3 * s) for x in ref])
                             for s in range(4)})
        self.assertEqual(rc, 0)
        self.assertEqual([r["stage"] for r in j["runs"]], [1, 2, 3])
        self.assertAlmostEqual(j["runs"][2]["max_rel_loss_diff"], 3e-3, places=9)

    def test_bf16_norms_are_reported_and_f32_norms_checked(self):
        ref = [5.0, 4.0, 3.0]
        curves = {}
        for precision in ("bf16", "fp32"):
            for s in range(2):
                c = zt_curve(s, 1, ref, precision=precision)
                c["grad_norm"] = [1.0, 1.0 + 0.05 * s, 1.0]  # 5 % apart at one step
                curves[f"zt_m_{precision}_stage{s}.json"] = c
        rc, j = self.parity(curves)
        by = {r["precision"]: r for r in j["runs"]}
        self.assertAlmostEqual(by["bf16"]["max_rel_norm_diff"], 0.05)
        self.assertTrue(by["bf16"]["ok"])
        self.assertFalse(by["fp32"]["ok"])
        self.assertEqual(rc, 1)

    def test_past_the_f32_bound_fails(self):
        ref = [5.0, 4.0, 3.0]
        curves = {f"zt_m_fp32_stage{s}.json": zt_curve(s, 2, ref, precision="fp32") for s in range(4)}
        curves["zt_m_fp32_stage2.json"] = zt_curve(2, 2, [5.0, 4.0, 3.0 * (1 + 2e-4)], precision="fp32")
        rc, j = self.parity(curves)
        self.assertEqual(rc, 1)
        self.assertEqual([r["ok"] for r in j["runs"]], [True, False, True])

    def test_a_gradient_norm_off_fails_in_f32(self):
        curves = {f"zt_m_fp32_stage{s}.json": zt_curve(s, 2, [5.0, 4.0], precision="fp32") for s in range(2)}
        curves["zt_m_fp32_stage1.json"]["grad_norm"] = [1.0, 1.1]
        self.assertEqual(self.parity(curves)[0], 1)

    def test_a_run_that_does_not_train_fails(self):
        rc, _ = self.parity({f"zt_m_bf16_stage{s}.json": zt_curve(s, 2, [4.0, 4.5]) for s in range(2)})
        self.assertEqual(rc, 1)

    def test_no_stage_zero_fails(self):
        rc, j = self.parity({"zt_m_bf16_stage1.json": zt_curve(1, 2, [5.0, 4.0])})
        self.assertEqual(rc, 1)
        self.assertIn("error", j["runs"][0])

    def test_a_stage_zero_alone_fails(self):
        rc, _ = self.parity({"zt_m_bf16_stage0.json": zt_curve(0, 2, [5.0, 4.0])})
        self.assertEqual(rc, 1)

    def test_model_names_with_dashes_and_dots(self):
        rc, j = self.parity({f"zt_tinyllama-1.1b_bf16_stage{s}.json": zt_curve(s, 4, [5.0, 4.0]) for s in range(2)})
        self.assertEqual(rc, 0)
        self.assertEqual(j["runs"][0]["model"], "tinyllama-1.1b")


class Scaling(unittest.TestCase):
    def test_efficiency_formula_goals_and_peer(self):
        runs = Runs(self)
        psi = 1_000_000
        for s in range(4):
            runs.put(f"zt_m_n1_stage{s}.json", zt_curve(s, 1, [5.0, 4.0], model="m", ms=100.0, params=psi))
            runs.put(f"zt_m_n1_stage{s}.wall", "12.5")
        # 8 GPUs: stage 1 at 96%, stage 2 at 90%, stage 3 at 91% of their one-GPU speed.
        for s, ms in ((0, 100.0), (1, 100 / 0.96), (2, 100 / 0.90), (3, 100 / 0.91)):
            states = int(report.formula_bytes_per_param("bf16", s, 8) * psi * 1.01)
            runs.put(f"zt_m_n8_stage{s}.json", zt_curve(s, 8, [5.0, 4.0], model="m", ms=ms, params=psi, states=states))
        peer = {"impl": "fsdp2", "config": "fsdp2-full", "model": "m", "gpus": 8, "B": 4, "T": 64, "ms_per_step": 120.0,
                "tokens_per_s_per_gpu": 4 * 64 / 0.12, "peak_mem_GiB": 2.0}
        runs.put("fsdp2_m_n8.json", "warning: not JSON\n" + json.dumps(peer) + "\n")
        runs.put("zt_m_n4_stage0.skipped", "out of time: 20 s left")
        self.assertEqual(quiet(report.scaling, runs.dir, runs.out()), 0)
        j = report.load(runs.out())
        by = {(r["impl"], r["config"], r["gpus"]): r for r in j["runs"]}
        r3 = by[("zt", "stage3", 8)]
        self.assertAlmostEqual(r3["tokens_per_s_per_gpu"], 4 * 64 / (100 / 0.91 / 1e3))
        self.assertAlmostEqual(r3["efficiency"], 0.91)
        self.assertAlmostEqual(r3["model_states_formula_bytes"], 2 * psi)
        self.assertAlmostEqual(r3["model_states_vs_formula"], 1.01, places=3)
        self.assertAlmostEqual(by[("zt", "stage1", 8)]["model_states_formula_bytes"], (4 + 12 / 8) * psi)
        self.assertEqual(by[("zt", "stage0", 1)]["wall_s"], 12.5)
        self.assertIsNone(by[("fsdp2", "fsdp2-full", 8)]["efficiency"])  # no one-GPU FSDP2 run
        goals = {g["stage"]: g for g in j["goals_at_max_gpus"]}
        self.assertEqual([goals[s]["met"] for s in (1, 2, 3)], [True, False, True])
        self.assertTrue(goals[3]["ahead_of_peer"])
        self.assertIsNone(goals[1]["ahead_of_peer"])
        self.assertEqual(j["skipped"], [{"run": "zt_m_n4_stage0", "reason": "out of time: 20 s left"}])

    def test_a_deepspeed_configs_batch_comes_from_tokens_per_step(self):
        # --batch-size stays at the CLI's 16 when a DeepSpeed file sets the micro-batch (2 here, 4
        # ranks, 2 accumulation steps): the tokens a GPU trains a step are what zt reports.
        runs = Runs(self)
        curve = zt_curve(1, 4, [5.0, 4.0], model="m", ms=100.0)
        curve["batch_size"] = 16
        curve["tokens_per_step"] = 2 * 2 * 4 * 64
        runs.put("zt_m_n4_stage1.json", curve)
        self.assertEqual(quiet(report.scaling, runs.dir, runs.out()), 0)
        r = report.load(runs.out())["runs"][0]
        self.assertEqual(r["B"], 4)
        self.assertAlmostEqual(r["tokens_per_s_per_gpu"], 4 * 64 / 0.1)

    def test_goal_falls_back_to_stage0_on_one_gpu(self):
        runs = Runs(self)
        runs.put("zt_m_n1_stage0.json", zt_curve(0, 1, [5.0, 4.0], model="m", ms=100.0))
        runs.put("zt_m_n4_stage3.json", zt_curve(3, 4, [5.0, 4.0], model="m", ms=125.0))
        self.assertEqual(quiet(report.scaling, runs.dir, runs.out()), 0)
        (goal,) = report.load(runs.out())["goals_at_max_gpus"]
        self.assertEqual(goal["baseline"], "stage0 on 1 GPU")
        self.assertAlmostEqual(goal["efficiency"], 0.8)
        self.assertFalse(goal["met"])

    def test_fp32_formula(self):
        self.assertEqual([report.formula_bytes_per_param("fp32", s, 4) for s in range(4)], [16, 10, 7, 4])
        self.assertEqual([report.formula_bytes_per_param("bf16", s, 2) for s in range(4)], [16, 10, 9, 8])

    def test_no_runs_fails(self):
        self.assertEqual(quiet(report.scaling, Runs(self).dir, os.devnull), 1)


class Comm(unittest.TestCase):
    def row(self, op, size, bw, wrong=0):
        return json.dumps({"bench": "comm", "op": op, "backend": "nccl", "world_size": 8, "bytes": size,
                           "busbw_gbs": bw, "wrong": wrong})

    def test_wrong_elements_fail(self):
        runs = Runs(self)
        runs.put("ok.json", "\n".join(self.row("all_reduce", 2**k, k) for k in range(3, 31)) + "\n")
        runs.put("bad.json", self.row("all_reduce", 8, 0.1) + "\n" + self.row("all_gather", 8, 0.1, wrong=3) + "\n")
        self.assertEqual(quiet(report.comm, os.path.join(runs.dir, "ok.json")), 0)
        self.assertEqual(quiet(report.comm, os.path.join(runs.dir, "bad.json")), 1)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            report.table([os.path.join(runs.dir, "ok.json"), os.path.join(runs.dir, "missing.json")])
        self.assertIn("all_reduce 30.0 GB/s", out.getvalue())
        self.assertIn("missing.json: missing", out.getvalue())


if __name__ == "__main__":
    unittest.main()
