"""madx − en-la against language-adapter steps, on the low-resource benchmark's dev sets.

    MADX_DATA_ROOT=../shared/data .venv/bin/python -m bench.lowres_curve [--steps 60 150 400]
        [--languages kin zul] [--seeds 1 2] [--center/--no-center]

How much of MAD-X's gain a CPU budget recovers: for each budget N, configs/africa.yaml with
`language_adapter.steps: N` (warm-up and evaluation spacing scaled with it), only the named target
languages, their MasakhaPOS *dev* sets in place of the test sets (settings are chosen on dev data,
never on the test sets the benchmark reports), setups madx and en-la, the given task-adapter seeds.
Each budget is one `madx run` in its own process, into bench/results/lowres-curve/steps-N/ (a rerun
reuses what is finished). Prints, and writes to bench/results/lowres_curve.json: per budget and
language madx − en-la (mean over seeds, 95 % paired bootstrap interval), madx and en-la, and each
adapter's held-out perplexity at step 0 and as saved (centred). The general MLM head is the cached
one of the base (~20 minutes the first time on a machine).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from bench.common import RESULTS_DIR, ROOT
from madx.fileutil import atomic_write_text


def variant(steps: int, languages: list[str], seeds: list[int], center: bool) -> dict[str, Any]:
    """configs/africa.yaml at `steps` language-adapter steps, scored on the dev sets of `languages`."""
    config = yaml.safe_load((ROOT / "configs" / "africa.yaml").read_text(encoding="utf-8"))
    config["name"] = f"madx-lowres-curve-{steps}" + ("" if center else "-uncentred")
    config["languages"] = {code: spec for code, spec in config["languages"].items() if code in ["en", *languages]}
    pos = config["tasks"]["pos"]
    pos["test"] = {code: {**pos["test"][code], "path": pos["test"][code]["path"].replace("/test.txt", "/dev.txt")}
                   for code in languages}
    config["language_adapter"].update(steps=steps, warmup_steps=max(10, steps // 10), eval_every=max(20, steps // 3),
                                      checkpoint_every=max(20, steps // 3), center=center)
    config["task_adapter"]["seeds"] = seeds
    config["evaluation"]["setups"] = ["madx", "en-la"]
    return config


def run(steps: int, languages: list[str], seeds: list[int], center: bool) -> dict[str, Any]:
    folder = RESULTS_DIR / "lowres-curve" / (f"steps-{steps}" + ("" if center else "-uncentred"))
    folder.mkdir(parents=True, exist_ok=True)
    config = variant(steps, languages, seeds, center)
    config["output_dir"] = str(folder / "out")
    path = folder / "config.yaml"
    # relative paths of the original (none today: every data path is under ${data_root}) stay valid
    atomic_write_text(path, yaml.safe_dump(config, sort_keys=False))
    madx = Path(sys.executable).with_name("madx")
    subprocess.run([str(madx), "run", str(path)], check=True)
    summary = json.loads((folder / "out" / "report" / "summary.json").read_text(encoding="utf-8"))
    cells = {(cell["language"], cell["setup"]): cell["mean"] for cell in summary["cells"]}
    result = {"steps": steps, "center": center, "languages": {}}
    for difference in summary["differences"]:
        if difference["comparison"] != "madx − en-la":
            continue
        language = difference["language"]
        result["languages"][language] = {
            "madx_minus_en_la": difference["estimate"], "low": difference["low"], "high": difference["high"],
            "madx": cells.get((language, "madx")), "en_la": cells.get((language, "en-la")),
            **_perplexities(folder / "out" / "adapters" / "language" / language),
        }
    return result


def _perplexities(adapter: Path) -> dict[str, float]:
    if not (adapter / "metrics.json").is_file():
        return {}
    metrics = json.loads((adapter / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    return {key: metrics[key] for key in ("initial_perplexity", "perplexity_before_centering", "perplexity")
            if key in metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[60, 150, 400])
    parser.add_argument("--languages", nargs="+", default=["kin", "zul"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--center", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    results = [run(steps, args.languages, args.seeds, args.center) for steps in args.steps]
    out = RESULTS_DIR / "lowres_curve.json"
    atomic_write_text(out, json.dumps(results, indent=2) + "\n")
    print(f"\nmadx − en-la (points, dev sets, mean over seeds {args.seeds}) against language-adapter steps")
    for result in results:
        for language, row in sorted(result["languages"].items()):
            span = "" if "initial_perplexity" not in row else \
                f"  held-out perplexity {row['initial_perplexity']:,.0f} -> {row['perplexity']:,.0f}"
            print(f"{result['steps']:>5} steps  {language:<8} {100 * row['madx_minus_en_la']:+5.1f} "
                  f"[{100 * row['low']:+.1f}, {100 * row['high']:+.1f}]  madx {100 * row['madx']:.1f}  "
                  f"en-la {100 * row['en_la']:.1f}{span}")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
