#!/usr/bin/env python3
"""Builds the tiny RoBERTa parity fixture (run by hand, not in CI).

Needs `pip install torch transformers tokenizers`. Writes, under tests/fixtures/:
  tiny-roberta/       RobertaModel in the Hugging Face layout (config.json,
                      model.safetensors, tokenizer.json), randomly initialised with seed 0,
                      with a WordPiece tokenizer laid out like klue/roberta-base's
                      ([CLS]=0, [PAD]=1, [SEP]=2, [UNK]=3, [MASK]=4).
  tiny-roberta-mlm/   the same encoder saved as RobertaForMaskedLM (weights under `roberta.`).
  tiny-roberta-parity.json   token ids and last hidden states for a few Korean sentences.
The Rust test `model::parity` loads both folders and must match within 1e-4.
"""
import json
import pathlib

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import RobertaConfig, RobertaForMaskedLM, RobertaModel

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures"
SPECIALS = ["[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]"]
CORPUS = [line.split(",", 3)[3].strip().strip('"') for line in (ROOT / "demo" / "fashion-reviews.csv").read_text().splitlines()[1:]]
SENTENCES = [
    "옷은 예쁘지만 배송은 늦어요",
    "색감이 화면이랑 똑같아요 만족합니다 😊",
    "Good quality! 배송도 빨라요",
    "사이즈",
]


def tokenizer() -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=400, special_tokens=SPECIALS, min_frequency=1)
    tok.train_from_iterator(CORPUS * 3, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[(s, tok.token_to_id(s)) for s in ("[CLS]", "[SEP]")],
    )
    assert [tok.token_to_id(s) for s in SPECIALS] == [0, 1, 2, 3, 4]
    return tok


def main() -> None:
    tok = tokenizer()
    config = RobertaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=66,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        layer_norm_eps=1e-5,
    )
    torch.manual_seed(0)
    mlm = RobertaForMaskedLM(config).eval()
    model = RobertaModel(config, add_pooling_layer=False).eval()
    model.load_state_dict(mlm.roberta.state_dict(), strict=False)
    for name, target in (("tiny-roberta", model), ("tiny-roberta-mlm", mlm)):
        folder = OUT / name
        target.save_pretrained(folder, safe_serialization=True)
        tok.save(str(folder / "tokenizer.json"))

    tok.enable_padding(pad_id=1, pad_token="[PAD]")
    encodings = tok.encode_batch(SENTENCES)
    ids = torch.tensor([e.ids for e in encodings])
    mask = torch.tensor([e.attention_mask for e in encodings])
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
    fixture = {
        "sentences": SENTENCES,
        "ids": [[i for i, m in zip(e.ids, e.attention_mask) if m] for e in encodings],
        "hidden": [h[: int(m.sum())].tolist() for h, m in zip(hidden, mask)],
    }
    (OUT / "tiny-roberta-parity.json").write_text(json.dumps(fixture, ensure_ascii=False))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
