#!/usr/bin/env python3
"""Builds the tiny parity checkpoints, one per encoder family (run by hand, not in CI).

Needs `pip install torch transformers tokenizers sentencepiece`. Each family gets a
randomly initialised model (seed 0) in the Hugging Face layout under tests/fixtures/,
and a JSON of token ids and last hidden states for a few Korean sentences (one of them
a sentence pair) that the Rust test `model::folder` must match within 1e-4:

  tiny-roberta/, tiny-roberta-mlm/, tiny-roberta-parity.json
      RobertaModel and RobertaForMaskedLM (weights under `roberta.`), a tokenizer.json
      laid out like klue/roberta-base's ([CLS]=0, [PAD]=1, [SEP]=2, [UNK]=3, [MASK]=4).
      Only rebuilt with `--roberta` (other tests lean on its exact weights).
  tiny-bert/, tiny-bert-parity.json
      BertForMaskedLM (weights under `bert.`, absolute positions from 0, 2 token types)
      with only a vocab.txt (and tokenizer_config.json): the tokenizer is built at load;
      also its language-model logits for the first sentence (`train::pretrain` matches).
  tiny-xlmr/, tiny-xlmr-parity.json
      XLMRobertaModel with only a sentencepiece.bpe.model (unigram, trained here); the
      reference ids come from the sentencepiece library with fairseq's id offset.
  tiny-electra/, tiny-electra-parity.json
      ElectraForPreTraining (discriminator under `electra.`, embedding_size 16 under a
      hidden size of 32, hence `embeddings_project`), with a WordPiece tokenizer.json.
"""
import json
import pathlib
import sys
import tempfile

import sentencepiece as spm
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    BertConfig,
    BertForMaskedLM,
    ElectraConfig,
    ElectraForPreTraining,
    RobertaConfig,
    RobertaForMaskedLM,
    RobertaModel,
    XLMRobertaConfig,
    XLMRobertaModel,
)

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures"
ROBERTA_SPECIALS = ["[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]"]
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CORPUS = [line.split(",", 3)[3].strip().strip('"') for line in (ROOT / "demo" / "fashion-reviews.csv").read_text().splitlines()[1:]]
SENTENCES = [
    "옷은 예쁘지만 배송은 늦어요",
    "색감이 화면이랑 똑같아요 만족합니다 😊",
    "Good quality! 배송도 빨라요",
    "사이즈",
]
PAIR = ("옷은 예쁘지만 배송은 늦어요", "배송")
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)


def wordpiece(specials: list[str]) -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials, min_frequency=1)
    tok.train_from_iterator(CORPUS * 3, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[(s, tok.token_to_id(s)) for s in ("[CLS]", "[SEP]")],
    )
    assert [tok.token_to_id(s) for s in specials] == list(range(len(specials)))
    return tok


def hidden_states(model, encodings: list[tuple[list[int], list[int]]], pad: int) -> list:
    """Last hidden states of each (ids, type ids), run as one padded batch."""
    width = max(len(ids) for ids, _ in encodings)
    ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in encodings])
    types = torch.tensor([t + [0] * (width - len(t)) for _, t in encodings])
    mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in encodings])
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
    last = out.hidden_states[-1]
    return [h[: len(i)].tolist() for h, (i, _) in zip(last, encodings)]


def write_parity(name: str, encodings, hidden, mlm_logits=None) -> None:
    fixture = {
        "sentences": SENTENCES,
        "pair": list(PAIR),
        "ids": [i for i, _ in encodings],
        "type_ids": [t for _, t in encodings],
        "hidden": hidden,
    }
    if mlm_logits is not None:
        fixture["mlm_logits"] = mlm_logits
    (OUT / f"{name}-parity.json").write_text(json.dumps(fixture, ensure_ascii=False))


def fast_encodings(tok: Tokenizer) -> list:
    encodings = [tok.encode(s) for s in SENTENCES] + [tok.encode(*PAIR)]
    return [(e.ids, e.type_ids) for e in encodings]


def roberta() -> None:
    tok = wordpiece(ROBERTA_SPECIALS)
    config = RobertaConfig(vocab_size=tok.get_vocab_size(), max_position_embeddings=66, type_vocab_size=1,
                           pad_token_id=1, bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5, **TINY)
    torch.manual_seed(0)
    mlm = RobertaForMaskedLM(config).eval()
    model = RobertaModel(config, add_pooling_layer=False).eval()
    model.load_state_dict(mlm.roberta.state_dict(), strict=False)
    for name, target in (("tiny-roberta", model), ("tiny-roberta-mlm", mlm)):
        folder = OUT / name
        target.save_pretrained(folder)
        tok.save(str(folder / "tokenizer.json"))
    encodings = fast_encodings(tok)
    write_parity("tiny-roberta", encodings, hidden_states(model, encodings, 1))


def bert() -> None:
    tok = wordpiece(BERT_SPECIALS)
    folder = OUT / "tiny-bert"
    folder.mkdir(parents=True, exist_ok=True)
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    (folder / "vocab.txt").write_text("".join(piece + "\n" for piece, _ in vocab))
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False, "tokenizer_class": "BertTokenizer"}))
    config = BertConfig(vocab_size=len(vocab), max_position_embeddings=64, type_vocab_size=2, pad_token_id=0,
                        layer_norm_eps=1e-12, **TINY)
    torch.manual_seed(0)
    mlm = BertForMaskedLM(config).eval()
    mlm.save_pretrained(folder)
    encodings = fast_encodings(tok)
    ids = torch.tensor([encodings[0][0]])
    with torch.no_grad():
        logits = mlm(input_ids=ids).logits[0].tolist()
    write_parity("tiny-bert", encodings, hidden_states(mlm.bert, encodings, 0), logits)


def xlmr() -> None:
    folder = OUT / "tiny-xlmr"
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = pathlib.Path(tmp) / "corpus.txt"
        corpus.write_text("\n".join(CORPUS * 3))
        spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(folder / "sentencepiece.bpe"), vocab_size=250,
                                       model_type="unigram", character_coverage=1.0)
    (folder / "sentencepiece.bpe.vocab").unlink()
    sp = spm.SentencePieceProcessor(model_file=str(folder / "sentencepiece.bpe.model"))

    def fairseq(text: str) -> list[int]:
        return [(i + 1) if i != 0 else 3 for i in sp.encode(text)]

    encodings = [([0] + fairseq(s) + [2], [0] * (len(fairseq(s)) + 2)) for s in SENTENCES]
    pair = [0] + fairseq(PAIR[0]) + [2, 2] + fairseq(PAIR[1]) + [2]
    encodings.append((pair, [0] * len(pair)))
    config = XLMRobertaConfig(vocab_size=sp.get_piece_size() + 2, max_position_embeddings=66, type_vocab_size=1,
                              pad_token_id=1, bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5, **TINY)
    torch.manual_seed(0)
    model = XLMRobertaModel(config, add_pooling_layer=False).eval()
    model.save_pretrained(folder)
    write_parity("tiny-xlmr", encodings, hidden_states(model, encodings, 1))


def electra() -> None:
    tok = wordpiece(BERT_SPECIALS)
    folder = OUT / "tiny-electra"
    config = ElectraConfig(vocab_size=tok.get_vocab_size(), embedding_size=16, max_position_embeddings=64,
                           type_vocab_size=2, pad_token_id=0, layer_norm_eps=1e-12, **TINY)
    torch.manual_seed(0)
    model = ElectraForPreTraining(config).eval()
    model.save_pretrained(folder)
    tok.save(str(folder / "tokenizer.json"))
    encodings = fast_encodings(tok)
    write_parity("tiny-electra", encodings, hidden_states(model.electra, encodings, 0))


def main() -> None:
    if "--roberta" in sys.argv:
        roberta()
    bert()
    xlmr()
    electra()
    print("wrote", OUT)


if __name__ == "__main__":
    main()
