#!/usr/bin/env python3
"""PyTorch reference for `reviewloop bench infer|train`: the same RoBERTa configurations,
batch and sequence length, on the same machine. Prints one JSON line per measurement:
{"config": ..., "mode": "infer"|"train", "seq_per_s": ...}. Needs torch and transformers.
Usage: bench_torch.py CONFIG_JSON|MODEL_DIR infer|infer-int8|train BATCH SEQ SECONDS [FROZEN]
A MODEL_DIR (a version's keyword folder, or a base such as the converted e5) is loaded
with its weights by transformers' AutoModel, as `reviewloop bench infer --version DIR`
and `bench train --base DIR` measure it. FROZEN (default -1: nothing) keeps the
embeddings and the first FROZEN layers fixed, as `--freeze-embeddings --frozen-layers`.
"""
import json
import sys
import time

import torch
from transformers import AutoModel, RobertaConfig, RobertaModel

config_json, mode, batch, seq, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
frozen = int(sys.argv[6]) if len(sys.argv) > 6 else -1
torch.manual_seed(0)
if config_json.lstrip().startswith("{"):
    config = RobertaConfig(**json.loads(config_json))
    encoder = RobertaModel(config, add_pooling_layer=False)
else:
    encoder = AutoModel.from_pretrained(config_json, add_pooling_layer=False)
    config = encoder.config
if frozen >= 0:
    for p in encoder.embeddings.parameters():
        p.requires_grad = False
    for layer in encoder.encoder.layer[:frozen]:
        for p in layer.parameters():
            p.requires_grad = False
if mode == "infer-int8":
    # PyTorch's own int8: dynamic quantization of every linear layer.
    encoder = torch.ao.quantization.quantize_dynamic(encoder, {torch.nn.Linear}, dtype=torch.qint8)
head = torch.nn.Linear(config.hidden_size, 15)
ids = torch.randint(5, config.vocab_size, (batch, seq))
mask = torch.ones_like(ids)
targets = (torch.rand(batch, 15) > 0.8).float()


def infer():
    with torch.no_grad():
        encoder(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]


params = [p for p in encoder.parameters() if p.requires_grad] + list(head.parameters())
optimizer = torch.optim.AdamW(params, lr=1e-4)


def train():
    logits = head(encoder(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0])
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


step = train if mode == "train" else infer
encoder.train(mode == "train")
step()  # warm-up
done, started = 0, time.perf_counter()
while time.perf_counter() - started < seconds or done < 2:
    step()
    done += 1
elapsed = time.perf_counter() - started
print(json.dumps({"mode": mode, "seq_per_s": done * batch / elapsed, "steps": done, "threads": torch.get_num_threads()}))
