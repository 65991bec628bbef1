"""The Mandarin front end's time per sentence with g2pW at real size (20 and 100 characters), against pypinyin.

The released G2PWModel cannot be downloaded here, and its speed does not depend on its weights, so this writes a
real-size stand-in: a BERT-base encoder (12 × 768, the 21128-token Chinese vocabulary, random weights) behind the
official g2pW interface (``input_ids``, ``token_type_ids``, ``attention_mask`` [B, L]; ``phoneme_mask`` [N, 1305];
``char_ids``, ``position_ids`` [N] → probabilities [N, 1305], a B = 1 context row serving N queries), with the
official tables of the auxiliary oracle's stand-in folder; then it times ``phonemize`` (cut0, one sentence)::

    python examples/bench_g2pw.py build/g2pw-real --aux ../shared/oracle/gpt-sovits-aux-tiny [--repeat 7]

Building the stand-in needs the build extra (torch, transformers); timing it does not.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

from ttsopt.runtime.text import phonemize
from ttsopt.runtime.text.g2pw import G2PW, MODEL_FILES

SENTENCES = {
    "20": "他说明天要去银行办理业务，还要了解行情。",
    "100": "重要的事情说三遍，长大以后我想当一名音乐家。今天我们一起去公园散步，看看湖边的风景吧。他说明天要去银行办理业务，"
           "还要了解一下行情。这个设计得很好看，我每天都会打开它来看一看。春天来了，花儿都开了吗呢？",
}


def build_stand_in(out: Path, tables: Path, tokenizer: Path) -> None:
    """BERT-base + the official g2pW interface, random weights, exported to ``out/g2pW.onnx`` beside the tables."""
    import torch
    from torch import nn
    from transformers import BertConfig, BertModel

    out.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES[1:]:
        shutil.copyfile(tables / name, out / name)
    reader = G2PW(tables, tokenizer)  # the label and character counts of the official tables

    class StandIn(nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = BertModel(BertConfig(vocab_size=21128, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                             intermediate_size=3072), add_pooling_layer=False)
            self.char = nn.Embedding(len(reader.char_ids), 768)
            self.out = nn.Linear(768, len(reader.labels))

        def forward(self, input_ids, token_type_ids, attention_mask, phoneme_mask, char_ids, position_ids):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
            n = char_ids.shape[0]
            selected = hidden.expand(n, hidden.shape[1], hidden.shape[2])[torch.arange(n), position_ids]
            logits = self.out(torch.tanh(selected + self.char(char_ids)))
            return torch.softmax(logits - 1e4 * (1 - phoneme_mask), dim=-1)

    torch.manual_seed(0)
    length, queries = 12, 3
    example = (torch.full((1, length), 100), torch.zeros(1, length, dtype=torch.long), torch.ones(1, length, dtype=torch.long),
               torch.ones(queries, len(reader.labels)), torch.zeros(queries, dtype=torch.long), torch.ones(queries, dtype=torch.long))
    names = ["input_ids", "token_type_ids", "attention_mask", "phoneme_mask", "char_ids", "position_ids"]
    axes = {name: {0: "B", 1: "L"} for name in names[:3]} | {name: {0: "N"} for name in names[3:]} | {"probs": {0: "N"}}
    torch.onnx.export(StandIn().eval(), example, str(out / MODEL_FILES[0]), input_names=names, output_names=["probs"],
                      opset_version=17, dynamo=False, dynamic_axes=axes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--aux", type=Path, required=True, help="the gpt-sovits-aux-tiny oracle folder (tables, tokenizer.json)")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    tokenizer = args.aux / "chinese-roberta-wwm-ext-large" / "tokenizer.json"
    if not (args.out / MODEL_FILES[0]).is_file():
        build_stand_in(args.out, args.aux / "G2PWModel", tokenizer)
    symbols = json.loads((Path(__file__).parents[1] / "ttsopt/families/gpt_sovits/symbols/v2.json").read_text(encoding="utf-8"))
    reader = G2PW(args.out, tokenizer)
    calls: list[tuple[int, ...]] = []
    reader.observer = lambda feeds, probs: calls.append(feeds["input_ids"].shape)
    start = time.perf_counter()
    phonemize("你好。", "zh", symbols, cut="cut0")
    print(f"first call (jieba, tables): {time.perf_counter() - start:.2f} s")
    start = time.perf_counter()
    _ = reader.session
    print(f"g2pW session load: {time.perf_counter() - start:.2f} s")
    for text in SENTENCES.values():
        calls.clear()
        phonemize(text, "zh", symbols, cut="cut0", g2pw=reader)
        shapes = list(calls)
        for label, model in (("g2pW", reader), ("pypinyin", None)):
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                phonemize(text, "zh", symbols, cut="cut0", g2pw=model)
                times.append(time.perf_counter() - start)
            print(f"{len(text)} characters, {label}: median {1000 * statistics.median(times):.0f} ms, "
                  f"min {1000 * min(times):.0f} ms" + (f" ({len(shapes)} g2pW calls, input_ids {shapes[0]})" if model else ""))
    built = " (this run also built the stand-in with torch: run again for the front end alone)" if "torch" in sys.modules else ""
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB{built}")


if __name__ == "__main__":
    main()
