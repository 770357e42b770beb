#!/usr/bin/env python3
"""Checks a model folder that zt exported against the Hugging Face libraries:
every tensor file reads with the safetensors library, transformers loads the folder, and its
logits on the ids zt used equal zt's (written by example_model_logits). Prints one JSON line.

  check_hf_interop.py EXPORTED_FOLDER ZT_LOGITS.safetensors
"""
import glob
import json
import os
import sys

import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM

folder, logits_file = sys.argv[1], sys.argv[2]
tensors = 0
for path in sorted(glob.glob(os.path.join(folder, "*.safetensors"))):
    with safe_open(path, framework="pt") as f:
        for name in f.keys():
            f.get_tensor(name)
            tensors += 1
with safe_open(logits_file, framework="pt") as f:
    ids = f.get_tensor("input_ids").long()
    ours = f.get_tensor("logits").float()
model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
with torch.no_grad():
    theirs = model(input_ids=ids).logits.float()
diff = (theirs - ours).abs().max().item()
rel = ((theirs - ours).norm() / theirs.norm()).item()
print(json.dumps({"folder": folder, "architecture": model.config.architectures, "tensors_read": tensors,
                  "logits_shape": list(theirs.shape), "max_abs_diff": diff, "relative_diff": rel,
                  "equal_within_1e-5": rel < 1e-5}), flush=True)
sys.exit(0 if rel < 1e-5 else 1)
